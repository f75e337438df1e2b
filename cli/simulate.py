"""``mrirecon simulate``: a synthetic multi-coil brain dataset in the fastMRI layout, with its manifest."""

from __future__ import annotations

from pathlib import Path

import click

from mrirecon_cli.options import parse_split


@click.command()
@click.argument("output_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--volumes", type=int, default=4, show_default=True, help="Number of volumes.")
@click.option("--slices", type=int, default=16, show_default=True, help="Slices per volume.")
@click.option("--coils", type=int, default=8, show_default=True, help="Receive coils (birdcage).")
@click.option(
    "--size", type=(int, int), default=(256, 256), show_default=True, metavar="H W", help="Matrix size."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed: the same seed, the same data.")
@click.option("--lesions", is_flag=True, help="Add white-matter lesions (labels stored in the files).")
@click.option(
    "--snr",
    type=float,
    default=30.0,
    show_default=True,
    help="Mean brain signal / noise std of the coil-combined image (see docs/data.md).",
)
@click.option(
    "--contrast",
    type=click.Choice(["flair", "t1", "t2", "mixed"]),
    default="flair",
    show_default=True,
    help="Tissue contrast; mixed cycles through the three.",
)
@click.option(
    "--lesion-count",
    type=(int, int),
    default=(2, 5),
    show_default=True,
    metavar="MIN MAX",
    help="Lesions per volume.",
)
@click.option(
    "--lesion-radius",
    type=(float, float),
    default=(2.0, 5.0),
    show_default=True,
    metavar="MIN MAX",
    help="Lesion radius in mm (field of view 220 mm).",
)
@click.option(
    "--lesion-contrast",
    type=float,
    default=None,
    help="Lesion / white-matter intensity (default per contrast).",
)
@click.option(
    "--split", default="0.8,0.1,0.1", show_default=True, help="train,val,test fractions of the manifest."
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def simulate(
    output_dir: Path,
    volumes: int,
    slices: int,
    coils: int,
    size: tuple[int, int],
    seed: int,
    lesions: bool,
    snr: float,
    contrast: str,
    lesion_count: tuple[int, int],
    lesion_radius: tuple[float, float],
    lesion_contrast: float | None,
    split: str,
    no_progress: bool,
) -> None:
    """Write a synthetic brain dataset (fastMRI HDF5 files and manifest.csv) into OUTPUT_DIR."""
    from mrirecon.data.simulate import LesionOptions, simulate_dataset

    options = (
        LesionOptions(count=lesion_count, radius_mm=lesion_radius, contrast=lesion_contrast)
        if lesions
        else None
    )
    paths = simulate_dataset(
        output_dir,
        volumes=volumes,
        slices=slices,
        coils=coils,
        size=size,
        seed=seed,
        lesions=options or False,
        snr=snr,
        contrast=contrast,
        split=parse_split(split),
        progress=not no_progress,
    )
    click.echo(f"wrote {len(paths)} volume(s) and {output_dir / 'manifest.csv'}")
