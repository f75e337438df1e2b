"""The sampling mask of prospectively undersampled k-space, recovered from its exact zeros.

A scanner that skips a k-space location stores exactly zero there, in every coil. A location is
therefore sampled if any coil holds a non-zero value (:func:`sampled_locations`). The one rule
for what a reader serves (:func:`reduce_mask`): no mask when the data are fully sampled, possibly
inside never-acquired zero columns or rows (zero padding, partial Fourier); a line mask when every
column is sampled fully or not at all; else the 2-D pattern. :func:`mask_from_kspace` gives the
pattern of one slice as a tensor. Every reader and converter uses these.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mrirecon.errors import DataError

__all__ = ["mask_from_kspace", "reduce_mask", "sampled_locations"]


def sampled_locations(kspace: np.ndarray, *, path: Path | None = None) -> np.ndarray:
    """Where anything was measured: bool ``(H, W)``, a location counting when any slice and coil holds
    a non-zero value there.

    Args:
        kspace: ``(S, C, H, W)`` complex (a memory map is read one slice at a time).
        path: For error messages.

    Raises:
        DataError: if slices were sampled with different patterns, or nothing at all is non-zero.
    """
    union: np.ndarray | None = None
    first: np.ndarray | None = None
    for index in range(kspace.shape[0]):
        nonzero: np.ndarray = np.asarray(np.asarray(kspace[index] != 0).any(axis=0))
        if first is None:
            first, union = nonzero, nonzero.copy()
            continue
        assert union is not None
        if not np.array_equal(nonzero, first):
            raise DataError(
                f"slice {index} is sampled with another pattern than slice 0",
                path=path,
                hint="mrirecon serves one sampling mask per volume; split the slices into files",
            )
        union |= nonzero
    if union is None or not union.any():
        raise DataError("the k-space holds no non-zero sample", path=path)
    return union


def _block(line: np.ndarray) -> tuple[int, int] | None:
    """``[lo, hi)`` if the True values of ``line`` form one contiguous run, else None."""
    idx = np.flatnonzero(line)
    if idx.size and idx[-1] - idx[0] + 1 == idx.size:
        return int(idx[0]), int(idx[-1]) + 1
    return None


def reduce_mask(sampled: np.ndarray) -> tuple[np.ndarray | None, tuple[int, int]]:
    """The sampling mask to serve, from the locations that were measured.

    Args:
        sampled: bool ``(H, W)``.

    Returns:
        ``(mask, columns)``: ``mask`` is ``None`` when the data are fully sampled, possibly with
        never-acquired zero columns or rows around a fully sampled block (zero padding, partial
        Fourier), else bool ``(W,)`` when every column is sampled fully or not at all (a line
        mask), else the bool ``(H, W)`` pattern. ``columns`` is the acquired column range
        ``[left, right)`` (fastMRI's padding; ``(0, W)`` unless the data are fully sampled inside
        a block of columns).
    """
    width = sampled.shape[1]
    columns: np.ndarray = np.asarray(sampled.any(axis=0))
    rows: np.ndarray = np.asarray(sampled.any(axis=1))
    col_block, row_block = _block(columns), _block(rows)
    if col_block is not None and row_block is not None:
        inside = sampled[row_block[0] : row_block[1], col_block[0] : col_block[1]]
        if inside.all():
            return None, col_block
    if (columns == sampled.all(axis=0)).all():
        return columns.copy(), (0, width)
    return sampled.copy(), (0, width)


def mask_from_kspace(kspace: torch.Tensor, *, coil_axis: int | None = 0) -> torch.Tensor:
    """Recover the sampling pattern of one slice of undersampled k-space.

    Args:
        kspace: ``(C, H, W)`` (``coil_axis=0``) or ``(H, W)`` (``coil_axis=None``) complex k-space
            with exact zeros where nothing was sampled.
        coil_axis: The coil axis, or ``None`` for single-coil data.

    Returns:
        float32 0/1 mask ``(1, W)`` for line sampling or ``(H, W)`` for 2-D sampling.

    Raises:
        DataError: if nothing at all is sampled.
    """
    nonzero = kspace != 0
    if coil_axis is not None:
        nonzero = nonzero.any(dim=coil_axis)
    if nonzero.ndim != 2:
        raise ValueError(f"expected (C, H, W) or (H, W) k-space, got {tuple(kspace.shape)}")
    if not bool(nonzero.any()):
        raise DataError("the k-space holds no non-zero sample, so no sampling mask can be recovered")
    columns = nonzero.any(dim=0)
    if bool((columns == nonzero.all(dim=0)).all()):
        return columns.to(torch.float32).unsqueeze(0)
    return nonzero.to(torch.float32)
