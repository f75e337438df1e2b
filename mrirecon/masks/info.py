"""What a mask is: its effective acceleration and its fully sampled centre (ACS) region.

Works on any mask, generated or recovered from prospectively undersampled data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["MaskInfo", "acs_mask", "describe_mask"]


@dataclass(frozen=True)
class MaskInfo:
    """Summary of a sampling mask.

    Attributes:
        kind: ``"1d"`` (lines along W) or ``"2d"`` (points over H × W).
        acceleration: Effective acceleration: points in the grid / points sampled.
        sampled_fraction: ``1 / acceleration``.
        acs_shape: ``(lines,)`` for 1-D masks, ``(rows, columns)`` for 2-D masks: the largest fully
            sampled block around the k-space centre.
        acs_slices: The index ranges of that block along W (1-D) or along (H, W) (2-D).
    """

    kind: str
    acceleration: float
    sampled_fraction: float
    acs_shape: tuple[int, ...]
    acs_slices: tuple[slice, ...]

    @property
    def num_low_frequencies(self) -> int:
        """Fully sampled centre lines along W."""
        return self.acs_shape[-1]


def _as_plane(mask: torch.Tensor | np.ndarray) -> tuple[np.ndarray, str]:
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    array = array != 0
    squeezed = np.squeeze(array)
    if squeezed.ndim == 0:
        squeezed = squeezed.reshape(1)
    if squeezed.ndim == 1:
        return squeezed.reshape(1, -1), "1d"
    line = array.ndim >= 2 and array.shape[-2] == 1
    plane = array.reshape(-1, 1 if line else array.shape[-2], array.shape[-1])
    if plane.shape[0] > 1 and not (plane == plane[:1]).all():
        raise ValueError("describe_mask takes one mask; got a batch of different masks")
    return plane[0], "1d" if line else "2d"


def _run_around(line: np.ndarray, center: int) -> tuple[int, int]:
    """The contiguous run of True values containing ``center`` as [lo, hi)."""
    if not line[center]:
        return center, center
    lo = center
    while lo > 0 and line[lo - 1]:
        lo -= 1
    hi = center + 1
    while hi < line.size and line[hi]:
        hi += 1
    return lo, hi


def describe_mask(mask: torch.Tensor | np.ndarray) -> MaskInfo:
    """Effective acceleration and fully sampled centre of a mask.

    Args:
        mask: A mask broadcastable against k-space: ``(..., 1, W)`` / ``(W,)`` for lines along W,
            ``(..., H, W)`` for 2-D patterns; non-zero = sampled.

    Returns:
        A :class:`MaskInfo`.
    """
    plane, kind = _as_plane(mask)
    total = plane.size
    sampled = int(plane.sum())
    acceleration = float(total / sampled) if sampled else float("inf")
    if kind == "1d":
        line = plane[0]
        lo, hi = _run_around(line, line.size // 2)
        return MaskInfo(kind, acceleration, sampled / total, (hi - lo,), (slice(lo, hi),))
    height, width = plane.shape
    cy, cx = height // 2, width // 2
    r0, r1 = _run_around(plane[:, cx], cy)
    runs = [_run_around(plane[row], cx) for row in range(r0, r1)]
    best = (0, cy, cy, cx, cx)
    # Every block [top, bottom) of rows around the centre: its columns are the intersection of the
    # rows' runs around the centre column. Keep the block of largest area.
    for top in range(cy, r0 - 1, -1):
        c0, c1 = 0, width
        for row in range(top, cy):
            lo, hi = runs[row - r0]
            c0, c1 = max(c0, lo), min(c1, hi)
        for bottom in range(cy + 1, r1 + 1):
            lo, hi = runs[bottom - 1 - r0]
            c0, c1 = max(c0, lo), min(c1, hi)
            area = (bottom - top) * max(c1 - c0, 0)
            if area > best[0]:
                best = (area, top, bottom, c0, c1)
    _, r0, r1, c0, c1 = best
    return MaskInfo(kind, acceleration, sampled / total, (r1 - r0, c1 - c0), (slice(r0, r1), slice(c0, c1)))


def acs_mask(mask: torch.Tensor) -> torch.Tensor:
    """A 0/1 tensor of the shape of ``mask`` that keeps only its fully sampled centre block.

    Args:
        mask: One mask, ``(1, ..., 1, W)`` or ``(1, ..., 1, H, W)`` (leading axes of size 1).

    Returns:
        float32 tensor of the same shape and device.
    """
    info = describe_mask(mask)
    out = torch.zeros_like(mask, dtype=torch.float32)
    if info.kind == "1d":
        out[..., info.acs_slices[0]] = 1.0
    else:
        out[..., info.acs_slices[0], info.acs_slices[1]] = 1.0
    return out
