"""Per-volume failures: one line each, in ``failures.csv`` (columns ``file``, ``error``).

A batch run records a bad input and goes on. The error text is the one-line message of the
:class:`~mrirecon.errors.MriReconError` (file, what is wrong, how to fix it) or, for an unexpected
exception, its type and first line. Messages never carry header contents, so no patient identifier
reaches the file beyond the input's own name.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mrirecon.errors import MriReconError
from mrirecon.tables import read_cell, write_csv

__all__ = ["FAILURES_CSV", "Failure", "error_text", "read_failures", "write_failures"]

FAILURES_CSV = "failures.csv"
_MAX_LENGTH = 500


@dataclass(frozen=True)
class Failure:
    """One input that could not be reconstructed or written.

    Attributes:
        file: The input file (as listed: path in the folder or manifest).
        error: What went wrong, one line.
        kind: The error's class name (``DataError``, ``ModelError``, ...), for re-raising.
    """

    file: str
    error: str
    kind: str = "DataError"


def error_text(error: BaseException) -> str:
    """One line describing ``error`` (at most 500 characters)."""
    if isinstance(error, MriReconError):
        text = error.one_line()
    else:
        lines = str(error).strip().splitlines()
        text = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_LENGTH else text[: _MAX_LENGTH - 3] + "..."


def write_failures(path: Path, failures: Iterable[Failure]) -> Path:
    """Write ``failures.csv`` atomically (a header line only when nothing failed); cells that a
    spreadsheet would run as formulas are escaped (:mod:`mrirecon.tables`)."""
    rows = [{"file": f.file, "error": f.error} for f in failures]
    return write_csv(path, rows, fields=["file", "error"], what="failures.csv")


def read_failures(path: Path) -> list[Failure]:
    """Read a ``failures.csv`` written by :func:`write_failures`."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [Failure(read_cell(row["file"]), read_cell(row["error"])) for row in csv.DictReader(handle)]
