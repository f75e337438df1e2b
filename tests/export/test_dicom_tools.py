"""The exported files against the outside world: dciodvfy, dcmdump, dcm2pnm, and a storescp receiver.

Each tool is looked up on PATH; a test skips, naming the Debian package, where its tool is absent.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from matplotlib.image import imread

from mrirecon.export.dicom import DicomOptions, export_volume_dicom
from mrirecon.export.identity import IdentityOverrides
from tests.export.tools import (
    dciodvfy,
    need,
    oblique_geometry,
    phantom,
    rich_header,
    send_to_storescp,
    volume,
)

#: Warnings dciodvfy gives for values that are unknown or removed on purpose (see docs/dicom.md).
NO_STUDY_DATE = {
    "Warning - Missing attribute or value that would be needed to build DICOMDIR - Study Date",
    "Warning - Missing attribute or value that would be needed to build DICOMDIR - Study Time",
}
SIDE_UNKNOWN = {
    "Warning - is only permitted to be empty when actually unknown; should be absent (not empty) if an "
    "unpaired body part, and have a value if a paired body part - attribute <Laterality>"
}

#: name → (volume, options, warnings accepted)
CASES = {
    "scanner": (
        lambda: volume(ismrmrd_header=rich_header(), geometry=oblique_geometry()),
        DicomOptions(),
        set(),
    ),
    "fastmri": (lambda: volume(reconstruction=phantom(slices=2, h=64, w=48)), DicomOptions(), NO_STUDY_DATE),
    "knee": (lambda: volume(acquisition="CORPD_FBK"), DicomOptions(), NO_STUDY_DATE | SIDE_UNKNOWN),
    "deidentified": (
        lambda: volume(ismrmrd_header=rich_header(), geometry=oblique_geometry()),
        DicomOptions(deidentify=True, salt="x", bits_stored=12),
        NO_STUDY_DATE,
    ),
    # UTF-8 texts at their length limits in bytes (a 64-character CJK name is 192 bytes)
    "utf8": (
        lambda: volume(ismrmrd_header=rich_header().replace("t2_tse_Zyxwvut", "т2_тсе_" * 8)),
        DicomOptions(
            identity=IdentityOverrides(
                patient_name="山田^太郎", institution_name="山" * 64, referring_physician="Γεώργιος^Ø"
            )
        ),
        set(),
    ),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("dicom")
    return {
        name: list(export_volume_dicom(make(), root / name, options).files)
        for name, (make, options, _) in CASES.items()
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_dciodvfy_reports_no_errors(exported: dict[str, list[Path]], case: str) -> None:
    for path in exported[case]:
        verdict = dciodvfy(path)
        assert "MRImage" in verdict.output, verdict.output  # validated against the MR Image IOD
        assert verdict.errors == [], verdict.output
        assert set(verdict.warnings) <= CASES[case][2], verdict.output


def test_dcmdump_reads_every_file(exported: dict[str, list[Path]]) -> None:
    files = [p for paths in exported.values() for p in paths]
    out = subprocess.run([need("dcmdump"), *map(str, files)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("(0008,0060) CS [MR]") == len(files)
    assert out.stdout.count("=MRImageStorage") == 2 * len(files)  # file meta and dataset
    assert "E:" not in out.stderr and "W:" not in out.stderr


def test_dcm2pnm_renders_with_the_stored_window(exported: dict[str, list[Path]], tmp_path: Path) -> None:
    path = exported["scanner"][-1]  # the brightest slice reaches the volume's upper percentile
    png = tmp_path / "slice.png"
    out = subprocess.run(
        [need("dcm2pnm"), "--write-png", "--use-window", "1", str(path), str(png)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rendered = np.round(imread(png) * 255)
    ds = pydicom.dcmread(path)
    # DICOM's linear VOI function (PS3.3 C.11.2.1.2.1) applied to the stored values
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    x = ds.pixel_array.astype(np.float64)
    expected = np.clip(((x - (c - 0.5)) / (w - 1) + 0.5) * 255, 0, 255)
    assert rendered.shape == (ds.Rows, ds.Columns)
    assert np.abs(rendered - expected).max() <= 1.0
    assert rendered.min() == 0 and rendered.max() == 255  # the window spans the volume's range


def test_storescp_receives_the_series(exported: dict[str, list[Path]], tmp_path: Path) -> None:
    files = exported["scanner"] + exported["deidentified"]
    received = tmp_path / "pacs"
    log = send_to_storescp(files, received, timeout=60)
    got = {pydicom.dcmread(p).SOPInstanceUID: p for p in received.iterdir()}
    assert len(got) == len(files), log
    for path in files:
        sent = pydicom.dcmread(path)
        back = pydicom.dcmread(got[sent.SOPInstanceUID])
        assert got[sent.SOPInstanceUID].name == f"MR.{sent.SOPInstanceUID}"
        assert back.SeriesInstanceUID == sent.SeriesInstanceUID
        np.testing.assert_array_equal(back.pixel_array, sent.pixel_array)
