"""The DICOM series as pydicom reads it back: pixels, attributes, provenance, identifiers, UIDs, faults."""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from mrirecon._version import __version__
from mrirecon.atomic import partial_name
from mrirecon.errors import ConfigError, DataError, ExportError
from mrirecon.export import dicom
from mrirecon.export.dicom import DicomOptions, export_dicom, export_volume_dicom
from mrirecon.export.geometry import SliceGeometry
from mrirecon.export.identity import IdentityOverrides
from mrirecon.export.recon_h5 import write_reconstruction
from tests.export.tools import (
    IDENTIFIERS,
    oblique_geometry,
    phantom,
    rich_header,
    run_python,
    unprivileged,
    volume,
)


def read_series(folder: Path) -> list[Dataset]:
    return [pydicom.dcmread(p) for p in sorted(folder.glob("IM_*.dcm"))]


def walk(ds: Dataset):
    """Every element of a dataset, its file meta and its sequences."""
    if getattr(ds, "file_meta", None) is not None:
        yield from ds.file_meta.iterall()
    yield from ds.iterall()


def test_pixels_round_trip_within_one_quantisation_step(tmp_path: Path) -> None:
    vol = volume(reconstruction=phantom(slices=4, scale=7.3e-5))
    series = export_volume_dicom(vol, tmp_path / "s")
    files = read_series(tmp_path / "s")
    assert len(files) == 4 and [f.InstanceNumber for f in files] == [1, 2, 3, 4]
    for index, ds in enumerate(files):
        rwv = ds.RealWorldValueMappingSequence[0]
        assert (rwv.RealWorldValueFirstValueMapped, rwv.RealWorldValueLastValueMapped) == (0, 65535)
        assert rwv.RealWorldValueSlope == series.slope and rwv.RealWorldValueIntercept == 0.0
        assert rwv.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM"
        real = ds.pixel_array.astype(np.float64) * rwv.RealWorldValueSlope + rwv.RealWorldValueIntercept
        error = np.abs(real - vol.reconstruction[index])
        assert error.max() <= series.slope * 0.5 + 1e-12 * vol.reconstruction.max()
    assert series.slope == pytest.approx(vol.reconstruction.max() / 65535)


def test_an_outlier_that_flattens_the_series_is_said(tmp_path: Path) -> None:
    """One pixel a million times brighter than the anatomy stored every other pixel as 0 or 1 of
    65,535 levels: a black series, without a word."""
    from mrirecon.errors import Notice

    image = phantom(slices=2, scale=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Notice)  # the plain phantom: nothing to say
        export_volume_dicom(volume(reconstruction=image), tmp_path / "plain")
    image[0, 3, 3] = 1e6 * image.max()
    with pytest.warns(Notice, match=r"percentiles span [0-9] of 65536 stored grey levels: a few pixels"):
        series = export_volume_dicom(volume(reconstruction=image), tmp_path / "outlier")
    files = read_series(tmp_path / "outlier")  # the values are still kept to one step
    real = files[1].pixel_array.astype(np.float64) * series.slope + series.intercept
    assert np.abs(real - image[1]).max() <= series.slope * 0.5 * (1 + 1e-9)


def test_series_structure(tmp_path: Path) -> None:
    export_volume_dicom(volume(), tmp_path / "s")
    files = read_series(tmp_path / "s")
    assert len({f.SeriesInstanceUID for f in files}) == 1 and len({f.StudyInstanceUID for f in files}) == 1
    assert len({f.SOPInstanceUID for f in files}) == 3
    assert {(f.WindowCenter, f.WindowWidth) for f in files} == {(files[0].WindowCenter, files[0].WindowWidth)}
    for ds in files:
        assert ds.SOPClassUID == pydicom.uid.MRImageStorage and ds.Modality == "MR"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "OTHER"]
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 16, 15, 0)
        assert ds.PhotometricInterpretation == "MONOCHROME2" and (ds.Rows, ds.Columns) == (40, 32)
        assert "RescaleSlope" not in ds and "RescaleIntercept" not in ds  # not in the classic MR IOD
        assert ds.SeriesNumber == 1001 and ds.SoftwareVersions == f"mrirecon {__version__}"
        assert 0 < ds.WindowWidth <= 65535


def test_every_decimal_string_fits_in_16_characters(tmp_path: Path) -> None:
    vol = volume(
        reconstruction=phantom(scale=9.635041617948711e-08),
        ismrmrd_header=rich_header(),
        geometry=oblique_geometry(),
    )
    export_volume_dicom(vol, tmp_path / "s")
    seen = 0
    for ds in read_series(tmp_path / "s"):
        for element in walk(ds):
            if element.VR in ("DS", "IS") and element.value not in (None, ""):
                values = element.value if element.VM > 1 else [element.value]
                for value in values:
                    assert len(str(value)) <= (16 if element.VR == "DS" else 12), (element.keyword, value)
                    seen += 1
    assert seen > 30


