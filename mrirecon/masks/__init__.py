"""Undersampling masks: fastMRI's five mask functions (bit-exact), Gaussian 1-D/2-D and Poisson-disc
masks, per-volume seeding, mask recovery from prospectively undersampled data, and mask summaries.

Entry point: :func:`create_mask_func`.
"""

from mrirecon.masks.base import MaskFunc, temp_seed
from mrirecon.masks.info import MaskInfo, acs_mask, describe_mask
from mrirecon.masks.recovery import mask_from_kspace, reduce_mask, sampled_locations
from mrirecon.masks.registry import MASK_TYPES, apply_mask, create_mask_func
from mrirecon.masks.seeding import mask_seed, volume_seed

__all__ = [
    "MASK_TYPES",
    "MaskFunc",
    "MaskInfo",
    "acs_mask",
    "apply_mask",
    "create_mask_func",
    "describe_mask",
    "mask_from_kspace",
    "mask_seed",
    "reduce_mask",
    "sampled_locations",
    "temp_seed",
    "volume_seed",
]
