"""The real Siemens ISMRMRD file (NHLBI, shared/data): its header and acquisition geometry → DICOM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pydicom
import pytest

from mrirecon.export.dicom import DicomOptions, export_volume_dicom
from mrirecon.export.geometry import SliceGeometry
from tests.export.test_dicom_tools import SIDE_UNKNOWN
from tests.export.tools import dciodvfy, phantom, volume

ACQ_IS_NOISE_MEASUREMENT = 1 << 18  # flag 19


def nhlbi(shared_data: Path) -> tuple[str, SliceGeometry]:
    """The XML header and the geometry of slice 0 from the first imaging acquisition's header."""
    path = shared_data / "nhlbi_ismrmrd_snr_r3" / "meas_MID00349_FID09273_SNR_R3.h5"
    with h5py.File(path, "r") as f:
        xml = f["dataset/xml"][0]
        head = f["dataset/data"]["head"]
    imaging = head[(head["flags"] & ACQ_IS_NOISE_MEASUREMENT) == 0]
    first = imaging[imaging["idx"]["slice"] == 0][0]
    pick: dict[str, Any] = {name: np.asarray(first[name], dtype=np.float64)[None] for name in
            ("position", "read_dir", "phase_dir", "slice_dir", "patient_table_position")}  # fmt: skip
    return xml.decode() if isinstance(xml, bytes) else str(xml), SliceGeometry(**pick)


def test_real_header_gives_scanner_geometry(shared_data: Path, tmp_path: Path) -> None:
    xml, geometry = nhlbi(shared_data)
    np.testing.assert_allclose(geometry.position[0], [20.048, 66.570, 0.0], atol=1e-3)
    vol = volume(reconstruction=phantom(slices=1, h=192, w=144), ismrmrd_header=xml, geometry=geometry)
    series = export_volume_dicom(vol, tmp_path / "s")
    assert not series.synthetic_geometry and len(series.files) == 1
    ds = pydicom.dcmread(series.files[0])
    # 280 mm / 192 readout pixels and 210 mm / 144 phase-encode pixels: 1.4583 mm square pixels
    np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [280 / 192, 210 / 144], rtol=1e-12)
    assert float(ds.SliceThickness) == 8.0 and float(ds.SpacingBetweenSlices) == 8.0
    # rows run along read_dir = −x (towards patient right), columns along phase_dir = +y (posterior)
    np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient], [0, 1, 0, -1, 0, 0], atol=1e-6)
    # first voxel: position − 72 columns × Δ along +y − 96 rows × Δ along −x
    np.testing.assert_allclose(
        [float(v) for v in ds.ImagePositionPatient], [20.048 + 140.0, 66.570 - 105.0, 0.0], atol=2e-3
    )
    # the image spans the field of view symmetrically about the slice position (280 × 210 mm)
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    last = ipp + 143 * (210 / 144) * np.array([0, 1, 0]) + 191 * (280 / 192) * np.array([-1, 0, 0])
    np.testing.assert_allclose(
        (ipp + last) / 2 + np.array([-0.5, 0.5, 0]) * 280 / 192, geometry.position[0], atol=1e-3
    )
    assert ds.FrameOfReferenceUID == "1.3.12.2.1107.5.2.19.45387.1.20190310222831082.0.0.0"
    assert (ds.StudyDate, ds.StudyTime, ds.PatientPosition) == ("20190314", "223435", "HFS")
    assert (ds.Manufacturer, ds.ManufacturerModelName, ds.InstitutionName) == ("SIEMENS", "Skyra", "NIH")
    assert ds.ScanningSequence == "GR" and ds.SequenceName == "SSFP" and "InversionTime" not in ds
    assert float(ds.MagneticFieldStrength) == pytest.approx(2.89362)
    assert float(ds.ImagingFrequency) == pytest.approx(123.182813)
    assert (float(ds.RepetitionTime), float(ds.EchoTime), float(ds.FlipAngle)) == pytest.approx(
        (219.64, 1.62, 50)
    )
    verdict = dciodvfy(series.files[0])
    assert verdict.errors == [], verdict.output
    assert set(verdict.warnings) <= SIDE_UNKNOWN, verdict.output  # a phantom: body part unknown


def test_real_header_deidentified_drops_the_scanner_uids(shared_data: Path, tmp_path: Path) -> None:
    xml, geometry = nhlbi(shared_data)
    vol = volume(reconstruction=phantom(slices=1, h=192, w=144), ismrmrd_header=xml, geometry=geometry)
    series = export_volume_dicom(vol, tmp_path / "s", DicomOptions(deidentify=True, salt="test-salt"))
    raw = series.files[0].read_bytes()
    for needle in (b"45387", b"20190310", b"20190314", b"NIH", b"SNR_R3"):
        assert needle not in raw, needle
    assert dciodvfy(series.files[0]).errors == []