def test_provenance_in_the_descriptions(tmp_path: Path) -> None:
    export_volume_dicom(volume(), tmp_path / "s")
    ds = read_series(tmp_path / "s")[0]
    assert ds.SeriesDescription == f"cirim recon, mrirecon {__version__}, ckpt 3f3f3f3f, synthetic geometry"
    assert len(ds.SeriesDescription) <= 64
    text = ds.DerivationDescription
    assert f"mrirecon {__version__}" in text and "cirim" in text and "3f" * 32 in text
    assert "retrospectively undersampled" in text and "equispaced, R=4" in text
    assert "synthetic" in text and "RealWorldValueMappingSequence" in text
    assert text.startswith("For research use only, not for diagnosis.")
    assert ds.ImageComments == "For research use only, not for diagnosis."
    long = volume(model="a_really_long_model_name_" * 4, checkpoint_sha256="")
    export_volume_dicom(long, tmp_path / "long")
    description = read_series(tmp_path / "long")[0].SeriesDescription
    assert len(description) <= 64 and description.endswith(
        f"recon, mrirecon {__version__}, synthetic geometry"
    )


def test_synthetic_geometry_is_marked_even_with_a_custom_description(tmp_path: Path) -> None:
    series = export_volume_dicom(volume(), tmp_path / "a", DicomOptions(series_description="x" * 80))
    assert series.synthetic_geometry
    description = read_series(tmp_path / "a")[0].SeriesDescription
    assert len(description) <= 64 and description.endswith("; synthetic geometry")
    real = export_volume_dicom(
        volume(ismrmrd_header=rich_header(), geometry=oblique_geometry()),
        tmp_path / "b",
        DicomOptions(series_description="CIRIM 4x"),
    )
    assert not real.synthetic_geometry and read_series(tmp_path / "b")[0].SeriesDescription == "CIRIM 4x"


def test_geometry_attributes_match_the_slice_positions(tmp_path: Path) -> None:
    geometry = oblique_geometry(slices=3, spacing=5.0)
    export_volume_dicom(volume(ismrmrd_header=rich_header(), geometry=geometry), tmp_path / "s")
    files = read_series(tmp_path / "s")
    for s, ds in enumerate(files):
        dr, dc = (float(v) for v in ds.PixelSpacing)
        assert (dr, dc) == (2.0, 2.5)
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        centre = ipp + (ds.Columns // 2) * dc * iop[:3] + (ds.Rows // 2) * dr * iop[3:]
        np.testing.assert_allclose(centre, geometry.position[s], atol=1e-5)
        np.testing.assert_allclose(
            iop, np.concatenate([geometry.phase_dir[s], geometry.read_dir[s]]), atol=1e-9
        )
        assert float(ds.SliceThickness) == 4.0 and float(ds.SpacingBetweenSlices) == pytest.approx(5.0)
        normal = np.cross(iop[:3], iop[3:])
        assert float(ds.SliceLocation) == pytest.approx(ipp @ normal, abs=1e-5)
    ipps = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in files])
    assert len({ds.FrameOfReferenceUID for ds in files}) == 1
    assert files[0].FrameOfReferenceUID == IDENTIFIERS["frame_uid"]  # joins the scanner's frame
    np.testing.assert_allclose(np.linalg.norm(np.diff(ipps, axis=0), axis=1), 5.0, atol=1e-5)


def test_reexport_is_idempotent_and_other_models_get_other_series(tmp_path: Path) -> None:
    recon = write_reconstruction(tmp_path / "r.h5", volume(ismrmrd_header=rich_header()))
    first = export_dicom(recon, tmp_path / "a")
    second = export_dicom(recon, tmp_path / "b")
    assert [p.read_bytes() for p in first.files] == [p.read_bytes() for p in second.files]
    again = export_dicom(recon, tmp_path / "a")  # into the same folder: replaced in place
    assert again.series_instance_uid == first.series_instance_uid
    other = export_volume_dicom(volume(ismrmrd_header=rich_header(), model="rim"), tmp_path / "c")
    assert other.series_instance_uid != first.series_instance_uid
    assert other.study_instance_uid == first.study_instance_uid == IDENTIFIERS["study_uid"]


