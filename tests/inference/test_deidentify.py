"""A de-identified batch leaves no identifier in any file it writes: HDF5, DICOM, JSON, CSV, names.

The real Siemens ISMRMRD file of ../shared/data gets planted identifiers (name, MRN, birth date,
weight, accession number, referring physician, institution, station, device serial, original
UIDs, dates) in its header and in its file name; every byte of every output is scanned for them.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.inference.processes import run_cli

pytestmark = pytest.mark.slow

PLANTED = {
    "patient_name": "Qwertzuiop^Jolanda",
    "patient_id": "MRN31415926",
    "birth_date": "1961-07-23",
    "weight": "68.25",
    "accession": "ACC27182818",
    "referring": "Plonkowski^Berta",
    "study_id": "STUDY8080",
    "study_uid": "1.2.840.99999.31415.92653",
    "institution": "Hospital of Saint Qwertz",
    "station": "STATIONQ42",
    "serial": "SERIAL995577",
    "frame_uid": "1.3.12.2.1107.5.2.99999.1.20190314",
}


def _plant(source: Path, target: Path) -> None:
    shutil.copy(source, target)
    p = PLANTED
    subject = (
        f"<subjectInformation><patientName>{p['patient_name']}</patientName>"
        f"<patientWeight_kg>{p['weight']}</patientWeight_kg><patientID>{p['patient_id']}</patientID>"
        f"<patientBirthdate>{p['birth_date']}</patientBirthdate><patientGender>F</patientGender>"
        "</subjectInformation>"
    )
    study = (
        "<studyInformation><studyDate>2019-03-14</studyDate><studyTime>22:34:35</studyTime>"
        f"<studyID>{p['study_id']}</studyID><accessionNumber>{p['accession']}</accessionNumber>"
        f"<referringPhysicianName>{p['referring']}</referringPhysicianName>"
        f"<studyInstanceUID>{p['study_uid']}</studyInstanceUID></studyInformation>"
    )
    system = (
        f"<systemVendor>SIEMENS</systemVendor><institutionName>{p['institution']}</institutionName>"
        f"<stationName>{p['station']}</stationName><deviceSerialNumber>{p['serial']}</deviceSerialNumber>"
    )
    with h5py.File(target, "a") as f:
        raw = f["dataset/xml"][0]
        xml = raw.decode() if isinstance(raw, bytes) else str(raw)
        xml = re.sub(r"<studyInformation>.*?</studyInformation>", subject + study, xml, flags=re.S)
        xml = xml.replace("<systemVendor>SIEMENS</systemVendor>", system, 1)
        xml = re.sub(
            r"(<measurementInformation>)",
            rf"\1<frameOfReferenceUID>{p['frame_uid']}</frameOfReferenceUID>",
            xml,
            count=1,
        )
        del f["dataset/xml"]
        f.create_dataset("dataset/xml", data=np.array([xml.encode()], dtype=h5py.string_dtype()))


def test_a_deidentified_batch_leaves_no_identifier_anywhere(shared_data: Path, tmp_path: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    name = "Qwertzuiop_Jolanda_MRN31415926.h5"
    _plant(shared_data / "nhlbi_ismrmrd_snr_r3" / "meas_MID00349_FID09273_SNR_R3.h5", inputs / name)
    mapping = tmp_path / "kept-apart" / "mapping.csv"
    args = ["batch", "--model", "zero_filled", "--input-dir", inputs, "-o", out, "--dicom", "--deidentify"]
    common = ["--deid-salt", "a-secret", "--no-progress", "--workers", "0", "--device", "cpu"]
    result = run_cli(*args, *common, "--deid-mapping", mapping)
    assert result.returncode == 0, result.stdout + result.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".h5", ".dcm", ".json", ".csv"}
    needles = [*PLANTED.values(), "Qwertzuiop", "Jolanda", "MRN31415926", "19610723", "20190314", name]
    # the file's own: measurement IDs (scanner serial _ patient _ study numbers), also those nested in
    # its measurement dependencies, and the protocol name (free text; the HDF5's acquisition attribute)
    needles += ["45387_1079885", "SNR_R3"]
    for path in [*files, *(p for p in out.rglob("*") if p.is_dir())]:
        assert not any(n in str(path.relative_to(out)) for n in needles), path
        if path.is_file():
            data = path.read_bytes()
            found = [n for n in needles if n.encode() in data]
            assert not found, f"{path.relative_to(out)} holds {found}"
    # the mapping back exists only where it was asked for
    assert mapping.is_file() and name in mapping.read_text()
    # without --deidentify the same run keeps the identifiers (the scan above can see them)
    identified = tmp_path / "identified"
    plain = run_cli(
        "batch", "--model", "zero_filled", "--input-dir", inputs, "-o", identified, "--dicom", *common[2:]
    )
    assert plain.returncode == 0, plain.stderr
    assert PLANTED["patient_id"].encode() in (identified / name).read_bytes()
