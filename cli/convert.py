"""``mrirecon convert``: ISMRMRD raw, BART, NumPy (or fastMRI) input → one fastMRI-layout HDF5 file."""

from __future__ import annotations

from pathlib import Path

import click

from mrirecon_cli.options import parse_frame


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output .h5 file."
)
@click.option(
    "--npy-axes",
    default=None,
    help="Axis order of a .npy input, e.g. coils,kx,ky or slices,coils,kx,ky or coils,kx,ky,kz "
    "(kx = readout; kz makes it 3-D, split into slices along kx).",
)
@click.option("--uncentered", is_flag=True, help="The k-space is stored uncentred (Calgary-Campinas style).")
@click.option("--acquisition", default=None, help="Set the acquisition attribute (e.g. AXT1).")
@click.option(
    "--frame",
    default=None,
    metavar="NAME=N,...",
    help="Of an ISMRMRD raw input with several echoes, repetitions, cardiac phases or sets, the one "
    "to convert, e.g. contrast=1 or repetition=2,set=1 (names: contrast, repetition, phase, set; "
    "default 0 each).",
)
def convert(
    input_path: Path,
    output: Path,
    npy_axes: str | None,
    uncentered: bool,
    acquisition: str | None,
    frame: str | None,
) -> None:
    """Convert INPUT (ISMRMRD .h5, BART .cfl/.hdr, NumPy .npy, fastMRI .h5) to fastMRI HDF5."""
    from mrirecon.data.convert import convert_volume

    summary = convert_volume(
        input_path,
        output,
        npy_axes=npy_axes,
        centered=False if uncentered else None,
        acquisition=acquisition,
        frame=None if frame is None else parse_frame(frame),
    )
    click.echo(f"wrote {summary.describe()}")
    click.echo(f"source: {summary.source}")
