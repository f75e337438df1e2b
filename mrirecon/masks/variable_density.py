"""2-D variable-density masks over (H, W): Gaussian and Poisson-disc, each with a fully sampled centre.

These undersample both phase-encode directions, as in 3-D Cartesian acquisitions decoupled along
the readout (the CIRIM paper's 3-D FLAIR, Calgary-Campinas, SKM-TEA). ``center_fraction`` is the
side of the fully sampled centre block as a fraction of each axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mrirecon.errors import ConfigError
from mrirecon.masks.base import MaskFunc

__all__ = ["Gaussian2DMaskFunc", "PoissonDiscMaskFunc", "center_block_mask"]


def center_block_mask(
    height: int, width: int, center_fraction: float, size: int | None = None
) -> tuple[np.ndarray, int]:
    """A boolean (H, W) mask with a centred block of ``round(H·cf) × round(W·cf)`` (at least 1×1) set,
    or, with ``size``, a square of ``size × size`` samples (clipped to the grid).

    Returns:
        The mask and the block's width (the "number of low frequencies" along W).
    """
    if size is not None:
        bh, bw = min(int(size), height), min(int(size), width)
    else:
        bh = max(round(height * center_fraction), 1)
        bw = max(round(width * center_fraction), 1)
    mask = np.zeros((height, width), dtype=bool)
    top = (height - bh + 1) // 2
    left = (width - bw + 1) // 2
    mask[top : top + bh, left : left + bw] = True
    return mask, bw


def _check_size(size: int | None) -> int | None:
    if size is not None and (isinstance(size, bool) or int(size) != size or size < 1):
        raise ConfigError(
            f"calibration_size must be a positive number of samples, got {size}",
            hint="give the side of the fully sampled centre in pixels, e.g. 16",
        )
    return None if size is None else int(size)


class Gaussian2DMaskFunc(MaskFunc):
    """Points drawn without replacement with a 2-D Gaussian density, plus a fully sampled centre block.

    Exactly ``round(H·W/R)`` points are sampled (the centre included).

    Args:
        center_fractions, accelerations, allow_any_combination, seed: as :class:`MaskFunc`.
        fwhm: Full width at half maximum of the density on the normalised axes [−1, 1]².
        calibration_size: Side in samples of a square fully sampled centre (e.g. 20 for a 20 × 20
            calibration region) instead of the centre fraction.
    """

    kind = "2d"

    def __init__(
        self,
        center_fractions: Sequence[float],
        accelerations: Sequence[float],
        allow_any_combination: bool = False,
        seed: int | None = None,
        fwhm: float = 0.7,
        calibration_size: int | None = None,
    ):
        super().__init__(center_fractions, accelerations, allow_any_combination, seed)
        if fwhm <= 0:
            raise ConfigError(f"fwhm must be positive, got {fwhm}", hint="give the width in pixels")
        self.fwhm = fwhm
        self.calibration_size = _check_size(calibration_size)

    def sample(self, shape: tuple[int, ...], offset: int | None) -> tuple[torch.Tensor, int]:
        height, width = shape[-2:]
        center_fraction, acceleration = self.choose_acceleration()
        mask, num_low = center_block_mask(height, width, center_fraction, self.calibration_size)
        target = max(round(height * width / acceleration), int(mask.sum()))
        candidates = np.flatnonzero(~mask.ravel())
        remaining = min(target - int(mask.sum()), candidates.size)
        if remaining > 0:
            sigma = self.fwhm / np.sqrt(8.0 * np.log(2.0))
            ky, kx = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
            density = np.exp(-0.5 * (ky**2 + kx**2) / sigma**2).ravel()[candidates]
            chosen = self.rng.choice(candidates, size=remaining, replace=False, p=density / density.sum())
            mask.ravel()[chosen] = True
        return self.reshape_plane_mask(mask, shape), num_low


class PoissonDiscMaskFunc(MaskFunc):
    """Variable-density Poisson-disc sampling (SigPy's ``poisson``) with a fully sampled centre block.

    SigPy searches the density slope until the acceleration is within ``tol`` of the target, so the
    effective acceleration is close to, not exactly, R. A per-call integer seed for SigPy is drawn
    from the mask function's generator, so seeding behaves as for every other mask.

    Args:
        center_fractions, accelerations, allow_any_combination, seed: as :class:`MaskFunc`.
        crop_corner: Leave the k-space corners unsampled.
        tol: Allowed relative deviation of the acceleration.
        calibration_size: Side in samples of a square fully sampled centre (e.g. 20 for a 20 × 20
            calibration region) instead of the centre fraction.
    """

    kind = "2d"

    def __init__(
        self,
        center_fractions: Sequence[float],
        accelerations: Sequence[float],
        allow_any_combination: bool = False,
        seed: int | None = None,
        crop_corner: bool = True,
        tol: float = 0.1,
        calibration_size: int | None = None,
    ):
        super().__init__(center_fractions, accelerations, allow_any_combination, seed)
        self.crop_corner = crop_corner
        self.tol = tol
        self.calibration_size = _check_size(calibration_size)

    def sample(self, shape: tuple[int, ...], offset: int | None) -> tuple[torch.Tensor, int]:
        from sigpy.mri import poisson  # lazy: numba compiles on first use

        height, width = shape[-2:]
        center_fraction, acceleration = self.choose_acceleration()
        block, num_low = center_block_mask(height, width, center_fraction, self.calibration_size)
        rows = int(block.any(axis=1).sum())
        sigpy_seed = int(self.rng.randint(0, 2**31 - 1))
        # SigPy's tolerance is absolute (|R_actual − R| < tol): ours is relative. Its slope search
        # misses now and then on small grids: try other seeds, then sample the corners too.
        attempts = [(sigpy_seed + k, self.crop_corner) for k in range(3)] + [(sigpy_seed + 3, False)]
        for seed, crop_corner in attempts:
            try:
                pattern = poisson(
                    (height, width),
                    float(acceleration),
                    calib=(rows, num_low),
                    dtype=np.complex64,
                    crop_corner=crop_corner,
                    seed=seed,
                    tol=self.tol * float(acceleration),
                )
                break
            except ValueError:
                continue
        else:
            raise ConfigError(
                f"no Poisson-disc mask of acceleration {acceleration:g} with a {rows} × {num_low} "
                f"calibration block fits a {height} × {width} grid",
                hint="lower the acceleration or the calibration size",
            )
        mask = (np.abs(pattern) > 0) | block
        return self.reshape_plane_mask(mask, shape), num_low
