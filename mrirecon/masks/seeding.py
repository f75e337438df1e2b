"""Seeds for masks: deterministic per volume for validation and test, fresh for training.

fastMRI derives the per-volume seed from the file name: ``tuple(map(ord, fname))``. The same file
then gets the same mask on every slice and in every epoch, on every machine, whatever the order in
which volumes are visited. Training leaves the seed out, so each slice gets a fresh mask.
"""

from __future__ import annotations

from pathlib import PurePath

__all__ = ["mask_seed", "volume_seed"]


def volume_seed(fname: str | PurePath) -> tuple[int, ...]:
    """fastMRI's per-volume seed: the character codes of the file's base name (``file1000001.h5``)."""
    name = PurePath(fname).name
    if not name:
        raise ValueError("a file name is needed to derive a per-volume mask seed")
    return tuple(map(ord, name))


def mask_seed(fname: str | PurePath, *, deterministic: bool) -> tuple[int, ...] | None:
    """The seed to pass to a mask function: per volume when ``deterministic`` (validation, test,
    inference), ``None`` (fresh randomness) for training."""
    return volume_seed(fname) if deterministic else None
