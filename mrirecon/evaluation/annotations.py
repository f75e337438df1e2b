"""fastMRI+ lesion boxes (microsoft/fastmri-plus ``Annotations/knee.csv``, ``brain.csv``).

The CSVs have the header ``file,slice,study_level,x,y,width,height,label``:

- ``file``: the fastMRI file stem (no ``.h5``); ``slice``: 0-based slice index;
- ``study_level``: ``Yes`` for a finding about the whole study (no box: skipped here), ``No`` for a box;
- ``x, y, width, height``: integer pixels of a box drawn on the reconstruction image **after an
  up-down flip** (the annotators saw DICOMs written flipped). On the array ``reconstruction_rss[slice]``
  of height ``H`` the box covers rows ``H − y − height`` to ``H − y`` (exclusive) and columns ``x`` to
  ``x + width``;
- ``label``: free text with stray spaces and mixed case (``"Joint Effusion "``); labels are stripped
  and case-folded before matching.

Boxes with zero width or height exist (a few degenerate rows) and are skipped.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrirecon.errors import DataError

__all__ = ["COLUMNS", "AnnotationBox", "normalize_label", "read_fastmri_plus"]

#: The columns of a fastMRI+ annotation CSV, in order.
COLUMNS = ("file", "slice", "study_level", "x", "y", "width", "height", "label")


def normalize_label(label: str) -> str:
    """A label as compared: surrounding spaces stripped, case-folded."""
    return " ".join(label.split()).casefold()


@dataclass(frozen=True)
class AnnotationBox:
    """One fastMRI+ box, in the CSV's (flipped) coordinates.

    Attributes:
        file: File stem, e.g. ``file_brain_AXFLAIR_200_6002425``.
        slice: Slice index.
        x: Left column.
        y: Top row *in the up-down flipped image*.
        width: Columns.
        height: Rows.
        label: Normalised label (see :func:`normalize_label`).
    """

    file: str
    slice: int
    x: int
    y: int
    width: int
    height: int
    label: str

    def rows(self, image_height: int) -> tuple[int, int]:
        """``[row0, row1)`` of the box on the unflipped array of ``image_height`` rows."""
        row0 = image_height - self.y - self.height
        return row0, row0 + self.height

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """``(H, W)`` bool region of the box on the unflipped array, clipped to the image."""
        out = np.zeros(shape, dtype=bool)
        r0, r1 = self.rows(shape[0])
        out[
            max(r0, 0) : max(min(r1, shape[0]), 0),
            max(self.x, 0) : max(min(self.x + self.width, shape[1]), 0),
        ] = True
        return out


def read_fastmri_plus(
    path: str | Path, labels: Iterable[str] | None = None
) -> dict[str, list[AnnotationBox]]:
    """Read a fastMRI+ annotation CSV into boxes per file.

    Args:
        path: The CSV (``knee.csv`` or ``brain.csv`` of fastmri-plus, or one of the same layout).
        labels: Keep only boxes with these labels (compared after :func:`normalize_label`);
            ``None`` keeps every box.

    Returns:
        ``{file stem: [AnnotationBox, ...]}`` in file order; study-level rows and zero-area boxes
        are left out.

    Raises:
        DataError: if the file is missing, lacks a column, or has a row with a non-integer field.
    """
    path = Path(path)
    wanted = None if labels is None else {normalize_label(label) for label in labels}
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise DataError(f"cannot read the annotation CSV: {error.strerror}", path=path) from error
    try:
        with handle:
            return _read_boxes(csv.DictReader(handle), path, wanted)
    except UnicodeDecodeError as error:
        raise DataError("not a text (UTF-8) CSV file", path=path, hint="give the fastMRI+ CSV") from error


def _read_boxes(
    reader: csv.DictReader[str], path: Path, wanted: set[str] | None
) -> dict[str, list[AnnotationBox]]:
    boxes: dict[str, list[AnnotationBox]] = {}
    fields = [name.strip() for name in reader.fieldnames or []]
    missing = [c for c in COLUMNS if c not in fields]
    if missing:
        raise DataError(
            f"not a fastMRI+ annotation CSV: missing column(s) {', '.join(missing)}",
            path=path,
            hint=f"expected the header {','.join(COLUMNS)}",
        )
    reader.fieldnames = fields
    for line, row in enumerate(reader, start=2):
        if (row.get("study_level") or "").strip().casefold() == "yes":
            continue
        label = normalize_label(row.get("label") or "")
        if wanted is not None and label not in wanted:
            continue
        if all(not (row.get(c) or "").strip() for c in ("x", "y", "width", "height")):
            continue  # a row without a box, as study-level rows are
        try:
            numbers = [int(float(row[c])) for c in ("slice", "x", "y", "width", "height")]
        except (TypeError, ValueError, OverflowError) as error:  # int(inf): OverflowError
            raise DataError(
                f"line {line}: slice, x, y, width and height must be integers", path=path
            ) from error
        slice_index, x, y, width, height = numbers
        if width <= 0 or height <= 0:
            continue
        stem = (row.get("file") or "").strip().removesuffix(".h5")
        boxes.setdefault(stem, []).append(AnnotationBox(stem, slice_index, x, y, width, height, label))
    return boxes
