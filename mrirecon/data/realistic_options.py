"""What the realistic simulator (:mod:`mrirecon.data.realistic`) randomises: its options and the
contrast families' tissue intensities, checked when constructed."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mrirecon.data.anatomy import ORIENTATIONS
from mrirecon.data.coil_arrays import COIL_KINDS
from mrirecon.errors import ConfigError

__all__ = ["CONTRAST_FAMILIES", "RealisticOptions"]

#: Tissue intensities (grey matter, white matter, CSF, bone, marrow, scalp) per contrast family.
CONTRAST_FAMILIES: dict[str, dict[str, float]] = {
    "t1": {"gm": 0.58, "wm": 0.85, "csf": 0.15, "bone": 0.04, "marrow": 0.85, "scalp": 0.95},
    "t2": {"gm": 0.55, "wm": 0.38, "csf": 1.00, "bone": 0.03, "marrow": 0.50, "scalp": 0.60},
    "pd": {"gm": 0.85, "wm": 0.70, "csf": 0.95, "bone": 0.05, "marrow": 0.80, "scalp": 0.90},
    "flair": {"gm": 0.72, "wm": 0.52, "csf": 0.07, "bone": 0.03, "marrow": 0.60, "scalp": 0.80},
    "random": {},
}


def _range(name: str, value: tuple[float, float], low: float = 0.0, high: float = math.inf) -> None:
    """Refuse anything but ``low <= least <= most <= high``, finite (NaN, infinity, and sizes that
    would allocate without bound before anything is checked)."""
    if len(value) != 2 or not all(math.isfinite(v) for v in value) or not low <= value[0] <= value[1] <= high:
        bound = f" <= {high:g}" if math.isfinite(high) else ""
        raise ConfigError(
            f"'{name}' must be a range (least, most) of finite numbers with {low:g} <= least <= most{bound}, "
            f"got {value}"
        )


#: The most coils a simulated array has (its (C, C) noise covariance is a file attribute, which
#: HDF5 caps at 64 KiB: 90 coils; and mrirecon takes an axis of more than 64 for a spatial one).
MOST_COILS = 64


@dataclass(frozen=True)
class RealisticOptions:
    """What the realistic simulator randomises, and over which ranges (module docstring).

    Attributes:
        rows: Range of the matrix rows ``H`` (readout).
        aspect: Range of ``W / H``.
        multiple: ``H`` and ``W`` are rounded to a multiple of this.
        fov_mm: Range of the field of view along the rows, mm (columns scale with the aspect).
        coils: Range of the coil count.
        coil_kinds: Array kinds to draw from (``birdcage``, ``surface``).
        snr: Range of the SNR (mean brain magnitude / noise σ), drawn log-uniformly.
        contrasts: Contrast families to draw from (:data:`CONTRAST_FAMILIES`).
        orientations: Orientations to draw from, with ``axial`` weighted twice.
        skull: Probability of a skull and scalp around the brain.
        sharpen: Range of the power that sharpens the template's tissue fractions.
        sulci: Range of the depth of the fine sulci cut into the cortex (0: none, 1: full CSF).
        texture: Range of the fine multiplicative texture's standard deviation.
        lesion_probability: Probability that a slice has lesions.
        lesion_count: Range of lesions in a slice that has them.
        lesion_radius_mm: Range of the lesions' in-plane radius.
        hyperintense: Range of the contrast of hyperintense lesions.
        hypointense: Range of the contrast of hypointense lesions.
        hypo_fraction: Share of hypointense lesions.
        oversampling: The object is made on a grid this many times finer than the matrix.
    """

    rows: tuple[int, int] = (160, 384)
    aspect: tuple[float, float] = (0.75, 1.0)
    multiple: int = 8
    fov_mm: tuple[float, float] = (210.0, 270.0)
    coils: tuple[int, int] = (4, 32)
    coil_kinds: tuple[str, ...] = COIL_KINDS
    snr: tuple[float, float] = (10.0, 50.0)
    contrasts: tuple[str, ...] = ("t1", "t2", "pd", "flair", "random")
    orientations: tuple[str, ...] = ("axial", "coronal", "sagittal")
    skull: float = 0.7
    sharpen: tuple[float, float] = (1.0, 2.5)
    sulci: tuple[float, float] = (0.0, 0.6)
    texture: tuple[float, float] = (0.01, 0.08)
    lesion_probability: float = 0.7
    lesion_count: tuple[int, int] = (1, 6)
    lesion_radius_mm: tuple[float, float] = (1.5, 6.0)
    hyperintense: tuple[float, float] = (1.25, 2.2)
    hypointense: tuple[float, float] = (0.35, 0.8)
    hypo_fraction: float = 0.5
    oversampling: float = 1.5

    def __post_init__(self) -> None:
        _range("rows", self.rows, 32, 1024)
        _range("aspect", self.aspect, 0.1, 4.0)
        _range("fov_mm", self.fov_mm, 1.0, 1000.0)
        _range("coils", self.coils, 1, MOST_COILS)
        _range("snr", self.snr, 1e-6, 1e6)
        _range("lesion_count", self.lesion_count, 0, 100)
        _range("sharpen", self.sharpen, 1.0, 10.0)
        _range("sulci", self.sulci, 0.0, 1.0)
        _range("texture", self.texture, 0.0, 1.0)
        _range("lesion_radius_mm", self.lesion_radius_mm, 0.1, 50.0)
        _range("hyperintense", self.hyperintense, 1.0, 10.0)
        _range("hypointense", self.hypointense, 0.01, 1.0)
        if not 1 <= self.multiple <= self.rows[0]:
            raise ConfigError(
                f"'multiple' must be from 1 to the least rows ({self.rows[0]}), got {self.multiple}"
            )
        if not (math.isfinite(self.oversampling) and 1 <= self.oversampling <= 4):
            raise ConfigError(f"'oversampling' must be a number from 1 to 4, got {self.oversampling}")
        for name, values, known in (
            ("coil_kinds", self.coil_kinds, COIL_KINDS),
            ("contrasts", self.contrasts, tuple(CONTRAST_FAMILIES)),
            ("orientations", self.orientations, tuple(ORIENTATIONS)),
        ):
            if not values or any(v not in known for v in values):
                raise ConfigError(f"'{name}' must be a non-empty list of {', '.join(known)}, got {values}")
        for name in ("skull", "lesion_probability", "hypo_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"'{name}' must be a probability in [0, 1], got {getattr(self, name)}")
