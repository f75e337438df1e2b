"""The sampling mask of prospectively undersampled k-space, recovered from its zeros.

A scanner that skips a k-space location stores exactly zero there, in every coil. A location is
therefore sampled if any coil holds a non-zero value. When every column is either fully sampled or
fully empty along H, the mask is returned as a line mask ``(1, W)``; otherwise as ``(H, W)``.
"""

from __future__ import annotations

import torch

from mrirecon.errors import DataError

__all__ = ["mask_from_kspace"]


def mask_from_kspace(kspace: torch.Tensor, *, coil_axis: int | None = 0) -> torch.Tensor:
    """Recover the sampling pattern of undersampled k-space.

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
    full_columns = nonzero.all(dim=0)
    if bool((columns == full_columns).all()):
        return columns.to(torch.float32).unsqueeze(0)
    return nonzero.to(torch.float32)
