"""Helpers shared by the baselines: the input check (the one every reconstructor uses, from
:mod:`mrirecon.models.inputs`) and the fully sampled centre (ACS) of every mask in a batch.
"""

from __future__ import annotations

import torch

from mrirecon.masks import acs_mask
from mrirecon.models.inputs import check_inputs
from mrirecon.shapes import check_shape

__all__ = ["acs_regions", "check_inputs"]


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