def test_identifiers_from_the_header(tmp_path: Path) -> None:
    export_volume_dicom(volume(ismrmrd_header=rich_header(), geometry=oblique_geometry()), tmp_path / "s")
    ds = read_series(tmp_path / "s")[0]
    i = IDENTIFIERS
    assert (str(ds.PatientName), ds.PatientID) == (i["patient_name"], i["patient_id"])
    assert (ds.PatientBirthDate, ds.PatientSex, float(ds.PatientWeight)) == ("19700412", "F", 83.75)
    assert (ds.StudyDate, ds.StudyTime, ds.ContentDate) == ("20190314", "223435", "20190314")
    assert (ds.StudyID, ds.AccessionNumber, str(ds.ReferringPhysicianName)) == (
        i["study_id"],
        i["accession"],
        i["referring"],
    )
    assert (ds.InstitutionName, ds.StationName, ds.DeviceSerialNumber) == (
        i["institution"],
        i["station"],
        i["serial"],
    )
    assert (ds.StudyDescription, ds.ProtocolName, ds.PatientPosition) == (
        i["study_description"],
        i["protocol"],
        "HFS",
    )
    assert ds.BodyPartExamined == "BRAIN" and "Laterality" not in ds
    assert (ds.Manufacturer, ds.ManufacturerModelName) == ("SIEMENS", "Skyra")
    assert (ds.ScanningSequence, ds.SequenceName, float(ds.RepetitionTime), float(ds.EchoTime)) == (
        "SE",
        "TSE",
        3000,
        90,
    )
    assert float(ds.MagneticFieldStrength) == pytest.approx(2.89362)
    assert float(ds.ImagingFrequency) == pytest.approx(123.182813)
    assert "PatientIdentityRemoved" not in ds


def test_command_line_values_win(tmp_path: Path) -> None:
    overrides = IdentityOverrides(
        patient_id="X1",
        patient_name="Roe^Richard",
        study_description="Research",
        body_part="knee",
        laterality="l",
    )
    export_volume_dicom(
        volume(ismrmrd_header=rich_header()), tmp_path / "s", DicomOptions(identity=overrides)
    )
    ds = read_series(tmp_path / "s")[0]
    assert (ds.PatientID, str(ds.PatientName), ds.StudyDescription) == ("X1", "Roe^Richard", "Research")
    assert (ds.BodyPartExamined, ds.Laterality) == ("KNEE", "L")
    with pytest.raises(ConfigError, match="laterality"):
        export_volume_dicom(
            volume(), tmp_path / "t", DicomOptions(identity=IdentityOverrides(laterality="left"))
        )
    # Laterality is DICOM's for paired body parts only (dciodvfy: "present when condition unsatisfied")
    with pytest.raises(ConfigError, match=r"--laterality is for a paired body part .* BRAIN is not one"):
        brain = IdentityOverrides(body_part="brain", laterality="l")
        export_volume_dicom(volume(), tmp_path / "t", DicomOptions(identity=brain))
    with pytest.raises(ConfigError, match="birth date"):
        export_volume_dicom(
            volume(), tmp_path / "t", DicomOptions(identity=IdentityOverrides(patient_birth_date="1/2/70"))
        )
    with pytest.raises(ConfigError, match="UID root"):
        export_volume_dicom(volume(), tmp_path / "t", DicomOptions(uid_root="1.2.x."))


def test_fastmri_style_input_without_header(tmp_path: Path) -> None:
    export_volume_dicom(volume(acquisition="CORPD_FBK"), tmp_path / "s")
    ds = read_series(tmp_path / "s")[0]
    assert ds.PatientID == "file1000007" and ds.PatientName == "" and ds.StudyDate == ""
    assert ds.BodyPartExamined == "KNEE" and ds.Laterality == ""  # paired, side unknown
    assert ds.ScanningSequence == "RM" and ds.MRAcquisitionType == "" and ds.Manufacturer == ""
    assert tuple(float(v) for v in ds.PixelSpacing) == (1.0, 1.0)
    export_volume_dicom(volume(patient_id="fastmri-attr", acquisition="unknown"), tmp_path / "t")
    ds = read_series(tmp_path / "t")[0]
    assert ds.PatientID == "fastmri-attr" and "BodyPartExamined" not in ds and ds.Laterality == ""


def identifier_strings() -> list[str]:
    i = IDENTIFIERS
    strings = [v for k, v in i.items() if k not in ("study_date", "study_time", "birth_date")]
    strings += i["patient_name"].split("^") + i["referring"].split("^")
    strings += [i["birth_date"], i["birth_date"].replace("-", ""), i["study_date"].replace("-", "")]
    strings += [i["study_time"].replace(":", ""), "83.75", "Zyxwvut", "secret_patient_file"]
    return strings


