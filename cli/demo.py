"""``mrirecon demo``: the main job on data mrirecon makes itself."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo_output"),
    show_default=True,
    help="Where the demo writes its outputs.",
)
@click.option("--size", type=int, default=160, show_default=True, help="Image size of the simulated slice.")
@click.option("--coils", type=int, default=8, show_default=True, help="Receive coils to simulate.")
@click.option("--acceleration", type=float, default=4.0, show_default=True, help="Undersampling factor.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the simulation and the mask.")
def demo(output_dir: Path, size: int, coils: int, acceleration: float, seed: int) -> None:
    """Simulate a multi-coil acquisition, undersample it, reconstruct it and print the metrics."""
    from mrirecon.pipeline.demo import run_demo

    run_demo(output_dir, size=size, coils=coils, acceleration=acceleration, seed=seed, echo=click.echo)
