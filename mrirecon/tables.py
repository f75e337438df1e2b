"""CSV files that spreadsheets open safely, written atomically (one owner for every CSV mrirecon writes).

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
Excel, LibreOffice and Google Sheets (CSV injection: a file named ``=HYPERLINK(...)`` in
``failures.csv`` would run as one). Such text cells get a leading apostrophe, which spreadsheets
show as text and :func:`read_cell` removes again. Numbers are written as numbers (a negative
number is not text and is left alone).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mrirecon.atomic import atomic_file

__all__ = ["read_cell", "spreadsheet_safe", "write_csv"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` as a CSV cell: text that a spreadsheet would run as a formula gets a leading ``'``;
    floats are written exactly (``repr``), NaN as ``nan``."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    text = str(value)
    if text.startswith(_FORMULA_START) or text.startswith("'"):
        return "'" + text
    return text


def read_cell(text: str) -> str:
    """The text :func:`spreadsheet_safe` escaped, restored."""
    return text[1:] if text.startswith("'") else text


def write_csv(
    path: Path,
    rows: Iterable[Mapping[str, Any]],
    *,
    fields: Sequence[str] | None = None,
    what: str = "CSV file",
) -> Path:
    """Write rows as CSV atomically (fsynced, renamed into place), every cell through
    :func:`spreadsheet_safe`. ``fields`` default to the rows' keys in order of appearance."""
    rows = list(rows)
    if fields is None:
        fields = []
        for row in rows:
            fields.extend(k for k in row if k not in fields)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
    with atomic_file(path, what=what) as temporary:
        temporary.write_text(buffer.getvalue(), encoding="utf-8")
    return path
