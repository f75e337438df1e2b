"""CSV cells that a spreadsheet would run as formulas are escaped, and read back unchanged."""

from __future__ import annotations

import csv
from pathlib import Path

from mrirecon.inference.failures import Failure, read_failures, write_failures
from mrirecon.tables import read_cell, spreadsheet_safe, write_csv


def test_formula_cells_are_escaped_and_numbers_are_not() -> None:
    for text in ('=HYPERLINK("http://x")', "+1", "-cmd", "@SUM(A1)", "\tx", "'quoted"):
        assert spreadsheet_safe(text) == "'" + text
        assert read_cell(spreadsheet_safe(text)) == text
    assert spreadsheet_safe("vol_01.h5") == "vol_01.h5"
    assert (
        spreadsheet_safe(-3) == -3
        and spreadsheet_safe(-0.5) == "-0.5"
        and spreadsheet_safe(float("nan")) == "nan"
    )


def test_failures_csv_cannot_inject_a_formula(tmp_path: Path) -> None:
    path = write_failures(tmp_path / "failures.csv", [Failure("=cmd|' /C calc'!A0.h5", "-bad: truncated")])
    with open(path, newline="", encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert all(not cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert read_failures(path) == [Failure("=cmd|' /C calc'!A0.h5", "-bad: truncated")]


def test_write_csv_is_atomic_and_keeps_field_order(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", [{"a": 1, "b": "=x"}, {"b": 2.5, "c": "y"}])
    assert path.read_text().splitlines() == ["a,b,c", "1,'=x,", ",2.5,y"]
    assert not list(tmp_path.glob(".*partial*"))
