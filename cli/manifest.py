"""``mrirecon manifest create|verify``: reproducible dataset listings with checksums and splits."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mrirecon_cli.options import parse_split

#: Exit code of ``manifest verify`` when a file is missing, changed or unreadable.
VERIFY_FAILED = 1


@click.group()
def manifest() -> None:
    """Create and verify dataset manifests (path, sha256, shape, coils, acquisition, split)."""


@manifest.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Manifest CSV."
)
@click.option(
    "--split", default="0.8,0.1,0.1", show_default=True, help="train,val,test fractions (per patient)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option("--npy-axes", default=None, help="Axis order of .npy files (see mrirecon convert --help).")
@click.option("--skip-bad", is_flag=True, help="Leave unreadable files out (listed) instead of failing.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def create(
    data_dir: Path,
    output: Path,
    split: str,
    seed: int,
    npy_axes: str | None,
    skip_bad: bool,
    no_progress: bool,
) -> None:
    """List every supported file below DATA_DIR with its checksum, shape and split."""
    from mrirecon.data.manifest import create_manifest
    from mrirecon.errors import path_text

    entries, bad = create_manifest(
        data_dir,
        output,
        fractions=parse_split(split),
        seed=seed,
        npy_axes=npy_axes,
        skip_bad=skip_bad,
        progress=not no_progress,
    )
    counts = {name: sum(e.split == name for e in entries) for name in ("train", "val", "test")}
    click.echo(
        f"wrote {output}: {len(entries)} file(s) "
        f"(train {counts['train']}, val {counts['val']}, test {counts['test']})"
    )
    for path, reason in bad:
        shown = path_text(path)
        click.echo(f"left out: {reason}" if shown in reason else f"left out: {shown}: {reason}")


@manifest.command()
@click.argument("manifest_csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--npy-axes", default=None, help="Axis order of its .npy files, as given to `manifest create`.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def verify(manifest_csv: Path, npy_axes: str | None, no_progress: bool) -> None:
    """Check that every file of MANIFEST_CSV is present, unchanged and readable (exit 1 if not)."""
    from mrirecon.data.manifest import verify_manifest

    check = verify_manifest(manifest_csv, npy_axes=npy_axes, progress=not no_progress, on_problem=click.echo)
    click.echo(
        f"{len(check.ok)} ok, {len(check.missing)} missing, {len(check.changed)} changed, "
        f"{len(check.unreadable)} unreadable"
    )
    if not check.passed:
        sys.exit(VERIFY_FAILED)
