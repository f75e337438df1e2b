"""A mask function that draws the mask family, the acceleration and a realistic calibration per call.

One model trained on it serves the common protocols: 1-D line masks (equispaced with fastMRI's
fixed centre fraction, random) and 2-D variable-density masks (Poisson disc, Gaussian) at
accelerations drawn from a list (2–10 by default). Calibration regions follow practice rather
than one fixed fraction:

- 1-D masks: ``center_fraction = clip(0.32 / R, 0.04, 0.16)`` (fastMRI's 0.08 at 4× and 0.04 at
  8×), or the fraction given for that acceleration;
- 2-D masks: a square calibration block of ``calibration`` pixels (default 16–24, drawn), as in
  Poisson-disc protocols with a 20 × 20 or 24 × 24 ACS region (smaller on small grids, where it
  may hold at most half the samples).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mrirecon.errors import ConfigError
from mrirecon.masks.base import MaskFunc
from mrirecon.masks.cartesian import EquispacedMaskFractionFunc, RandomMaskFunc
from mrirecon.masks.variable_density import Gaussian2DMaskFunc, PoissonDiscMaskFunc

__all__ = ["MIXED_FAMILIES", "MixedMaskFunc", "line_center_fraction"]

#: The families a mixed mask draws from, by name.
MIXED_FAMILIES: dict[str, type[MaskFunc]] = {
    "equispaced_fraction": EquispacedMaskFractionFunc,
    "random": RandomMaskFunc,
    "poisson2d": PoissonDiscMaskFunc,
    "gaussian2d": Gaussian2DMaskFunc,
}


def line_center_fraction(acceleration: float) -> float:
    """fastMRI-like fully sampled centre of a line mask: ``clip(0.32 / R, 0.04, 0.16)``."""
    return float(np.clip(0.32 / acceleration, 0.04, 0.16))


class MixedMaskFunc(MaskFunc):
    """Per call: a family, an acceleration, a calibration region, then that family's mask.

    Args:
        center_fractions: Centre fraction of the line masks per acceleration; 0 means the rule of
            :func:`line_center_fraction`.
        accelerations: Accelerations to draw from (uniformly).
        allow_any_combination, seed: as :class:`MaskFunc`.
        families: Names of :data:`MIXED_FAMILIES` to draw from (uniformly).
        calibration: ``(least, most)`` side in pixels of the 2-D masks' calibration square.

    The returned mask is ``(1, ..., 1, W)`` for line families and ``(1, ..., H, W)`` for 2-D ones,
    so a batch must not mix them (train with batch size 1, or one family per batch).
    """

    kind = "mixed"

    def __init__(
        self,
        center_fractions: Sequence[float],
        accelerations: Sequence[float],
        allow_any_combination: bool = False,
        seed: int | None = None,
        families: Sequence[str] = tuple(MIXED_FAMILIES),
        calibration: Sequence[int] = (16, 24),
    ):
        super().__init__(center_fractions, accelerations, allow_any_combination, seed)
        families = tuple(families)
        unknown = [f for f in families if f not in MIXED_FAMILIES]
        if not families or unknown:
            raise ConfigError(
                f"unknown mixed mask families {unknown or '(none given)'}",
                hint=f"choose from {', '.join(MIXED_FAMILIES)}",
            )
        calibration = tuple(int(c) for c in calibration)
        if len(calibration) != 2 or not 1 <= calibration[0] <= calibration[1]:
            raise ConfigError(f"calibration must be (least, most) pixels, got {calibration}")
        for family in families:  # a line family's own checks, now rather than at the first slice drawn
            cls = MIXED_FAMILIES[family]
            if cls.kind != "2d":
                for fraction, acceleration in self.settings():
                    if fraction > 0:
                        cls([fraction], [acceleration])
        self.families = families
        self.calibration = calibration

    def sample(self, shape: tuple[int, ...], offset: int | None) -> tuple[torch.Tensor, int]:
        family = self.families[self.rng.randint(len(self.families))]
        fraction, acceleration = self.choose_acceleration()
        cls = MIXED_FAMILIES[family]
        options: dict[str, int] = {}
        if cls.kind == "2d":
            height, width = shape[-2:]
            side = int(self.rng.randint(self.calibration[0], self.calibration[1] + 1))
            # the calibration square may hold at most half the samples the acceleration allows
            options["calibration_size"] = max(2, min(side, int(np.sqrt(0.5 * height * width / acceleration))))
        elif fraction <= 0:
            fraction = line_center_fraction(acceleration)
        inner = cls([fraction], [acceleration], seed=int(self.rng.randint(0, 2**31 - 1)), **options)  # type: ignore[arg-type]
        return inner.sample(shape, offset)
