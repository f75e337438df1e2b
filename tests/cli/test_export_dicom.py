"""``mrirecon export-dicom``: options reach the export, errors are one line, identifiers are never printed."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner

from mrirecon.export.recon_h5 import write_reconstruction
from mrirecon_cli.main import cli
from tests.export.test_dicom import identifier_strings
from tests.export.tools import IDENTIFIERS, oblique_geometry, rich_header, volume


@pytest.fixture
def recon(tmp_path: Path) -> Path:
    vol = volume(
        ismrmrd_header=rich_header(), geometry=oblique_geometry(), patient_id=IDENTIFIERS["patient_id"]
    )
    return write_reconstruction(tmp_path / "recon.h5", vol)


def test_listed_in_help() -> None:
    assert "export-dicom" in CliRunner().invoke(cli, ["--help"]).output


def test_export(recon: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    args = [
        "export-dicom",
        str(recon),
        "-o",
        str(tmp_path / "dcm"),
        "--series-number",
        "2001",
        "--body-part",
        "KNEE",
        "--laterality",
        "R",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output == f"Wrote 3 DICOM file(s) to {tmp_path / 'dcm'} (scanner geometry).\n"
    ds = pydicom.dcmread(tmp_path / "dcm" / "IM_0001.dcm")
    assert ds.SeriesNumber == 2001 and ds.Laterality == "R" and ds.PatientID == IDENTIFIERS["patient_id"]
    for needle in identifier_strings():
        assert needle not in result.output and needle not in caplog.text


def test_deidentify(recon: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "dcm"
    args = [
        "export-dicom",
        str(recon),
        "-o",
        str(out),
        "--deidentify",
        "--patient-id",
        "SUBJ-01",
        "--bits",
        "12",
    ]
    result = CliRunner().invoke(cli, args, env={"MRIRECON_DEID_SALT": "pepper"})
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("IM_*.dcm"))
    assert len(files) == 3
    for path in files:
        raw = path.read_bytes()
        for needle in identifier_strings():
            assert needle.encode() not in raw, needle
    ds = pydicom.dcmread(files[0])
    assert ds.PatientID == "SUBJ-01" and ds.PatientIdentityRemoved == "YES" and ds.BitsStored == 12
    for needle in identifier_strings():
        assert needle not in result.output and needle not in caplog.text
    # the salt changes every derived UID
    again = CliRunner().invoke(
        cli, [*args[:3], str(tmp_path / "b"), *args[4:]], env={"MRIRECON_DEID_SALT": "salt"}
    )
    assert again.exit_code == 0
    assert pydicom.dcmread(tmp_path / "b" / "IM_0001.dcm").StudyInstanceUID != ds.StudyInstanceUID


def test_errors_are_one_line_with_exit_code_2(recon: Path, tmp_path: Path) -> None:
    missing = CliRunner().invoke(cli, ["export-dicom", str(tmp_path / "nope.h5"), "-o", str(tmp_path / "d")])
    assert missing.exit_code == 2
    assert (
        missing.output.splitlines()[0]
        == f"Error: {tmp_path / 'nope.h5'}: no such reconstruction HDF5 (check the path)"
    )
    blocker = tmp_path / "file"
    blocker.write_text("")
    nested = CliRunner().invoke(cli, ["export-dicom", str(recon), "-o", str(blocker / "d")])
    assert nested.exit_code == 2 and "is a file" in nested.output
    root = CliRunner().invoke(
        cli, ["export-dicom", str(recon), "-o", str(tmp_path / "e"), "--uid-root", "abc"]
    )
    assert root.exit_code == 2 and "invalid UID root" in root.output


def test_installed_script(recon: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "mrirecon"
    out = subprocess.run(
        [
            str(exe),
            "export-dicom",
            str(recon),
            "-o",
            str(tmp_path / "dcm"),
            "--deidentify",
            "--deid-salt",
            "s",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "dcm").glob("IM_*.dcm"))) == 3
    for needle in identifier_strings():
        assert needle not in out.stdout + out.stderr
