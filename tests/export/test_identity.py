"""Which patient IDs and UIDs the series of one study share (mrirecon.export.identity), with and
without de-identification, and what a --patient-id override changes."""

from __future__ import annotations

import re
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from mrirecon.export.dicom import DicomOptions, export_volume_dicom
from mrirecon.export.identity import IdentityOverrides, resolve_identity, study_patient_id
from mrirecon.export.recon_h5 import ReconVolume
from tests.export.tools import IDENTIFIERS, oblique_geometry, rich_header, volume

DEID = DicomOptions(deidentify=True, salt="s3cret")


def _first(folder: Path) -> Dataset:
    return pydicom.dcmread(sorted(folder.glob("IM_*.dcm"))[0])


def _series(name: str, header: str | None = None, **kwargs: object) -> ReconVolume:
    """One series of the study of ``rich_header`` (real geometry), from the input file ``name``."""
    return volume(
        ismrmrd_header=rich_header() if header is None else header,
        geometry=oblique_geometry(),
        input_file=name,
        **kwargs,
    )


def _uids(ds: Dataset) -> tuple[str, str, str, str]:
    return ds.StudyInstanceUID, ds.FrameOfReferenceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def test_deidentified_series_of_one_study_share_its_study_and_frame_of_reference(tmp_path: Path) -> None:
    # two series of one study (same study and frame-of-reference UIDs in the header), two input files
    export_volume_dicom(_series("t1_series.h5"), tmp_path / "a", DEID)
    export_volume_dicom(_series("t2_series.h5", model="rim"), tmp_path / "b", DEID)
    a, b = _first(tmp_path / "a"), _first(tmp_path / "b")
    assert a.StudyInstanceUID == b.StudyInstanceUID and a.FrameOfReferenceUID == b.FrameOfReferenceUID
    assert a.PatientID == b.PatientID and a.PatientID.startswith("ANON")
    assert a.SeriesInstanceUID != b.SeriesInstanceUID
    # and they are not the originals, but hashes of them with the salt
    assert a.StudyInstanceUID != IDENTIFIERS["study_uid"]
    assert a.FrameOfReferenceUID != IDENTIFIERS["frame_uid"]
    other_study = rich_header().replace(IDENTIFIERS["study_uid"], "1.2.3.4.5")
    export_volume_dicom(_series("t1_series.h5", other_study), tmp_path / "c", DEID)
    c = _first(tmp_path / "c")
    assert c.StudyInstanceUID != a.StudyInstanceUID and c.FrameOfReferenceUID == a.FrameOfReferenceUID
    export_volume_dicom(_series("t1_series.h5"), tmp_path / "d", DicomOptions(deidentify=True, salt="x"))
    d = _first(tmp_path / "d")
    assert d.StudyInstanceUID != a.StudyInstanceUID and d.FrameOfReferenceUID != a.FrameOfReferenceUID


def test_without_a_study_uid_the_study_stays_per_input(tmp_path: Path) -> None:
    no_study = re.sub(r"<studyInstanceUID>.*?</studyInstanceUID>", "", rich_header())
    no_frame = re.sub(r"<frameOfReferenceUID>.*?</frameOfReferenceUID>", "", no_study)
    export_volume_dicom(_series("one.h5", no_frame), tmp_path / "a", DEID)
    export_volume_dicom(_series("two.h5", no_frame), tmp_path / "b", DEID)
    a, b = _first(tmp_path / "a"), _first(tmp_path / "b")
    assert a.StudyInstanceUID != b.StudyInstanceUID and a.FrameOfReferenceUID != b.FrameOfReferenceUID


