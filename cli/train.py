"""``mrirecon train``: train a reconstructor from one YAML config, or resume an interrupted run."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(context_settings={"ignore_unknown_options": False})
@click.option(
    "--config",
    "-c",
    "config_file",
    default=None,
    type=str,
    help="Training config: a YAML file or a shipped config's name (cirim_synthetic, pretrained/cirim_brain). "
    "With --resume it may be left out: the run's own config (checkpoints/config.yaml, with the overrides "
    "it was started with) is continued.",
)
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run folder for checkpoints, logs and the resolved config [default: the config's output_dir].",
)
@click.option("--resume", is_flag=True, help="Continue the run in --output-dir from its last checkpoint.")
def train(config_file: str | None, overrides: tuple[str, ...], output_dir: Path | None, resume: bool) -> None:
    """Train the model a config describes; KEY=VALUE pairs override config fields.

    \b
    Examples:
      mrirecon train --config configs/cirim_synthetic.yaml
      mrirecon train -c configs/rim_synthetic.yaml trainer.max_epochs=2 optim.lr=3e-4 -o runs/rim
      mrirecon train -o runs/rim --resume
    """
    from mrirecon.errors import ConfigError
    from mrirecon.training.config import load_train_config, resumed_run_config
    from mrirecon.training.run import train as run_training

    if config_file is None:
        if not resume or output_dir is None:
            raise ConfigError(
                "no training config given",
                hint="pass --config FILE (or a shipped config's name); to continue a run with its own "
                "config, pass --output-dir RUN --resume",
            )
        config = resumed_run_config(output_dir, overrides)
    else:
        resume_dir = (output_dir if output_dir is not None else "") if resume else None
        config = load_train_config(config_file, overrides, resume_dir=resume_dir)
    result = run_training(config, output_dir=output_dir, resume=resume, echo=click.echo)
    if not result.is_global_zero:
        return
    val = result.val_metrics
    if "val_ssim" in val:
        line = f"\nValidation SSIM {val['val_ssim']:.4f}"
        if "val_ssim_zero_filled" in val:
            margin = val["val_ssim"] - val["val_ssim_zero_filled"]
            line += f" (zero-filled {val['val_ssim_zero_filled']:.4f}, {margin:+.4f})"
        if result.best_val_ssim is not None:
            line += f"; best {result.best_val_ssim:.4f}"
        click.echo(line)
    elif result.best_val_ssim is not None:  # nothing validated in this start (a finished run resumed)
        click.echo(f"\nBest validation SSIM {result.best_val_ssim:.4f}")
    if result.test_metrics.get("test_ssim") is not None:
        where = f": {result.paths.test_metrics}" if result.paths.test_metrics.is_file() else ""
        click.echo(f"Test SSIM {result.test_metrics['test_ssim']:.4f}{where}")
    if result.paths.best.is_file():
        click.echo(f"checkpoints: {result.paths.checkpoints}")
    if result.paths.model.is_file():
        click.echo(f"model:       {result.paths.model}")
