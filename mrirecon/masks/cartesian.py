"""Cartesian line masks along W: fastMRI's five mask functions, bit-for-bit, and a Gaussian 1-D mask.

fastMRI's semantics (``fastmri.data.subsample`` 0.3.0), reproduced with the same random-number call
order so that the same seed gives the same mask:

- every mask samples a centre block of ``num_low = round(W · centre_fraction)`` columns starting at
  ``(W − num_low + 1) // 2``;
- ``random``: every other column with probability ``(W/R − num_low)/(W − num_low)``
  (acceleration R in expectation);
- ``equispaced``: every R-th column from a random offset in ``[0, R)`` (undershoots R);
- ``equispaced_fraction``: columns spaced by the adjusted acceleration
  ``R(num_low − W)/(num_low·R − W)`` so that the total is W/R (not strictly equispaced: fastMRI
  issue #54, kept because the public test masks were made this way);
- ``magic``: Defazio's offset sampling that exploits conjugate symmetry (undershoots R);
- ``magic_fraction``: ``magic`` with the acceleration adjusted to hit W/R lines.

The deliberate differences: fastMRI crashes in ``magic_fraction`` when the centre alone already
reaches W/R lines; here the outer mask is then empty. ``equispaced`` and ``magic`` step by whole
lines and refuse a fractional R (fastMRI fails on one with a TypeError).
"""

from __future__ import annotations

import numpy as np
import torch

from mrirecon.errors import ConfigError
from mrirecon.masks.base import MaskFunc

__all__ = [
    "EquispacedMaskFractionFunc",
    "EquispacedMaskFunc",
    "Gaussian1DMaskFunc",
    "MagicMaskFractionFunc",
    "MagicMaskFunc",
    "RandomMaskFunc",
]


def center_line_mask(num_cols: int, num_low: int) -> np.ndarray:
    """0/1 float32 vector with ``num_low`` centre columns set, placed as fastMRI places them."""
    mask = np.zeros(num_cols, dtype=np.float32)
    pad = (num_cols - num_low + 1) // 2
    mask[pad : pad + num_low] = 1
    return mask


class _LineMaskFunc(MaskFunc):
    """A centre block plus an outer pattern (``outer``) combined by maximum."""

    def sample(self, shape: tuple[int, ...], offset: int | None) -> tuple[torch.Tensor, int]:
        num_cols = shape[-1]
        center_fraction, acceleration = self.choose_acceleration()
        num_low = round(num_cols * center_fraction)
        center = center_line_mask(num_cols, num_low)
        outer = np.asarray(self.outer(num_cols, acceleration, offset, num_low), dtype=np.float32)
        return self.reshape_line_mask(np.maximum(center, outer), shape), num_low

    def outer(self, num_cols: int, acceleration: float, offset: int | None, num_low: int) -> np.ndarray:
        """The lines outside the centre block."""
        raise NotImplementedError


class RandomMaskFunc(_LineMaskFunc):
    """Columns drawn independently with the probability that gives acceleration R in expectation."""

    def outer(self, num_cols: int, acceleration: float, offset: int | None, num_low: int) -> np.ndarray:
        if num_low >= num_cols:  # fastMRI divides by zero here
            raise ConfigError(
                f"random: the centre fraction rounds to all {num_cols} columns, so there are none to draw "
                f"for acceleration {acceleration:g}",
                hint="choose a smaller centre fraction (centre fraction × acceleration must be below 1)",
            )
        prob = (num_cols / acceleration - num_low) / (num_cols - num_low)
        return self.rng.uniform(size=num_cols) < prob


class EquispacedMaskFunc(_LineMaskFunc):
    """Every R-th column from an offset (random in [0, R) unless given): GRAPPA-style sampling."""

    integer_accelerations = True

    def outer(self, num_cols: int, acceleration: float, offset: int | None, num_low: int) -> np.ndarray:
        if offset is None:
            offset = self.rng.randint(0, high=round(acceleration))
        mask = np.zeros(num_cols, dtype=np.float32)
        mask[offset :: int(acceleration)] = 1
        return mask


