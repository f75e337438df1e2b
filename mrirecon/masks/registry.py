"""The explicit registry of mask types and ``create_mask_func``, the entry point by name."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mrirecon.errors import ConfigError
from mrirecon.masks.base import MaskFunc, Seed
from mrirecon.masks.cartesian import (
    EquispacedMaskFractionFunc,
    EquispacedMaskFunc,
    Gaussian1DMaskFunc,
    MagicMaskFractionFunc,
    MagicMaskFunc,
    RandomMaskFunc,
)
from mrirecon.masks.mixed import MixedMaskFunc
from mrirecon.masks.variable_density import Gaussian2DMaskFunc, PoissonDiscMaskFunc

__all__ = ["MASK_TYPES", "apply_mask", "create_mask_func"]

#: Every mask type by name. The first five are fastMRI's, with fastMRI's names; ``mixed`` draws a family
#: and an acceleration per call (:mod:`mrirecon.masks.mixed`).
MASK_TYPES: dict[str, type[MaskFunc]] = {
    "random": RandomMaskFunc,
    "equispaced": EquispacedMaskFunc,
    "equispaced_fraction": EquispacedMaskFractionFunc,
    "magic": MagicMaskFunc,
    "magic_fraction": MagicMaskFractionFunc,
    "gaussian1d": Gaussian1DMaskFunc,
    "gaussian2d": Gaussian2DMaskFunc,
    "poisson2d": PoissonDiscMaskFunc,
    "mixed": MixedMaskFunc,
}


def create_mask_func(
    name: str,
    center_fractions: Sequence[float],
    accelerations: Sequence[float],
    seed: int | None = None,
    **options: object,
) -> MaskFunc:
    """Build a mask function by name.

    Args:
        name: One of :data:`MASK_TYPES`.
        center_fractions: Fully sampled centre fractions, one per acceleration.
        accelerations: Target accelerations.
        seed: Seed of the mask function's own generator.
        **options: Extra options of the mask type (``allow_any_combination``; ``fwhm`` for Gaussian
            masks; ``crop_corner``, ``tol`` for Poisson-disc).

    Returns:
        A callable ``(shape, offset=None, seed=None) -> (mask, num_low_frequencies)``.

    Raises:
        ConfigError: for an unknown name or invalid arguments.
    """
    cls = MASK_TYPES.get(name)
    if cls is None:
        raise ConfigError(f"unknown mask type '{name}'", hint=f"choose one of: {', '.join(MASK_TYPES)}")
    try:
        return cls(center_fractions, accelerations, seed=seed, **options)  # type: ignore[arg-type]
    except TypeError as error:
        raise ConfigError(f"bad options for mask type '{name}': {error}") from error


def apply_mask(
    kspace: torch.Tensor,
    mask_func: MaskFunc,
    *,
    offset: int | None = None,
    seed: Seed = None,
    padding: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Undersample k-space with a mask function.

    Args:
        kspace: ``(..., H, W)`` complex k-space.
        mask_func: The mask function.
        offset: Offset for equispaced and magic masks.
        seed: Per-call seed (see :mod:`mrirecon.masks.seeding`).
        padding: ``(left, right)``: columns outside ``[left, right)`` were never acquired (fastMRI's
            zero-padded columns) and are removed from the mask.

    Returns:
        ``(masked_kspace, mask, num_low_frequencies)``. The masked k-space has no negative zeros
        (fastMRI's ``+ 0.0``), so nothing leaks through the sign bit of unsampled locations.
    """
    mask, num_low = mask_func(kspace.shape, offset=offset, seed=seed)
    mask = mask.to(kspace.device)
    if padding is not None:
        left, right = padding
        mask[..., :left] = 0
        mask[..., right:] = 0
    masked = kspace * mask + 0.0
    return masked, mask, num_low