def test_deidentify_leaves_no_identifier(tmp_path: Path) -> None:
    vol = volume(
        ismrmrd_header=rich_header(),
        geometry=oblique_geometry(),
        patient_id=IDENTIFIERS["patient_id"],
        input_file="secret_patient_file_Zyxwvut.h5",
    )
    export_volume_dicom(vol, tmp_path / "s", DicomOptions(deidentify=True, salt="s3cret"))
    files = sorted((tmp_path / "s").glob("IM_*.dcm"))
    assert len(files) == 3
    needles = identifier_strings()
    for path in files:
        raw = path.read_bytes().lower()
        for needle in needles:
            assert needle.lower().encode() not in raw, needle
        ds = pydicom.dcmread(path)
        for element in walk(ds):
            text = str(element.value).lower()
            for needle in needles:
                assert needle.lower() not in text, (element.keyword, needle)
        assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethod
        assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113105"]
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        assert ds.PatientID.startswith("ANON") and str(ds.PatientName) == ds.PatientID + "^"
        assert (ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime) == ("", "", "", "")
        assert (ds.AccessionNumber, ds.ReferringPhysicianName) == ("", "")
        removed = ("InstitutionName", "StationName", "DeviceSerialNumber", "ProtocolName", "StudyDescription")
        for keyword in (*removed, "PatientWeight", "ContentDate", "ContentTime"):
            assert keyword not in ds, keyword
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID):
            assert uid.startswith(pydicom.uid.PYDICOM_ROOT_UID)
        assert ds.BodyPartExamined == "BRAIN" and ds.PatientPosition == "HFS"  # not identifying: kept


def test_deidentified_pseudonyms_are_stable_and_salted(tmp_path: Path) -> None:
    vol = volume(ismrmrd_header=rich_header(), geometry=oblique_geometry())
    uids = {}
    for name, salt in (("a", "one"), ("b", "one"), ("c", "two")):
        export_volume_dicom(vol, tmp_path / name, DicomOptions(deidentify=True, salt=salt))
        ds = read_series(tmp_path / name)[0]
        uids[name] = (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID)
    assert uids["a"] == uids["b"]
    assert all(x != y for x, y in zip(uids["a"], uids["c"]))
    # a pseudonym given on the command line is written as given
    export_volume_dicom(
        vol,
        tmp_path / "d",
        DicomOptions(deidentify=True, salt="s", identity=IdentityOverrides(patient_id="SUBJ-07")),
    )
    assert read_series(tmp_path / "d")[0].PatientID == "SUBJ-07"


def test_non_latin_names_switch_to_utf8(tmp_path: Path) -> None:
    names = IdentityOverrides(patient_name="李^雷")
    export_volume_dicom(volume(), tmp_path / "s", DicomOptions(identity=names))
    ds = read_series(tmp_path / "s")[0]
    assert ds.SpecificCharacterSet == "ISO_IR 192" and str(ds.PatientName) == "李^雷"


def test_fewer_bits(tmp_path: Path) -> None:
    export_volume_dicom(volume(), tmp_path / "s", DicomOptions(bits_stored=12))
    ds = read_series(tmp_path / "s")[0]
    assert (ds.BitsStored, ds.HighBit) == (12, 11) and ds.pixel_array.max() <= 4095
    assert ds.RealWorldValueMappingSequence[0].RealWorldValueLastValueMapped == 4095