class EquispacedMaskFractionFunc(_LineMaskFunc):
    """Approximately equispaced columns with the spacing adjusted so that the total is W/R."""

    def __init__(
        self,
        center_fractions: list[float] | tuple[float, ...],
        accelerations: list[float] | tuple[float, ...],
        allow_any_combination: bool = False,
        seed: int | None = None,
    ):
        super().__init__(center_fractions, accelerations, allow_any_combination, seed)
        for fraction, acceleration in self.settings():  # refused now, not when the first slice is drawn
            if fraction * acceleration >= 1:
                raise ConfigError(
                    f"equispaced_fraction: a centre fraction of {fraction:g} alone samples "
                    f"1/{1 / fraction:.3g} of the lines, so acceleration {acceleration:g} leaves none "
                    "outside the centre",
                    hint="choose a smaller centre fraction (centre fraction × acceleration must be below 1)",
                )

    def outer(self, num_cols: int, acceleration: float, offset: int | None, num_low: int) -> np.ndarray:
        if num_low * acceleration >= num_cols:
            # fastMRI divides by zero (or spaces the lines by a negative step) here.
            raise ConfigError(
                f"equispaced_fraction: the {num_low} fully sampled centre lines alone reach acceleration "
                f"{num_cols / num_low:.3g}, so {acceleration:g}x leaves no lines outside the centre",
                hint="choose a smaller centre fraction (centre fraction × acceleration must be below 1)",
            )
        adjusted = (acceleration * (num_low - num_cols)) / (num_low * acceleration - num_cols)
        if offset is None:
            offset = self.rng.randint(0, high=round(adjusted))
        mask = np.zeros(num_cols)
        samples = np.around(np.arange(offset, num_cols - 1, adjusted)).astype(np.uint)
        mask[samples] = 1.0
        return mask


def _magic_outer(
    rng: np.random.RandomState, num_cols: int, acceleration: int, offset: int | None
) -> np.ndarray:
    """Defazio's offset sampling: equispaced on each half with offsets that complement each other."""
    if acceleration <= 0:
        return np.zeros(num_cols, dtype=np.float32)
    if offset is None:
        offset = rng.randint(0, high=acceleration)
    if offset % 2 == 0:
        offset_pos, offset_neg = offset + 1, offset + 2
    else:
        offset_pos, offset_neg = offset + 2, offset - 1
    poslen = (num_cols + 1) // 2
    neglen = num_cols - poslen
    positive = np.zeros(poslen, dtype=np.float32)
    negative = np.zeros(neglen, dtype=np.float32)
    positive[offset_pos::acceleration] = 1
    negative[offset_neg::acceleration] = 1
    return np.fft.fftshift(np.concatenate((positive, np.flip(negative))))


class MagicMaskFunc(_LineMaskFunc):
    """Offset sampling exploiting conjugate symmetry (Defazio 2019, arXiv:1912.01101)."""

    integer_accelerations = True

    def outer(self, num_cols: int, acceleration: float, offset: int | None, num_low: int) -> np.ndarray:
        return _magic_outer(self.rng, num_cols, int(acceleration), offset)


class MagicMaskFractionFunc(MaskFunc):
    """Offset sampling with the acceleration adjusted so that the total number of lines is W/R."""

    def sample(self, shape: tuple[int, ...], offset: int | None) -> tuple[torch.Tensor, int]:
        num_cols = shape[-1]
        fraction, acceleration = self.choose_acceleration()
        num_low = round(num_cols * fraction)
        target = round(num_cols / acceleration)
        num_low = max(min(num_low, target), 1)
        remaining = target - num_low
        adjusted = round(num_cols / remaining) if remaining > 0 else 0
        center = center_line_mask(num_cols, num_low)
        outer = _magic_outer(self.rng, num_cols, adjusted, offset)
        return self.reshape_line_mask(np.maximum(center, outer), shape), num_low


class Gaussian1DMaskFunc(_LineMaskFunc):
    """Columns drawn without replacement with a Gaussian density over k_y, plus the centre block.

    Exactly ``round(W/R)`` columns are sampled (the centre included), so the acceleration is met.

    Args:
        fwhm: Full width at half maximum of the density, on the normalised axis [−1, 1].
        (the other arguments as :class:`~mrirecon.masks.base.MaskFunc`)
    """

    def __init__(self, *args: object, fwhm: float = 0.7, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if fwhm <= 0:
            raise ConfigError(f"fwhm must be positive, got {fwhm}", hint="give the width in columns")
        self.fwhm = fwhm

    def outer(self, num_cols: int, acceleration: float, offset: int | None, num_low: int) -> np.ndarray:
        target = max(round(num_cols / acceleration), num_low)
        center = center_line_mask(num_cols, num_low).astype(bool)
        candidates = np.flatnonzero(~center)
        remaining = min(target - num_low, candidates.size)
        mask = np.zeros(num_cols, dtype=np.float32)
        if remaining <= 0:
            return mask
        sigma = self.fwhm / np.sqrt(8.0 * np.log(2.0))
        axis = np.linspace(-1.0, 1.0, num_cols)
        density = np.exp(-0.5 * (axis[candidates] / sigma) ** 2)
        chosen = self.rng.choice(candidates, size=remaining, replace=False, p=density / density.sum())
        mask[chosen] = 1
        return mask
