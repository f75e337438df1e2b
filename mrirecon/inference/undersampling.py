"""How each input is undersampled, and what its outputs say about it.

- Prospectively undersampled input (the file has a ``mask``, or its k-space has exact-zero columns
  or locations from which the reader recovered one) is reconstructed from what was measured, with
  its own mask: ``undersampling = "prospective"``, the mask's effective acceleration, ``mask_type``
  ``recovered`` when the mask was recovered. ``--mask``/``--acceleration`` do not apply to it (a
  one-line note says so).
- Fully sampled input is undersampled only when the user asks (``--mask TYPE --acceleration R``):
  ``undersampling = "retrospective"``. The mask is seeded from the file name (fastMRI's per-volume
  seed), so every run, every rank and every restart draws the same mask for the same file.
- Otherwise the fully sampled data are reconstructed as they are: ``undersampling = "none"``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from mrirecon.errors import ConfigError, Notice
from mrirecon.masks import MASK_TYPES, MaskFunc, create_mask_func, describe_mask

__all__ = ["Undersampling", "VolumeSampling"]


@dataclass(frozen=True)
class VolumeSampling:
    """What the outputs of one volume record (docs/interfaces.md §5)."""

    undersampling: str
    mask_type: str = ""
    acceleration: float | None = None
    center_fraction: float | None = None


@dataclass(frozen=True)
class Undersampling:
    """The retrospective undersampling the user asked for (or none).

    Attributes:
        mask_type: One of :data:`mrirecon.masks.MASK_TYPES`, or None for no retrospective undersampling.
        acceleration: Target acceleration R (> 1), with ``mask_type``.
        center_fraction: Fully sampled centre fraction; None: fastMRI's pairing 0.32 / R
            (0.08 at 4×, 0.04 at 8×).
    """

    mask_type: str | None = None
    acceleration: float | None = None
    center_fraction: float | None = None

    def __post_init__(self) -> None:
        if (self.mask_type is None) != (self.acceleration is None):
            raise ConfigError(
                "--mask and --acceleration go together",
                hint="give both (e.g. --mask equispaced_fraction --acceleration 4) or neither",
            )
        if self.mask_type is not None and self.mask_type not in MASK_TYPES:
            raise ConfigError(
                f"unknown mask type '{self.mask_type}'", hint=f"choose one of: {', '.join(MASK_TYPES)}"
            )
        if self.acceleration is not None and not self.acceleration > 1:
            raise ConfigError(f"--acceleration must be greater than 1, got {self.acceleration:g}")
        if self.center_fraction is not None:
            if self.mask_type is None:
                raise ConfigError("--center-fraction needs --mask and --acceleration")
            if not 0 < self.center_fraction < 1:
                raise ConfigError(f"--center-fraction must lie in (0, 1), got {self.center_fraction:g}")
            kind = MASK_TYPES[self.mask_type].kind
            if (
                kind == "1d"
                and self.acceleration is not None
                and self.center_fraction * self.acceleration >= 1
            ):
                # the centre alone samples more lines than the acceleration allows: the mask would be
                # less accelerated than the acceleration recorded with the images
                raise ConfigError(
                    f"--center-fraction {self.center_fraction:g} alone samples 1/"
                    f"{1 / self.center_fraction:.3g} of the lines, more than --acceleration "
                    f"{self.acceleration:g} allows",
                    hint="give a centre fraction below 1 / acceleration (e.g. 0.08 at 4x), or leave it out",
                )

    @property
    def requested(self) -> bool:
        """Whether retrospective undersampling was asked for."""
        return self.mask_type is not None

    @property
    def effective_center_fraction(self) -> float | None:
        """The centre fraction used (the default pairing when none was given)."""
        if self.acceleration is None:
            return None
        return self.center_fraction if self.center_fraction is not None else 0.32 / self.acceleration

    def mask_func(self) -> MaskFunc | None:
        """The mask function for fully sampled input, or None."""
        if self.mask_type is None or self.acceleration is None:
            return None
        fraction = self.effective_center_fraction
        assert fraction is not None
        return create_mask_func(self.mask_type, [fraction], [self.acceleration])

    def for_volume(
        self, own_mask: np.ndarray | None, *, recovered: bool = False, name: str = ""
    ) -> VolumeSampling:
        """What the outputs of a volume with ``own_mask`` (None: fully sampled) record.

        Prospective input keeps its own mask: ``mask_type`` is ``recovered`` when that mask was
        recovered from the k-space's zeros (no ``mask`` dataset), else empty. A retrospective
        mask asked for does not apply to it, which a :class:`~mrirecon.errors.Notice` says.
        """
        if own_mask is not None:
            acceleration = describe_mask(np.asarray(own_mask)).acceleration
            if self.requested:
                warnings.warn(
                    Notice(
                        f"{name or 'the input'} is undersampled already ({acceleration:.1f}×): "
                        f"--mask {self.mask_type} --acceleration {self.acceleration:g} do not apply to it; "
                        "it is reconstructed with its own mask"
                    ),
                    stacklevel=2,
                )
            return VolumeSampling("prospective", "recovered" if recovered else "", float(acceleration))
        if self.mask_type is not None:
            return VolumeSampling(
                "retrospective", self.mask_type, self.acceleration, self.effective_center_fraction
            )
        return VolumeSampling("none")
