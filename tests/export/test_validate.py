"""validate_series: a series mrirecon writes is valid; broken, mixed or missing files are named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from mrirecon.errors import DataError
from mrirecon.export.dicom import export_volume_dicom
from mrirecon.export.validate import validate_series
from tests.export.tools import volume


@pytest.fixture
def series(tmp_path: Path) -> Path:
    return export_volume_dicom(volume(), tmp_path / "series").folder


def test_an_exported_series_is_valid(series: Path) -> None:
    check = validate_series(series)
    assert check.valid, check.errors
    assert check.files == len(list(series.glob("*.dcm"))) > 1
    assert check.tools[0] == "pydicom"
    assert ("dciodvfy" in check.tools) is (shutil.which("dciodvfy") is not None)


def test_problems_are_named_by_file(series: Path) -> None:
    files = sorted(series.glob("*.dcm"))
    first = pydicom.dcmread(files[0])
    del first.PixelSpacing
    first.save_as(files[0])
    second = pydicom.dcmread(files[1])
    second.SeriesInstanceUID = "1.2.3.4"
    second.SOPInstanceUID = first.SOPInstanceUID
    second.save_as(files[1])
    check = validate_series(series, use_dciodvfy=False)
    assert not check.valid
    assert any(e.startswith(f"{files[0].name}: missing PixelSpacing") for e in check.errors)
    assert any("SOP instance UID" in e and e.startswith(files[1].name) for e in check.errors)
    assert "2 series instance UIDs in one series folder" in check.errors
    files[2].write_bytes(b"not dicom")
    assert any(e.startswith(f"{files[2].name}: not readable") for e in validate_series(series).errors)


def test_an_empty_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no DICOM files"):
        validate_series(tmp_path)
