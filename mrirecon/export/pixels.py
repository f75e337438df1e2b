"""Float reconstruction → unsigned 16-bit DICOM pixels with one scale per series, and the window.

One linear map for the whole volume, so that intensities and windows compare across slices::

    real value = stored value × slope + intercept

``intercept`` is 0 for magnitude images (min(0, volume minimum) in general); ``slope`` maps the
volume's maximum to the largest stored value ``2**bits − 1``. Rounding to the nearest integer keeps
every pixel within half a quantisation step (``slope / 2``) of its float value. The classic MR
Image IOD has no Rescale Slope/Intercept (dciodvfy reports a non-identity Modality LUT as an
error), so the map is written as a Real World Value Mapping item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.valuerep import format_number_as_ds

__all__ = ["Quantised", "ds", "quantise", "window_from_percentiles"]


def ds(value: float) -> str:
    """A DICOM decimal string of at most 16 characters (DS), e.g. ``1.45833333333333``."""
    value = float(value)
    if value == 0.0:
        return "0"  # also turns −0.0 into 0
    return str(format_number_as_ds(value))


@dataclass(frozen=True, eq=False)
class Quantised:
    """Stored pixels of a volume and the linear map back to the reconstruction's values.

    Attributes:
        stored: uint16 ``(S, h, w)``.
        slope, intercept: real value = stored × slope + intercept.
        bits_stored: Significant bits of ``stored``.
    """

    stored: np.ndarray
    slope: float
    intercept: float
    bits_stored: int

    @property
    def largest(self) -> int:
        """The largest stored value, ``2**bits_stored − 1``."""
        return (1 << self.bits_stored) - 1

    def real_values(self) -> np.ndarray:
        """The float64 values the stored pixels stand for."""
        return self.stored.astype(np.float64) * self.slope + self.intercept


def quantise(volume: np.ndarray, bits_stored: int = 16) -> Quantised:
    """Map a finite float volume to unsigned integers with one slope and intercept.

    Args:
        volume: Real ``(S, h, w)`` array without NaN or infinity.
        bits_stored: 8 to 16.

    Returns:
        :class:`Quantised`; every ``|real_values() − volume| ≤ slope / 2`` (plus float rounding).
    """
    if not 8 <= bits_stored <= 16:
        raise ValueError(f"bits_stored must be 8 to 16, got {bits_stored}")
    values = np.asarray(volume, dtype=np.float64)
    largest = (1 << bits_stored) - 1
    intercept = min(0.0, float(values.min())) if values.size else 0.0
    top = float(values.max()) - intercept if values.size else 0.0
    slope = top / largest if top > 0 else 1.0
    # the slope is written as a float64 (FD) attribute: use exactly that value for the rounding
    stored = np.rint((values - intercept) / slope)
    np.clip(stored, 0, largest, out=stored)
    return Quantised(stored.astype(np.uint16), float(slope), float(intercept), bits_stored)


def window_from_percentiles(stored: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Window centre and width (in stored values) covering the volume's ``low``–``high`` percentiles.

    The same window for every slice of a series. The width is at least 1 (DICOM requires it).
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"window percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
    lo, hi = (float(v) for v in np.percentile(stored, [low, high]))
    width = max(hi - lo, 1.0)
    return (lo + hi) / 2.0, width


def squeezed_window(q: Quantised, width: float) -> bool:
    """Whether a window of ``width`` stored values spans so few grey levels (fewer than 1/256 of
    the stored range, at least 4) that the anatomy looks flat: the volume is not constant, and a
    few pixels far brighter or darker than the rest took the quantisation's range."""
    return bool(q.stored.max() > q.stored.min()) and width < max(q.largest / 256, 4.0)
