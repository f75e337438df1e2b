"""``mrirecon convert-checkpoint``: an authors' checkpoint (DIRECT, ATOMMIC, mridc) → an mrirecon
model file."""

from __future__ import annotations

from pathlib import Path

import click


def _dilations(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        values = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not values or min(values) < 1:
        raise click.BadParameter(f"expected positive integers, got {value!r}")
    return values


@click.command("convert-checkpoint")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="mrirecon model file (.pt).",
)
@click.option(
    "--time-steps",
    type=click.IntRange(min=1),
    default=None,
    help="RIM/CIRIM time steps per cascade (default: the archive's config, else 8).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="RecurrentVarNet steps; needed when its weights are shared (one block in the file) and no "
    "config.yaml of DIRECT beside the checkpoint says.",
)
@click.option(
    "--centered/--uncentered",
    "fft_centered",
    default=None,
    help="FFT convention the model was trained with (DIRECT's and ATOMMIC's Calgary-Campinas configs: "
    "--uncentered; default: the checkpoint's config, else centred).",
)
@click.option(
    "--sigma",
    type=float,
    default=None,
    help="The authors' noise level σ of a RIM or CIRIM checkpoint (default 1).",
)
@click.option(
    "--initializer-dilations",
    default=None,
    callback=_dilations,
    help="Dilations of DIRECT's recurrent-state initialiser (not in its weights; default: its "
    "config.yaml beside the checkpoint, else 1,1,2,4).",
)
@click.option(
    "--initializer-input",
    type=click.Choice(["sense", "zero_filled"]),
    default=None,
    help="What DIRECT's recurrent-state initialiser sees (initializer_initialization; default: its "
    "config.yaml beside the checkpoint, else sense).",
)
def convert_checkpoint(
    checkpoint: Path,
    output: Path,
    time_steps: int | None,
    steps: int | None,
    fft_centered: bool | None,
    sigma: float | None,
    initializer_dilations: tuple[int, ...] | None,
    initializer_input: str | None,
) -> None:
    """Convert CHECKPOINT (DIRECT RecurrentVarNet model_<it>.pt; ATOMMIC/mridc CIRIM or RIM .ckpt,
    .atommic, .mridc) to an mrirecon model file. Only tensors are read: nothing in the file is
    unpickled. What cannot be mapped is refused with the reason."""
    from mrirecon.models.convert import convert_checkpoint as convert

    convert(
        checkpoint,
        output,
        time_steps=time_steps,
        steps=steps,
        fft_centered=fft_centered,
        sigma=sigma,
        initializer_dilations=initializer_dilations,
        initializer_input=initializer_input,
        report=click.echo,
    )