def test_a_header_without_a_patient_id_gives_one_patient_id_per_study(tmp_path: Path) -> None:
    anonymous = re.sub(r"<patientID>.*?</patientID>", "", rich_header())
    export_volume_dicom(_series("DOE_t1.h5", anonymous), tmp_path / "a")
    export_volume_dicom(_series("DOE_t2.h5", anonymous), tmp_path / "b")
    a, b = _first(tmp_path / "a"), _first(tmp_path / "b")
    assert a.PatientID == b.PatientID == study_patient_id(IDENTIFIERS["study_uid"])
    assert re.fullmatch(r"STUDY[0-9A-F]{10}", a.PatientID)
    assert a.StudyInstanceUID == b.StudyInstanceUID == IDENTIFIERS["study_uid"]  # the scanner's study
    # de-identified, they share one pseudonym too
    export_volume_dicom(_series("DOE_t1.h5", anonymous), tmp_path / "c", DEID)
    export_volume_dicom(_series("DOE_t2.h5", anonymous), tmp_path / "d", DEID)
    assert _first(tmp_path / "c").PatientID == _first(tmp_path / "d").PatientID
    # without a header (fastMRI) the stem stays the fallback
    export_volume_dicom(volume(input_file="file1000007.h5"), tmp_path / "e")
    assert _first(tmp_path / "e").PatientID == "file1000007"


def test_another_patient_id_never_reuses_the_uids_of_the_first(tmp_path: Path) -> None:
    def export(name: str, patient_id: str | None, *, deidentify: bool = False, header: str | None = None):
        options = DicomOptions(
            deidentify=deidentify, salt="s3cret", identity=IdentityOverrides(patient_id=patient_id)
        )
        export_volume_dicom(_series("scan.h5", header), tmp_path / name, options)
        return _first(tmp_path / name)

    plain, x1, x2 = export("plain", None), export("x1", "X1"), export("x2", "X2")
    assert plain.StudyInstanceUID == IDENTIFIERS["study_uid"]  # the scanner's study: joins it
    assert plain.FrameOfReferenceUID == IDENTIFIERS["frame_uid"]
    assert (x1.PatientID, x2.PatientID) == ("X1", "X2")
    for a, b in ((plain, x1), (plain, x2), (x1, x2)):  # a study belongs to one patient
        assert all(u != v for u, v in zip(_uids(a), _uids(b))), (a.PatientID, b.PatientID)
    assert _uids(export("x1again", "X1")) == _uids(x1)  # stable
    # the header's own ID given again changes nothing
    assert _uids(export("same", IDENTIFIERS["patient_id"])) == _uids(plain)
    # de-identified: a corrected pseudonym gets other UIDs too
    d1, d2 = export("d1", "SUBJ-07", deidentify=True), export("d2", "SUBJ-08", deidentify=True)
    assert all(u != v for u, v in zip(_uids(d1), _uids(d2)))
    # a header that names no patient: the command line supplies the ID, the series joins the study
    anonymous = re.sub(r"<patientID>.*?</patientID>", "", rich_header())
    supplied = export("supplied", "MRN-1", header=anonymous)
    assert supplied.PatientID == "MRN-1" and supplied.StudyInstanceUID == IDENTIFIERS["study_uid"]
    assert supplied.SOPInstanceUID != _uids(export("unsupplied", None, header=anonymous))[3]


def test_a_pseudonymous_reconstruction_keeps_its_recorded_uids() -> None:
    identity = resolve_identity(
        None,
        recon_patient_id="ANON0123456789",
        input_file="ANON0123456789AB.h5",
        deidentify=True,
        salt="s",
        pseudonymous=True,
        recorded_study_uid="1.2.3.4",
        recorded_frame_uid="1.2.3.5",
    )
    assert identity.patient_id == "ANON0123456789" and identity.patient_name == "ANON0123456789^"
    assert (identity.study_instance_uid, identity.frame_of_reference_uid) == ("1.2.3.4", "1.2.3.5")
    # recorded UIDs count only for a reconstruction a de-identified run wrote
    plain = resolve_identity(None, input_file="x.h5", recorded_study_uid="1.2.3.4")
    assert plain.study_instance_uid != "1.2.3.4"
    # and a patient ID that is no pseudonym is never written as it is, whatever the file claims
    claimed = resolve_identity(
        None, recon_patient_id="MRN99887766", deidentify=True, salt="s", pseudonymous=True
    )
    assert claimed.patient_id.startswith("ANON") and "MRN99887766" not in claimed.patient_id


