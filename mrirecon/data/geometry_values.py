"""The values of a ``geometry/`` group (docs/interfaces.md §1), checked where they are read.

Geometry values come from input files, so a malformed one (text, complex, boolean, NaN, the wrong
count) is bad input: :class:`~mrirecon.errors.DataError`, never a traceback. The readers
(:mod:`mrirecon.data.fastmri`) and the DICOM geometry (:mod:`mrirecon.export.geometry`) share
these checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrirecon.errors import DataError

__all__ = [
    "GEOMETRY_DIRECTIONS",
    "GEOMETRY_VECTORS",
    "field_of_view",
    "real_numbers",
    "slice_thickness",
]

#: The ``(S, 3)`` arrays a slice geometry needs: each slice's centre and its three directions.
GEOMETRY_DIRECTIONS = ("position", "read_dir", "phase_dir", "slice_dir")
#: Every ``(S, 3)`` array of the ``geometry/`` group.
GEOMETRY_VECTORS = (*GEOMETRY_DIRECTIONS, "patient_table_position")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def real_numbers(
    value: object, name: str, *, size: int | None = None, source: str | Path | None = None
) -> np.ndarray:
    """``value`` as a float64 array of finite real numbers (``size`` of them, when given).

    Raises:
        DataError: for text, complex, boolean or other non-real values, NaN or infinity, or another
            count.
    """
    array = np.asarray(value)
    if array.dtype.kind not in "iuf" or (size is not None and array.size != size):
        count = "a finite real number" if size == 1 else f"{size or 'some'} finite real numbers"
        raise DataError(
            f"geometry: {name} must be {count}, found {_shown(value)}",
            path=source,
            hint="correct or delete it in the input (it only sets the DICOM geometry)",
        )
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise DataError(
            f"geometry: {name} holds non-finite values",
            path=source,
            hint="correct or delete it in the input (it only sets the DICOM geometry)",
        )
    return array


def field_of_view(value: object, source: str | Path | None = None) -> tuple[float, float, float]:
    """The ``field_of_view_mm`` attribute: three finite real numbers.

    Raises:
        DataError: if it is not.
    """
    x, y, z = real_numbers(value, "field_of_view_mm", size=3, source=source).ravel()
    return float(x), float(y), float(z)


def slice_thickness(value: object, source: str | Path | None = None) -> float:
    """The ``slice_thickness_mm`` attribute: one finite real number.

    Raises:
        DataError: if it is not.
    """
    return float(real_numbers(value, "slice_thickness_mm", size=1, source=source).ravel()[0])
