"""``mrirecon simulate``: a synthetic multi-coil brain dataset in the fastMRI layout, with its manifest."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mrirecon.errors import ConfigError
from mrirecon_cli.options import parse_split

if TYPE_CHECKING:
    from mrirecon.data.realistic import RealisticOptions


@click.command()
@click.argument("output_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--volumes", type=click.IntRange(min=1), default=4, show_default=True, help="Number of volumes."
)
@click.option(
    "--slices", type=click.IntRange(min=1), default=16, show_default=True, help="Slices per volume."
)
@click.option(
    "--anatomy",
    type=click.Choice(["phantom", "mni", "dipy"]),
    default="phantom",
    show_default=True,
    help="phantom: the fast procedural phantom; mni: the realistic simulator on real brain anatomy "
    "(MNI152 template; matrix, coils, contrast, noise and lesions randomised); dipy: the real-anatomy "
    "evaluation set (real images with simulated coils and lesions). See docs/data.md.",
)
@click.option(
    "--coils",
    type=click.IntRange(min=1, max=64),
    default=None,
    help="Receive coils [phantom: 8 (birdcage); mni: drawn in 4-32 unless given].",
)
@click.option(
    "--size",
    type=(click.IntRange(min=16, max=1024), click.IntRange(min=16, max=1024)),
    default=None,
    metavar="H W",
    help="Matrix size [phantom: 256 256; mni: drawn (160-384 rows, rectangular) unless given].",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed: the same seed, the same data.",
)
@click.option("--lesions", is_flag=True, help="Add white-matter lesions (labels stored in the files).")
@click.option(
    "--snr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Mean brain signal / noise std of the coil-combined image [phantom: 30; mni: drawn in 10-50].",
)
@click.option(
    "--contrast",
    type=click.Choice(["flair", "t1", "t2", "pd", "random", "mixed"]),
    default=None,
    help="Tissue contrast [phantom: flair; mixed cycles through flair, t1, t2; mni: mixed draws "
    "t1, t2, pd, flair or random intensities per volume].",
)
@click.option(
    "--lesion-count",
    type=(click.IntRange(min=0), click.IntRange(min=0)),
    default=None,
    metavar="MIN MAX",
    help="Lesions per volume [phantom only; default: 2 5].",
)
@click.option(
    "--lesion-radius",
    type=(float, float),
    default=None,
    metavar="MIN MAX",
    help="Lesion radius in mm (field of view 220 mm) [phantom only; default: 2 5].",
)
@click.option(
    "--lesion-contrast",
    type=float,
    default=None,
    help="Lesion / white-matter intensity [phantom only; default per contrast].",
)
@click.option(
    "--split", default="0.8,0.1,0.1", show_default=True, help="train,val,test fractions of the manifest."
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--overwrite", is_flag=True, help="Write into a folder that already holds a dataset.")
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
    lesion_count: tuple[int, int] | None,
    lesion_radius: tuple[float, float] | None,
    lesion_contrast: float | None,
    split: str,
    no_progress: bool,
    anatomy: str,
    overwrite: bool,
) -> None:
    """Write a synthetic brain dataset (fastMRI HDF5 files and manifest.csv) into OUTPUT_DIR."""
    from mrirecon.data.simulate import LesionOptions, simulate_dataset

    if anatomy == "dipy":
        given = _given(("--size", size), ("--coils", coils), ("--snr", snr), ("--contrast", contrast))
        given += ["--split"] if split != "0.8,0.1,0.1" else []
        if given:
            raise ConfigError(
                f"the real-anatomy set (--anatomy dipy) has its own sizes, coils, noise, contrast and "
                f"split (all test); {', '.join(given)} would be ignored",
                hint="leave them out, or use --anatomy mni",
            )
    if anatomy != "phantom":
        phantom_only = _given(
            ("--lesion-count", lesion_count),
            ("--lesion-radius", lesion_radius),
            ("--lesion-contrast", lesion_contrast),
        )
        if phantom_only:
            raise ConfigError(
                f"{', '.join(phantom_only)} set the phantom's lesions; the {anatomy} simulator draws its "
                "own (a count per slice, radius and contrast ranges: docs/data.md) and would ignore them",
                hint="leave them out, or use --anatomy phantom",
            )
        if snr is not None and not math.isfinite(snr):
            raise ConfigError(
                f"--snr {snr} (no noise) is the phantom's; the {anatomy} simulator needs a finite SNR",
                hint="give a finite --snr, e.g. 50",
            )
        paths = simulate_dataset(
            output_dir,
            volumes=volumes,
            slices=slices,
            coils=coils or 8,
            seed=seed,
            split=parse_split(split),
            progress=not no_progress,
            anatomy=anatomy,
            realistic=_realistic_options(size, coils, snr, contrast, lesions),
            overwrite=overwrite,
        )
        click.echo(f"wrote {len(paths)} volume(s) and {output_dir / 'manifest.csv'}")

        return
    unused = _given(
        ("--lesion-count", lesion_count),
        ("--lesion-radius", lesion_radius),
        ("--lesion-contrast", lesion_contrast),
    )
    if unused and not lesions:
        raise ConfigError(
            f"{', '.join(unused)} set the lesions, which --lesions adds; without it they would be ignored",
            hint="add --lesions, or leave them out",
        )
    size = size or (256, 256)
    coils = coils or 8
    snr = snr or 30.0
    contrast = contrast or "flair"
    chosen: dict[str, Any] = {  # the library's defaults for what was not given
        key: value
        for key, value in (
            ("count", lesion_count),
            ("radius_mm", lesion_radius),
            ("contrast", lesion_contrast),
        )
        if value is not None
    }
    options = LesionOptions(**chosen) if lesions else None
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
        overwrite=overwrite,
    )
    click.echo(f"wrote {len(paths)} volume(s) and {output_dir / 'manifest.csv'}")


def _given(*options: tuple[str, object]) -> list[str]:
    """The names of the options given (not None)."""
    return [name for name, value in options if value is not None]


def _realistic_options(
    size: tuple[int, int] | None, coils: int | None, snr: float | None, contrast: str | None, lesions: bool
) -> RealisticOptions:
    """The realistic simulator's options with the ranges a user fixed on the command line."""
    from mrirecon.data.realistic import RealisticOptions

    fields: dict[str, object] = {}
    if size is not None:
        fields["rows"] = (size[0], size[0])
        fields["aspect"] = (size[1] / size[0], size[1] / size[0])
        fields["multiple"] = 1
    if coils is not None:
        fields["coils"] = (coils, coils)
    if snr is not None:
        fields["snr"] = (snr, snr)
    if contrast not in (None, "mixed"):
        fields["contrasts"] = (contrast,)
    if not lesions:
        fields["lesion_probability"] = 0.0
    return RealisticOptions(**fields)  # type: ignore[arg-type]
