"""``mrirecon batch``: reconstruct an archive, resumably, on one device or many (DDP)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from mrirecon_cli.inference_options import inference_options, run_options, summary

#: Exit code when some inputs failed (each is in failures.csv); 2 is a user error that stopped the run.
SOME_FAILED = 1


@click.command("batch")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    help="Checkpoint of a learned model (.ckpt, .pt, .safetensors) or the name of a shipped pretrained "
    "model (cirim-brain, rim-brain, recurrentvarnet-brain; see `mrirecon models`).",
)
@click.option(
    "--model", "model_name", help="Name of a classical baseline (zero_filled, sense, cs_l1wavelet)."
)
@click.option(
    "--manifest", type=click.Path(dir_okay=False, path_type=Path), help="Manifest CSV of the inputs."
)
@click.option("--input-dir", type=click.Path(file_okay=False, path_type=Path), help="Folder of the inputs.")
@click.option(
    "--output-dir",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the reconstructions, DICOM series, failures.csv and run.json.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace outputs of another model, checkpoint or undersampling."
)
@click.option(
    "--devices", type=click.IntRange(1), default=1, show_default=True, help="Processes (GPUs) per node."
)
@click.option("--num-nodes", type=click.IntRange(1), default=1, show_default=True, help="Machines (DDP).")
@inference_options
def batch(
    checkpoint: Path | None,
    model_name: str | None,
    manifest: Path | None,
    input_dir: Path | None,
    output_dir: Path,
    model_config: Path | None,
    **options: Any,
) -> None:
    """Reconstruct every volume of a folder or manifest; a restarted run skips finished volumes.

    Bad inputs are recorded in OUTPUT_DIR/failures.csv and the run goes on (exit code 1 when any
    failed); OUTPUT_DIR/run.json records the model, checkpoint sha256, options, counts and timings.
    """
    from mrirecon.errors import ConfigError
    from mrirecon.inference import load_reconstructor, run_batch

    if (checkpoint is None) == (model_name is None):
        raise ConfigError(
            "give exactly one of --checkpoint and --model",
            hint="--checkpoint for a trained or pretrained model (cirim-brain), --model for a classical "
            "one (sense)",
        )
    if (manifest is None) == (input_dir is None):
        raise ConfigError("give exactly one of --manifest and --input-dir")
    if manifest is not None and manifest.suffix.lower() != ".csv":
        raise ConfigError(
            "--manifest takes a manifest CSV (mrirecon manifest writes one)",
            path=manifest,
            hint="pass a single volume to `mrirecon infer`, or its folder as --input-dir",
        )
    run = run_options(output_dir, **options)
    if checkpoint is not None:
        loaded = load_reconstructor(checkpoint, model_config=model_config, kind="checkpoint")
    else:
        loaded = load_reconstructor(str(model_name), model_config=model_config, kind="model")
    source = manifest if manifest is not None else input_dir
    assert source is not None
    result = run_batch(loaded, source, run)
    if result.run_json is None:  # not rank 0 of a DDP run: rank 0 reports
        sys.exit(0 if result.ok else SOME_FAILED)
    click.echo(f"{summary(result)} Output: {output_dir}")
    if not result.ok:
        click.echo(f"{len(result.failures)} input(s) failed: see {result.failures_csv}", err=True)
        sys.exit(SOME_FAILED)
