"""Run-time shape checks for public functions.

Comments about shapes drift; checks do not. ``check_shape(x, "B C H W", name="kspace")`` raises a
``ValueError`` naming the argument, the expected axes and the actual shape. Axis names bind across
calls through a shared ``dims`` dictionary, so two tensors can be checked for matching sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

__all__ = ["center_crop", "check_complex", "check_mask", "check_shape", "crop_offsets"]


def check_shape(
    x: torch.Tensor,
    spec: str,
    *,
    name: str = "tensor",
    dims: dict[str, int] | None = None,
) -> dict[str, int]:
    """Check that ``x`` has the axes named in ``spec`` and return the bound sizes.

    Args:
        x: The tensor to check.
        spec: Space-separated axis names, e.g. ``"B C H W"``. A name that is a number must match
            exactly; ``"*"`` as the first entry accepts any number of leading axes; ``"1|H"`` style
            alternatives are not supported (use two checks).
        name: The argument's name, for the message.
        dims: Sizes bound by earlier checks; updated in place with new bindings.

    Returns:
        The dictionary of bound axis sizes.

    Raises:
        ValueError: if the rank or a bound size does not match.
    """
    bound = {} if dims is None else dims
    axes = spec.split()
    leading = bool(axes) and axes[0] == "*"
    if leading:
        axes = axes[1:]
    if (leading and x.ndim < len(axes)) or (not leading and x.ndim != len(axes)):
        want = ("... " if leading else "") + " ".join(axes)
        raise ValueError(f"{name} must have shape ({want}), got {tuple(x.shape)}")
    actual = x.shape[x.ndim - len(axes) :]
    for axis, size in zip(axes, actual):
        if axis.isdigit():
            if size != int(axis):
                raise ValueError(f"{name}: axis '{axis}' must have size {axis}, got shape {tuple(x.shape)}")
            continue
        if axis in bound and bound[axis] != size:
            raise ValueError(
                f"{name}: axis '{axis}' has size {size}, but {bound[axis]} elsewhere; "
                f"got shape {tuple(x.shape)}"
            )
        bound[axis] = int(size)
    return bound


def check_complex(x: torch.Tensor, *, name: str = "tensor") -> None:
    """Raise ``TypeError`` unless ``x`` is a complex tensor."""
    if not x.is_complex():
        raise TypeError(f"{name} must be a complex tensor (complex64), got dtype {x.dtype}")


def check_mask(mask: torch.Tensor, shape: Sequence[int]) -> None:
    """Raise unless ``mask`` is a real or boolean sampling mask of the k-space's ``shape`` rank
    whose axes are 1 or the k-space's (``(B, 1, 1, W)`` for line masks against ``(B, C, H, W)``):
    a mask of another rank or size would broadcast into another pattern silently."""
    if mask.is_complex():
        raise TypeError("the sampling mask must be real or boolean")
    shape = tuple(int(n) for n in shape)
    if mask.ndim != len(shape):
        raise ValueError(
            f"mask must have the rank of the k-space {shape} with size-1 axes where it "
            f"broadcasts, e.g. (B, 1, 1, W); got {tuple(mask.shape)}"
        )
    for axis, (m, k) in enumerate(zip(mask.shape, shape)):
        if m not in (1, k):
            raise ValueError(
                f"mask {tuple(mask.shape)} does not broadcast against k-space {shape} on axis {axis}"
            )


ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def crop_offsets(full: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """Row and column offsets of fastMRI's centre crop: ``((H − h) // 2, (W − w) // 2)``.

    Raises:
        ValueError: if ``size`` is larger than ``full`` along an axis.
    """
    if size[0] > full[0] or size[1] > full[1]:
        raise ValueError(f"cannot crop {full[0]}×{full[1]} to {size[0]}×{size[1]}: the crop is larger")
    return (full[0] - size[0]) // 2, (full[1] - size[1]) // 2


def center_crop(x: ArrayT, size: tuple[int, int]) -> ArrayT:
    """The centre ``(h, w)`` of the last two axes of an array or tensor ``(..., H, W)`` (fastMRI's
    offsets ``(H − h) // 2``), a view. The one centre crop of mrirecon.

    Raises:
        ValueError: if ``size`` is larger than ``(H, W)`` (callers that want clamping ask for
            ``min(size, (H, W))``).
    """
    h, w = int(size[0]), int(size[1])
    top, left = crop_offsets((int(x.shape[-2]), int(x.shape[-1])), (h, w))
    return x[..., top : top + h, left : left + w]