def test_a_pseudonymous_reconstruction_exported_as_it_is_stays_marked_de_identified() -> None:
    """export-dicom without --deidentify of a de-identified run's file: its series says it is
    (PatientIdentityRemoved), unless the command line gives identifiers back."""
    from mrirecon.export.identity import IdentityOverrides

    recorded = {"recon_patient_id": "ANON0123456789", "input_file": "ANON0123456789AB.h5"}
    as_it_is = resolve_identity(None, pseudonymous=True, **recorded)  # type: ignore[arg-type]
    assert as_it_is.deidentified and as_it_is.patient_id == "ANON0123456789"
    # the same patient name and series UIDs as with --deidentify, whatever the salt: exported
    # again (e.g. to correct a description), the series replaces the run's instead of doubling it
    for salt in ("s", ""):
        again = resolve_identity(None, pseudonymous=True, deidentify=True, salt=salt, **recorded)  # type: ignore[arg-type]
        assert again.patient_name == as_it_is.patient_name == "ANON0123456789^"
        assert again.uid_key == as_it_is.uid_key
    named = resolve_identity(
        None,
        pseudonymous=True,
        overrides=IdentityOverrides(patient_name="DOE^JANE"),
        **recorded,  # type: ignore[arg-type]
    )
    assert not named.deidentified
    sided = resolve_identity(None, pseudonymous=True, overrides=IdentityOverrides(laterality="L"), **recorded)  # type: ignore[arg-type]
    assert sided.deidentified
    assert not resolve_identity(None, input_file="x.h5").deidentified  # an identified file


def test_an_invalid_uid_in_the_header_is_replaced_by_one_derived_from_it(tmp_path: Path) -> None:
    """A component with a leading zero or a UID over 64 characters: a strict receiver refuses the
    whole series, so it gets a derived UID (the same for every series of that study) and a note."""
    import pytest

    from mrirecon.errors import Notice
    from mrirecon.export.identity import is_valid_uid

    bad_study, long_frame = "1.2.840.0123.4.5", "1.3.12." + "1234567890." * 6 + "1"
    header = rich_header().replace(IDENTIFIERS["study_uid"], bad_study)
    header = header.replace(IDENTIFIERS["frame_uid"], long_frame)
    firsts = []
    for name in ("a", "b"):
        with pytest.warns(
            Notice, match=r"x\.h5: the header's (StudyInstanceUID|FrameOfReferenceUID) is not a valid"
        ):
            export_volume_dicom(_series("x.h5", header), tmp_path / name)
        firsts.append(_first(tmp_path / name))
    for ds in firsts:
        assert is_valid_uid(ds.StudyInstanceUID) and is_valid_uid(ds.FrameOfReferenceUID)
        assert bad_study not in ds.StudyInstanceUID
    assert firsts[0].StudyInstanceUID == firsts[1].StudyInstanceUID
    assert not is_valid_uid("1.2.03") and not is_valid_uid("1..2") and is_valid_uid("1.2.0.3")


def test_person_names_keep_dicom_form_and_times_drop_their_zone() -> None:
    from mrirecon.export.identity import clean_person_name, dicom_time

    assert clean_person_name("Doe^John^^^^Extra") == "Doe^John^^^Extra"  # at most five components
    assert clean_person_name("A^B^C^D^E^F^G=X^Y=P=Q") == "A^B^C^D^E F G=X^Y=P"  # at most three groups
    assert clean_person_name("Doe^John") == "Doe^John" and clean_person_name("") == ""
    assert dicom_time("22:34:35+01:00") == dicom_time("22:34:35Z") == dicom_time("22:34:35") == "223435"
    assert dicom_time("08:05:03.5-0500") == "080503.5" and dicom_time("25:00:00") == ""


def test_a_uid_root_with_leading_zeros_is_refused_before_any_uid_is_made() -> None:
    """'1.02.003.' passed the check, and pydicom's generate_uid then raised a ValueError: an
    internal error of export-dicom and infer --dicom."""
    from mrirecon.errors import ConfigError
    from mrirecon.export.identity import check_uid_root, derive_uid

    for good in ("1.2.826.0.1.3680043.8.498.", "0.", "2.25.", "1.0.10."):
        assert derive_uid(check_uid_root(good), "x").startswith(good)
    for bad in ("1.02.003.", "01.2.", "1.2", "1..2.", "a.1.", "1." * 21):
        with pytest.raises(ConfigError, match=r"invalid UID root .*numbers without leading zeros"):
            check_uid_root(bad)
