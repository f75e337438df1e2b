"""Checks and helpers shared by the baselines: the shapes of a reconstructor's inputs, and the
fully sampled centre (ACS) of every mask in a batch.
"""

from __future__ import annotations

import torch

from mrirecon.masks import acs_mask
from mrirecon.shapes import check_complex, check_shape

__all__ = ["acs_regions", "check_inputs"]


def check_inputs(masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor) -> dict[str, int]:
    """Check the arguments of :meth:`Reconstructor.forward` and return their sizes.

    Args:
        masked_kspace: ``(B, C, H, W)`` complex.
        mask: ``(B|1, 1, 1|H, W)`` real or boolean, 1 = sampled.
        coil_maps: ``(B, C, H, W)`` complex.

    Returns:
        ``{"B": ..., "C": ..., "H": ..., "W": ...}``.

    Raises:
        TypeError: for a real k-space or coil maps, or a complex mask.
        ValueError: for shapes that do not match (they would broadcast silently otherwise).
    """
    check_complex(masked_kspace, name="masked_kspace")
    check_complex(coil_maps, name="coil_maps")
    dims = check_shape(masked_kspace, "B C H W", name="masked_kspace")
    check_shape(coil_maps, "B C H W", name="coil_maps", dims=dims)
    if mask.is_complex():
        raise TypeError("the sampling mask must be real or boolean")
    expected = ((1, dims["B"]), (1,), (1, dims["H"]), (dims["W"],))
    if mask.ndim != 4 or any(size not in allowed for size, allowed in zip(mask.shape, expected)):
        raise ValueError(
            f"mask must have shape (B|1, 1, 1|H, W) = ({dims['B']}|1, 1, 1|{dims['H']}, {dims['W']}) "
            f"for k-space {tuple(masked_kspace.shape)}, got {tuple(mask.shape)}"
        )
    return dims


def acs_regions(mask: torch.Tensor) -> torch.Tensor:
    """The fully sampled centre block of each mask of a batch, as 0/1 masks.

    Args:
        mask: ``(B, 1, 1|H, W)`` real or boolean.

    Returns:
        float32 ``(B, 1, 1|H, W)`` on the mask's device: 1 inside each sample's largest fully
        sampled block around the k-space centre (:func:`mrirecon.masks.acs_mask`), 0 elsewhere.
        Masks shared by the batch are described once.
    """
    check_shape(mask, "B 1 H W", name="mask")
    first = mask[:1]
    if mask.shape[0] == 1 or bool((mask == first).all()):
        return acs_mask(first).expand(mask.shape[0], -1, -1, -1)
    return torch.cat([acs_mask(mask[i : i + 1]) for i in range(mask.shape[0])])