def test_non_finite_pixels_are_refused(tmp_path: Path) -> None:
    recon = phantom()
    recon[1, 2, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        export_volume_dicom(volume(reconstruction=recon), tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_empty_volume_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        export_volume_dicom(volume(reconstruction=np.zeros((0, 4, 4))), tmp_path / "s")


def test_another_series_in_the_folder(tmp_path: Path) -> None:
    export_volume_dicom(volume(reconstruction=phantom(slices=4)), tmp_path / "s")
    with pytest.raises(ExportError, match=r"holds 4 DICOM file\(s\) of another series") as info:
        export_volume_dicom(volume(model="rim"), tmp_path / "s")
    assert info.value.path == tmp_path / "s" and "--overwrite" in str(info.value)
    (tmp_path / "s" / "notes.txt").write_text("the user's own file")
    series = export_volume_dicom(volume(model="rim"), tmp_path / "s", DicomOptions(overwrite=True))
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "IM_0001.dcm",
        "IM_0002.dcm",
        "IM_0003.dcm",
        "notes.txt",
    ]
    assert {ds.SeriesInstanceUID for ds in read_series(tmp_path / "s")} == {series.series_instance_uid}


def test_a_damaged_file_of_the_series_is_replaced_not_called_another_series(tmp_path: Path) -> None:
    """A truncated IM_0002.dcm (docs/inference.md: a file that no longer matches is exported again)
    stopped every later volume as "another series"; an unreadable file under another name still does."""
    first = export_volume_dicom(volume(), tmp_path / "s")
    damaged = tmp_path / "s" / "IM_0002.dcm"
    damaged.write_bytes(damaged.read_bytes()[:100])
    again = export_volume_dicom(volume(), tmp_path / "s")
    assert again.series_instance_uid == first.series_instance_uid
    assert {ds.SeriesInstanceUID for ds in read_series(tmp_path / "s")} == {first.series_instance_uid}
    (tmp_path / "s" / "IM_0099.dcm").write_bytes(b"not DICOM")
    with pytest.raises(ExportError, match=r"holds 1 DICOM file\(s\) of another series"):
        export_volume_dicom(volume(), tmp_path / "s")


def _fail_on_second_file(monkeypatch) -> None:
    real = dicom._save
    calls = []

    def save(dataset: Dataset, path: Path) -> None:
        calls.append(path)
        if len(calls) == 2:
            path.write_bytes(b"half a file")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(dataset, path)

    monkeypatch.setattr(dicom, "_save", save)


def test_disk_full_while_writing_a_new_series(tmp_path: Path, monkeypatch) -> None:
    _fail_on_second_file(monkeypatch)
    with pytest.raises(ExportError, match="no space left on the device") as info:
        export_volume_dicom(volume(), tmp_path / "s")
    assert info.value.path == tmp_path / "s" and "free disk space" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its .partial


def test_disk_full_while_rewriting_keeps_the_complete_files(tmp_path: Path, monkeypatch) -> None:
    series = export_volume_dicom(volume(), tmp_path / "s")
    before = {p: p.read_bytes() for p in series.files}
    _fail_on_second_file(monkeypatch)
    with pytest.raises(ExportError, match="no space left") as info:
        export_volume_dicom(volume(), tmp_path / "s")
    assert info.value.path == tmp_path / "s" / "IM_0002.dcm"
    assert {p: p.read_bytes() for p in series.files} == before
    assert not partial_name(tmp_path / "s" / "IM_0002.dcm").exists()
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["IM_0001.dcm", "IM_0002.dcm", "IM_0003.dcm"]


EXPORT = """
from pathlib import Path
from mrirecon.export.dicom import export_volume_dicom
from tests.export.tools import volume
try:
    export_volume_dicom(volume(model={model!r}), Path({target!r}))
except ExportError as error:
    print(error.one_line())
    sys.exit(3)
"""


def test_series_folder_without_write_permission(tmp_path: Path) -> None:
    """A real EACCES (as root the exporter runs without CAP_DAC_OVERRIDE); the old series stays."""
    series = export_volume_dicom(volume(), tmp_path / "s")
    before = {p: p.read_bytes() for p in series.files}
    (tmp_path / "s").chmod(0o555)
    try:
        result = run_python(EXPORT.format(model="cirim", target=str(tmp_path / "s")), prefix=unprivileged())
        fresh = run_python(
            EXPORT.format(model="cirim", target=str(tmp_path / "s" / "new")), prefix=unprivileged()
        )
    finally:
        (tmp_path / "s").chmod(0o755)
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith(f"{tmp_path / 's'}: could not write the DICOM file: permission denied")
    assert fresh.returncode == 3 and "permission denied" in fresh.stdout, fresh.stderr
    assert {p: p.read_bytes() for p in series.files} == before
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["IM_0001.dcm", "IM_0002.dcm", "IM_0003.dcm"]


def test_real_file_size_limit_while_writing_a_series(tmp_path: Path) -> None:
    """The kernel refuses to grow a file (EFBIG): no series folder, no partial folder is left."""
    result = run_python(EXPORT.format(model="cirim", target=str(tmp_path / "s")), file_limit=1000)
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith(
        f"{tmp_path / 's'}: could not write the DICOM series: the file grew too large"
    )
    assert list(tmp_path.iterdir()) == []


def test_inversion_time_is_present_for_inversion_recovery_even_when_unknown(tmp_path: Path) -> None:
    """Type 2C: an IR sequence (FLAIR, as mrirecon simulate writes it) without TI gets it empty."""
    from mrirecon.data.header import build_ismrmrd_header

    header = build_ismrmrd_header(encoded_matrix=(40, 32, 1), sequence_type="FLAIR", tr_ms=9000, te_ms=120)
    series = export_volume_dicom(volume(ismrmrd_header=header), tmp_path / "flair")
    ds = pydicom.dcmread(series.files[0])
    assert ds.ScanningSequence == "IR" and "InversionTime" in ds and ds.InversionTime in ("", None)


def test_other_reconstruction_settings_give_another_series(tmp_path: Path) -> None:
    from mrirecon.export.recon_h5 import read_reconstruction

    base = {"model_config": '{"lambda": 0.1}', "coil_maps": "acs", "center_fraction": 0.08}
    variants = {
        "base": base,
        "espirit": {**base, "coil_maps": "espirit"},
        "centre": {**base, "center_fraction": 0.1},
        "config": {**base, "model_config": '{"lambda": 0.2}'},
        "bf16": {**base, "precision": "bf16-mixed"},
    }
    uids = {}
    for name, attrs in variants.items():
        series = export_volume_dicom(volume(extra_attrs=attrs), tmp_path / name)
        files = read_series(tmp_path / name)
        uids[name] = (series.series_instance_uid, files[0].SOPInstanceUID)
        said = "Convolutions in bfloat16 (bf16-mixed)." in files[0].DerivationDescription
        assert said == (name == "bf16")  # the series says how its pixels were made
    assert len({series for series, _ in uids.values()}) == 5  # a PACS keeps each as its own series
    assert len({sop for _, sop in uids.values()}) == 5
    # float32 recorded (--precision 32) is the series it was before precision was recorded
    float32 = export_volume_dicom(volume(extra_attrs={**base, "precision": "32"}), tmp_path / "float32")
    assert float32.series_instance_uid == uids["base"][0]
    # the same settings read back from the reconstruction's HDF5 give the same series
    write_reconstruction(tmp_path / "r.h5", volume(extra_attrs=base))
    again = export_volume_dicom(read_reconstruction(tmp_path / "r.h5"), tmp_path / "again")
    assert again.series_instance_uid == uids["base"][0]


def test_a_decoupled_3d_acquisition_is_exported_as_3d(tmp_path: Path) -> None:
    """A 3-D acquisition served as slices along the readout has a header rewritten to one partition
    per slice (matrix z = 1): the attribute mrirecon_decoupled_3d says it was 3-D."""
    from mrirecon.data.header import build_ismrmrd_header
    from mrirecon.export.recon_h5 import read_reconstruction

    header = build_ismrmrd_header(encoded_matrix=(40, 32, 1))
    export_volume_dicom(volume(ismrmrd_header=header), tmp_path / "two")
    assert read_series(tmp_path / "two")[0].MRAcquisitionType == "2D"
    three = volume(ismrmrd_header=header, extra_attrs={"mrirecon_decoupled_3d": True})
    export_volume_dicom(three, tmp_path / "three")
    assert {ds.MRAcquisitionType for ds in read_series(tmp_path / "three")} == {"3D"}
    write_reconstruction(tmp_path / "r.h5", three)  # and when exported later from its HDF5
    export_volume_dicom(read_reconstruction(tmp_path / "r.h5"), tmp_path / "again")
    assert read_series(tmp_path / "again")[0].MRAcquisitionType == "3D"


def test_the_recorded_kspace_grid_places_an_odd_crop(tmp_path: Path) -> None:
    """An odd crop of an even k-space grid: the FOV centre is one past the crop's middle pixel."""
    from mrirecon.export.recon_h5 import read_reconstruction
    from tests.export.tools import phantom

    geometry = oblique_geometry(slices=1)
    image = phantom(slices=1, h=39, w=31)
    recorded = volume(
        reconstruction=image, geometry=geometry, extra_attrs={"kspace_matrix": np.array([40, 32])}
    )
    write_reconstruction(tmp_path / "r.h5", recorded)
    cases = (
        ("recorded", read_reconstruction(tmp_path / "r.h5"), (20, 16)),  # H//2 - (H-h)//2
        ("unknown", volume(reconstruction=image, geometry=geometry), (19, 15)),  # h//2
    )
    for name, vol, (row, col) in cases:
        ds = read_series(export_volume_dicom(vol, tmp_path / name).folder)[0]
        dr, dc = (float(v) for v in ds.PixelSpacing)
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        centre = ipp + col * dc * iop[:3] + row * dr * iop[3:]
        np.testing.assert_allclose(centre, geometry.position[0], atol=1e-4)


def test_two_acquisitions_of_one_file_name_are_two_series(tmp_path: Path) -> None:
    """T1/meas.h5 and T2/meas.h5 of one study: the file name alone made one series UID for both, so
    a PACS kept one of them. The header, the planes and the pixel depth make another series."""
    t1 = volume(ismrmrd_header=rich_header(), input_file="meas.h5", geometry=oblique_geometry())
    t2_header = rich_header().replace(IDENTIFIERS["protocol"], "t1_se_ax").replace("_349<", "_350<")
    t2 = volume(ismrmrd_header=t2_header, input_file="meas.h5", geometry=oblique_geometry())
    moved = volume(ismrmrd_header=rich_header(), input_file="meas.h5", geometry=oblique_geometry(spacing=6.0))
    uids = {
        export_volume_dicom(v, tmp_path / name).series_instance_uid
        for name, v in (("t1", t1), ("t2", t2), ("moved", moved))
    }
    assert len(uids) == 3
    again = export_volume_dicom(t1, tmp_path / "t1")  # the same acquisition: the same series
    assert again.series_instance_uid in uids
    eight = export_volume_dicom(t1, tmp_path / "t1_8bit", DicomOptions(bits_stored=8))
    assert eight.series_instance_uid not in uids  # other pixels: not the same instances
    with pytest.raises(ExportError, match="another series"):  # nor silently replacing them
        export_volume_dicom(t1, tmp_path / "t1", DicomOptions(bits_stored=8))
    # without a header to tell them apart (NumPy inputs, a generated header): the content does
    first = volume(input_file="scan.npy", reconstruction=phantom(seed=1), zero_filled=phantom(seed=1))
    second = volume(input_file="scan.npy", reconstruction=phantom(seed=2), zero_filled=phantom(seed=2))
    assert (
        export_volume_dicom(first, tmp_path / "a").series_instance_uid
        != export_volume_dicom(second, tmp_path / "b").series_instance_uid
    )


def test_every_text_attribute_decides_the_character_set(tmp_path: Path) -> None:
    """A Latin-1 patient name with a Japanese referring physician or a Greek study description wrote
    ISO_IR 100, and the other names became '?'."""
    names = IdentityOverrides(
        patient_name="Müller^Jörg", referring_physician="佐藤^花子", study_description="Γόνατο δεξί"
    )
    cyrillic = rich_header().replace(IDENTIFIERS["protocol"], "т2_тсе_акс")
    export_volume_dicom(volume(ismrmrd_header=cyrillic), tmp_path / "s", DicomOptions(identity=names))
    ds = read_series(tmp_path / "s")[0]
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert (str(ds.PatientName), str(ds.ReferringPhysicianName)) == ("Müller^Jörg", "佐藤^花子")
    assert (ds.StudyDescription, ds.ProtocolName) == ("Γόνατο δεξί", "т2_тсе_акс")
    assert ds.SeriesDescription.startswith("т2_тсе_") and ": cirim recon" in ds.SeriesDescription
    assert len(ds.SeriesDescription.encode("utf-8")) <= 64
    export_volume_dicom(volume(), tmp_path / "latin", DicomOptions(identity=IdentityOverrides("Müller^Jörg")))
    assert read_series(tmp_path / "latin")[0].SpecificCharacterSet == "ISO_IR 100"


def test_texts_fit_their_length_in_bytes(tmp_path: Path) -> None:
    """A 64-character CJK institution is 192 bytes in UTF-8: dciodvfy rejects it (LO: 64)."""
    names = IdentityOverrides(institution_name="山" * 70, study_description="Ø" * 70)
    export_volume_dicom(volume(), tmp_path / "s", DicomOptions(identity=names))
    ds = read_series(tmp_path / "s")[0]
    assert ds.InstitutionName == "山" * 21 and len(ds.StudyDescription.encode("utf-8")) <= 64
    assert ds.StudyDescription == "Ø" * 32  # the series is UTF-8 (the institution): 2 bytes each
    # in a Latin-1 series (ISO_IR 100, one byte a character) the same text keeps 64 characters
    latin = IdentityOverrides(institution_name="Universitätsklinikum " * 4, study_description="Ø" * 70)
    export_volume_dicom(volume(), tmp_path / "latin", DicomOptions(identity=latin))
    ds = read_series(tmp_path / "latin")[0]
    assert ds.SpecificCharacterSet == "ISO_IR 100" and ds.StudyDescription == "Ø" * 64
    assert ds.InstitutionName == ("Universitätsklinikum " * 4)[:64].rstrip()
    japanese = rich_header().replace(IDENTIFIERS["protocol"], "頭部_T2強調_横断像_高分解能")
    long_model = volume(
        ismrmrd_header=japanese, model="recurrentvarnet_calgary_campinas", geometry=oblique_geometry()
    )
    export_volume_dicom(long_model, tmp_path / "j")
    description = read_series(tmp_path / "j")[0].SeriesDescription
    assert len(description.encode("utf-8")) <= 64 and description.startswith("頭部_T2")
    own = DicomOptions(series_description="脳 " * 30)  # synthetic geometry: the flag is appended
    export_volume_dicom(volume(), tmp_path / "o", own)
    description = read_series(tmp_path / "o")[0].SeriesDescription
    assert len(description.encode("utf-8")) <= 64 and description.endswith("; synthetic geometry")


def test_identifiers_are_never_cut(tmp_path: Path) -> None:
    """An accession number cut to 16 characters can be another order's."""
    with pytest.raises(ConfigError, match=r"--accession-number is 18 characters.*at most 16"):
        accession = IdentityOverrides(accession_number="ACC-2024-000123456")
        export_volume_dicom(volume(), tmp_path / "a", DicomOptions(identity=accession))
    with pytest.raises(ConfigError, match="--patient-id"):
        patient = IdentityOverrides(patient_id="P" * 65)
        export_volume_dicom(volume(), tmp_path / "b", DicomOptions(identity=patient))
    long_number = rich_header().replace(IDENTIFIERS["accession"], "20240115000123456")
    with pytest.warns(
        UserWarning, match=r"AccessionNumber \(17 characters\) is longer than DICOM.s 16.*export-dicom"
    ):
        export_volume_dicom(volume(ismrmrd_header=long_number), tmp_path / "c")
    assert read_series(tmp_path / "c")[0].AccessionNumber == ""


def test_a_series_of_planes_of_several_orientations_keeps_its_order(tmp_path: Path) -> None:
    """A 3-plane localizer (sagittal, coronal, axial pairs): no one normal orders its planes, so the
    instances follow the stored order and the spacing is the thickness, not a projection."""
    frames = {"sag": ([0, 1, 0], [0, 0, -1]), "cor": ([1, 0, 0], [0, 0, -1]), "tra": ([1, 0, 0], [0, 1, 0])}
    names = ["sag", "sag", "cor", "cor", "tra", "tra"]
    phase = np.array([frames[n][0] for n in names], float)
    read = np.array([frames[n][1] for n in names], float)
    normal = np.cross(read, phase)
    position = np.array([10.0, -10.0] * 3)[:, None] * normal
    geometry = SliceGeometry(position=position, read_dir=read, phase_dir=phase, slice_dir=normal)
    export_volume_dicom(volume(reconstruction=phantom(slices=6), geometry=geometry), tmp_path / "l")
    files = read_series(tmp_path / "l")  # sorted by InstanceNumber
    rows = [tuple(round(float(v)) for v in f.ImageOrientationPatient[3:]) for f in files]
    assert rows == [tuple(r) for r in read.astype(int)]
    locations = [float(f.SliceLocation) for f in files]  # along each plane's own normal
    assert locations == [locations[0], -locations[0]] * 3 and abs(locations[0]) == 10.0
    assert float(files[0].SpacingBetweenSlices) == float(files[0].SliceThickness)


def test_instances_are_numbered_through_space(tmp_path: Path) -> None:
    """Slice counters interleaved in space (−10, 0, 10, −5, 5 mm): a viewer stacking by InstanceNumber
    scrolled back and forth. Numbers follow the planes; a stack in order (either way) keeps its order."""
    geometry = oblique_geometry(slices=5)
    normal = geometry.slice_dir[0]
    centre = geometry.position[2]
    offsets = np.array([-10.0, 0.0, 10.0, -5.0, 5.0])
    interleaved = SliceGeometry(**{**geometry.__dict__, "position": centre + offsets[:, None] * normal})
    export_volume_dicom(volume(reconstruction=phantom(slices=5), geometry=interleaved), tmp_path / "i")
    files = read_series(tmp_path / "i")  # sorted by file name, i.e. by InstanceNumber
    steps = np.diff([float(f.SliceLocation) for f in files]).round(3)
    assert set(np.abs(steps)) == {5.0} and len(set(np.sign(steps))) == 1
    reverse = SliceGeometry(**{**geometry.__dict__, "position": geometry.position[::-1].copy()})
    export_volume_dicom(volume(reconstruction=phantom(slices=5), geometry=reverse), tmp_path / "r")
    files = read_series(tmp_path / "r")  # a stack in order (here the other way): numbered as stored
    positions = np.array([[float(v) for v in f.ImagePositionPatient] for f in files])
    np.testing.assert_allclose(np.diff(positions, axis=0), np.diff(reverse.position, axis=0), atol=1e-4)


def test_a_link_planted_where_the_series_goes_is_replaced_not_written_through(tmp_path: Path) -> None:
    """A symbolic link at the series folder made the files land in its target, and --overwrite
    deleted another series' files there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "IM_0007.dcm").write_bytes(b"someone else's")
    (tmp_path / "s").symlink_to(elsewhere, target_is_directory=True)
    export_volume_dicom(volume(), tmp_path / "s", DicomOptions(overwrite=True))
    assert not (tmp_path / "s").is_symlink() and len(read_series(tmp_path / "s")) > 0
    assert [p.name for p in elsewhere.iterdir()] == ["IM_0007.dcm"]
    assert (elsewhere / "IM_0007.dcm").read_bytes() == b"someone else's"
