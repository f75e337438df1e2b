"""Patient and study identifiers for the DICOM export, de-identification and deterministic UIDs.

Where each identifier comes from, first match wins:

1. the command line (:class:`IdentityOverrides`), also under ``--deidentify`` (a user who types a
   pseudonym wants it written);
2. the ISMRMRD header of the raw data (``subjectInformation``, ``studyInformation``,
   ``measurementInformation``, ``acquisitionSystemInformation``), unless de-identifying;
3. the reconstruction file's ``patient_id`` attribute (fastMRI's), unless de-identifying;
4. defaults: PatientID is made from the StudyInstanceUID when the header has one (``STUDY`` + a
   short hash: every series of the study gets the same), else the input file's stem (fastMRI files
   carry no identifiers; this is what fastMRI+ does); StudyID a short hash of the StudyInstanceUID.

``deidentify`` replaces or removes every identifying attribute (the list is in docs/dicom.md):
names, IDs, birth date, sex, weight, dates and times, accession number, referring physician,
institution, station, device serial number, protocol and study descriptions. UIDs are derived by
hashing (SHA-512, :func:`pydicom.uid.generate_uid` with entropy sources) together with an optional
secret salt, so no scanner serial number or date embedded in an original UID reaches the output;
the de-identified StudyInstanceUID and FrameOfReferenceUID are hashes of the original ones (not of
the input file), so the series of one study still share them. Nothing here logs or prints an
identifier.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import PurePath

from pydicom.uid import PYDICOM_ROOT_UID, generate_uid

from mrirecon.data.header import AcquisitionHeader
from mrirecon.errors import ConfigError, Notice

__all__ = [
    "Identity",
    "IdentityOverrides",
    "derive_uid",
    "is_valid_uid",
    "resolve_identity",
    "study_patient_id",
]

#: fastMRI ``acquisition`` attributes whose body part is known.
_FASTMRI_BODY_PARTS = {
    "CORPD_FBK": "KNEE",
    "CORPDFS_FBK": "KNEE",
    "AXFLAIR": "BRAIN",
    "AXT1": "BRAIN",
    "AXT1PRE": "BRAIN",
    "AXT1POST": "BRAIN",
}
#: Body parts that come in pairs: DICOM then wants Laterality (empty when unknown).
PAIRED_BODY_PARTS = {
    "KNEE", "HIP", "SHOULDER", "ELBOW", "WRIST", "HAND", "ANKLE", "FOOT", "BREAST", "EAR", "EYE",
    "KIDNEY", "LUNG", "ARM", "LEG", "THIGH", "CLAVICLE", "FEMUR", "HUMERUS", "TIBIA", "FIBULA",
}  # fmt: skip
#: The pseudonymous PatientID of de-identification (``ANON`` + 10 hex digits).
_PSEUDONYM = re.compile(r"ANON[0-9A-F]{10}")
_PATIENT_POSITIONS = {"HFP", "HFS", "HFDR", "HFDL", "FFDR", "FFDL", "FFP", "FFS", "LFP", "LFS", "RFP", "RFS",
                      "AFDR", "AFDL", "PFDR", "PFDL"}  # fmt: skip


@dataclass(frozen=True)
class IdentityOverrides:
    """Identifiers given on the command line; ``None`` means "not given"."""

    patient_name: str | None = None
    patient_id: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    study_description: str | None = None
    study_id: str | None = None
    accession_number: str | None = None
    referring_physician: str | None = None
    institution_name: str | None = None
    body_part: str | None = None
    laterality: str | None = None


def _adds_identifiers(overrides: IdentityOverrides) -> bool:
    """Whether the command line gives any identifying attribute (anything but body part, laterality
    and sex, which the de-identification profile keeps)."""
    kept = ("body_part", "laterality", "patient_sex")
    return any(getattr(overrides, f.name) for f in dataclasses.fields(overrides) if f.name not in kept)


@dataclass(frozen=True)
class Identity:
    """The identifying and study-level attribute values to write, already in DICOM form.

    ``""`` writes an empty (type 2) attribute; ``None`` leaves an optional attribute out.
    """

    patient_name: str
    patient_id: str
    patient_birth_date: str
    patient_sex: str
    patient_weight_kg: str | None
    study_instance_uid: str
    study_date: str
    study_time: str
    study_id: str
    accession_number: str
    referring_physician: str
    study_description: str | None
    institution_name: str | None
    station_name: str | None
    device_serial: str | None
    protocol_name: str | None
    body_part: str | None
    laterality: str | None
    patient_position: str
    #: FrameOfReferenceUID of a series with real geometry: the header's, or derived (docs/dicom.md).
    frame_of_reference_uid: str
    #: A key that stands for the patient and study in derived UIDs (hashed, never written).
    uid_key: str
    deidentified: bool


#: A DICOM UID: numeric components without leading zeros, separated by dots (at most 64 characters).
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


def is_valid_uid(text: str) -> bool:
    """Whether ``text`` is a valid DICOM UID (PS3.5 9.1): receivers refuse a series with another."""
    return len(text) <= 64 and _UID.fullmatch(text) is not None


def _written_uid(uid: str, keyword: str, root: str, source: str) -> str:
    """A UID from the input's header as the series writes it: as it is when valid, else one derived
    from it (the same for every series of the input's study), with a notice; "" stays ""."""
    if not uid or is_valid_uid(uid):
        return uid
    where = f"{source}: " if source else ""
    warnings.warn(
        Notice(
            f"{where}the header's {keyword} is not a valid DICOM UID (digits and dots, no leading "
            f"zeros, at most 64 characters); the series gets one derived from it"
        ),
        stacklevel=3,
    )
    return derive_uid(root, keyword, uid)


def derive_uid(root: str, *parts: str) -> str:
    """A deterministic UID under ``root``: the same parts always give the same UID (SHA-512 based)."""
    return str(generate_uid(prefix=root, entropy_srcs=["mrirecon", *parts]))


def check_uid_root(root: str) -> str:
    """Validate an organisation UID root: numbers without leading zeros (DICOM PS3.5 §9.1)
    separated by dots, ending with a dot, at most 40 characters (the rest of the 64 is the UID's)."""
    if not re.fullmatch(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*\.", root) or len(root) > 40:
        raise ConfigError(
            f"invalid UID root {root!r}",
            hint="give numbers without leading zeros separated by dots, ending with a dot, at most 40 "
            f"characters, e.g. {PYDICOM_ROOT_UID}",
        )
    return root


def dicom_date(text: str) -> str:
    """ISMRMRD ``xs:date`` (``2019-03-14``) or DICOM ``DA`` (``20190314``) → ``DA``; "" if unparsable."""
    digits = text.strip().replace("-", "")
    return digits if re.fullmatch(r"(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])", digits) else ""


def dicom_time(text: str) -> str:
    """ISMRMRD ``xs:time`` (``22:34:35``, a time zone ``+01:00`` or ``Z`` dropped: the scanner's
    local time is what DICOM's TM holds) or DICOM ``TM`` → ``TM`` (``223435``); "" if unparsable."""
    value = re.sub(r"(Z|[+-]\d{2}:?\d{2})$", "", text.strip()).replace(":", "")
    match = re.fullmatch(r"([01]\d|2[0-3])([0-5]\d)([0-5]\d)?(\.\d{1,6})?", value)
    return value if match else ""


def dicom_sex(text: str) -> str:
    """ISMRMRD patientGender → DICOM PatientSex (``M``, ``F``, ``O``) or ""."""
    value = text.strip().upper()[:1]
    return value if value in ("M", "F", "O") else ""


def clean_text(text: str, limit: int) -> str:
    """Printable text without backslashes (the DICOM value separator), at most ``limit`` characters
    (a Latin-1 text: ``ISO_IR 100`` has one byte per character) and, when it is not Latin-1 (it makes
    the series UTF-8, ``ISO_IR 192``), at most ``limit`` bytes in UTF-8: validators and receivers
    count a value's length in bytes. A Latin-1 text in a series another value makes UTF-8 is cut
    to its byte limit there (:func:`mrirecon.export.dicom_text.fit_text_lengths`)."""
    text = "".join(ch for ch in text if ch.isprintable()).replace("\\", "/").strip()
    return fit_bytes(text[:limit], limit, "latin-1" if is_latin1(text) else "utf-8")


def is_latin1(text: str) -> bool:
    """Whether ``text`` can be written in Latin-1 (``ISO_IR 100``)."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def fit_bytes(text: str, limit: int, encoding: str) -> str:
    """``text`` without its last characters until it takes at most ``limit`` bytes in ``encoding``."""
    while len(text.encode(encoding)) > limit:
        text = text[:-1]
    return text.rstrip()


def clean_person_name(text: str, limit: int = 64) -> str:
    """A DICOM PN value: :func:`clean_text` with at most three ``=`` groups (alphabetic,
    ideographic, phonetic) of at most five ``^`` components each (family, given, middle, prefix,
    suffix); the surplus components join the last one with spaces (``Doe^John^^^^Jr`` is refused
    by validators and receivers)."""
    groups = []
    for group in text.split("=")[:3]:
        parts = group.split("^")
        groups.append(
            "^".join([*parts[:4], " ".join(p for p in parts[4:] if p)] if len(parts) > 5 else parts)
        )
    return clean_text("=".join(groups), limit)


#: The identifiers a receiver matches on, with their DICOM names and length limits.
_IDENTIFIERS = {
    "patient_id": ("PatientID", 64),
    "study_id": ("StudyID", 16),
    "accession_number": ("AccessionNumber", 16),
}


def _identifier(value: str, name: str, *, given: bool, source: str = "") -> str:
    """An identifier as written, never cut: cut, it could name another patient, study or order.

    A value given on the command line that does not fit is refused; one from the input's header is
    left out (the attribute is written empty) with a notice naming the input file ``source``.
    """
    value = "".join(ch for ch in value if ch.isprintable()).replace("\\", "/").strip()
    keyword, limit = _IDENTIFIERS[name]
    size = len(value.encode("utf-8"))
    if size <= limit:
        return value
    option = "--" + name.replace("_", "-")
    length = f"{len(value)} characters" if size == len(value) else f"{size} bytes in UTF-8"
    if given:
        raise ConfigError(
            f"{option} is {length} long; DICOM's {keyword} holds at most {limit}",
            hint=f"give {option} in at most {limit} bytes in UTF-8 ({limit} ASCII characters; it is never "
            "shortened: a cut identifier can name another record)",
        )
    where = f"{source}: " if source else ""
    warnings.warn(
        Notice(
            f"{where}the input's {keyword} ({length}) is longer than DICOM's {limit} and is left out "
            f"of the DICOM series (a cut one could name another record); to write one, export the "
            f"reconstruction with `mrirecon export-dicom RECON.h5 {option} VALUE`"
        ),
        stacklevel=3,
    )
    return ""


def clean_code_string(text: str) -> str:
    """A DICOM CS value: upper case, digits, space and underscore, at most 16 characters."""
    return re.sub(r"[^A-Z0-9 _]", "_", text.strip().upper())[:16]


def _pick(*values: str | None) -> str:
    for value in values:
        if value:
            return value
    return ""


def _short_hash(*parts: str, length: int = 10) -> str:
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
    return digest[:length].upper()


def study_patient_id(study_uid: str) -> str:
    """The PatientID of a study whose header names no patient: ``STUDY`` + 10 hex digits of a hash
    of its StudyInstanceUID ("" without one), the same for every series of the study."""
    return "STUDY" + _short_hash("patient of study", study_uid) if study_uid else ""


def resolve_identity(
    header: AcquisitionHeader | None,
    *,
    recon_patient_id: str = "",
    input_file: str = "",
    acquisition: str = "",
    overrides: IdentityOverrides | None = None,
    deidentify: bool = False,
    salt: str = "",
    uid_root: str = PYDICOM_ROOT_UID,
    pseudonymous: bool = False,
    recorded_study_uid: str = "",
    recorded_frame_uid: str = "",
) -> Identity:
    """Decide every identifying attribute (see the module docstring for the order of sources).

    UIDs (docs/dicom.md, *Identifiers* and *De-identification*):

    - StudyInstanceUID: the header's; de-identified, a salted hash of the header's (so the series
      of one study share one); without one in the header, a hash of the patient, study date and
      time and the input file.
    - FrameOfReferenceUID (real geometry): the same way from the header's frameOfReferenceUID;
      without one, a hash of the same key and the input file's name.
    - A ``--patient-id`` other than the one the export would write goes into every derived UID,
      and replaces the header's study and frame of reference by ones derived from them together
      with that ID (a study belongs to one patient), except that without de-identification, when the
      input names no patient, the header's UIDs are kept (the command line supplies the missing ID).

    Args:
        header: The parsed ISMRMRD header of the input, if any.
        recon_patient_id: The reconstruction file's ``patient_id`` attribute.
        input_file: The input file's name (its stem is the fallback PatientID).
        acquisition: fastMRI's ``acquisition`` attribute (gives the body part for fastMRI data).
        overrides: Values from the command line.
        deidentify: Replace or remove every identifying attribute.
        salt: A secret mixed into the pseudonym and every derived UID when de-identifying, so that
            nobody who knows an original identifier can recompute its pseudonym.
        uid_root: The organisation root of generated UIDs.
        pseudonymous: The input is a reconstruction a de-identified run wrote: its patient ID is
            the pseudonym already (kept when it has the pseudonym's form, else hashed again), and its
            recorded UIDs are the de-identified ones (kept as they are).
        recorded_study_uid, recorded_frame_uid: The de-identified StudyInstanceUID and
            FrameOfReferenceUID such a reconstruction records (attributes ``study_instance_uid``,
            ``frame_of_reference_uid``); used only with ``pseudonymous``.
    """
    o = overrides or IdentityOverrides()
    if o.patient_birth_date and not dicom_date(o.patient_birth_date):
        raise ConfigError(
            f"invalid patient birth date {o.patient_birth_date!r}", hint="give it as YYYYMMDD, e.g. 19700412"
        )
    h = header or AcquisitionHeader(encoded_matrix=(0, 0, 0), recon_matrix=(0, 0, 0))
    stem = PurePath(input_file).stem if input_file else ""
    # a de-identified run's reconstruction records the de-identified UIDs (its header lost the originals)
    recorded_study = recorded_study_uid if pseudonymous else ""
    recorded_frame = recorded_frame_uid if pseudonymous else ""
    original_study = _pick(recorded_study, h.study_instance_uid)
    original_frame = _pick(recorded_frame, h.frame_of_reference_uid)
    file_pid = _pick(h.patient_id, recon_patient_id)
    # without a patient ID the series of one study share one made from the study's UID; only
    # without either (fastMRI files) is it the file's stem, fastMRI+'s convention
    original_pid = _pick(file_pid, study_patient_id(original_study), stem)
    # what stands for the patient and the study inside hashed UIDs (never written out)
    key = "\0".join((original_study, original_pid, h.study_date, h.study_time, stem))
    # a de-identified run's file: every part of the key is pseudonymous already, and the key is the
    # same with or without --deidentify (and whatever the salt), so exporting it again replaces its
    # series instead of adding one of the same images
    pseudonym_id = original_pid if pseudonymous and _PSEUDONYM.fullmatch(original_pid) else ""
    if pseudonymous:
        key = "\0".join(("deidentified", key))
    elif deidentify:
        key = "\0".join(("deidentified", salt, key))
    if deidentify:
        if pseudonym_id:  # the pseudonym a de-identified run gave
            pseudonym = pseudonym_id
        else:
            pseudonym = "ANON" + _short_hash(salt, original_pid or key)
        # from the original UIDs alone (with the salt): every series of a study, whatever its file,
        # gets the same study and frame of reference
        study_uid = recorded_study or (
            derive_uid(uid_root, "study", "deidentified", salt, h.study_instance_uid)
            if h.study_instance_uid
            else derive_uid(uid_root, "study", key)
        )
        frame_uid = recorded_frame or (
            derive_uid(uid_root, "frame of reference", "deidentified", salt, h.frame_of_reference_uid)
            if h.frame_of_reference_uid
            else derive_uid(uid_root, "frame of reference", key, input_file)
        )
        default_pid = pseudonym
    else:
        study_uid = _written_uid(original_study, "StudyInstanceUID", uid_root, input_file) or derive_uid(
            uid_root, "study", key
        )
        frame_uid = _written_uid(original_frame, "FrameOfReferenceUID", uid_root, input_file) or derive_uid(
            uid_root, "frame of reference", key, input_file
        )
        default_pid = original_pid
    uid_key = key
    new_pid = clean_text(o.patient_id or "", 64)
    if new_pid and new_pid != clean_text(default_pid, 64):
        # another patient ID than the input's: no UID of that input's series is reused under it
        uid_key = "\0".join((key, "patient id", new_pid))
        keep_scanner = not deidentify and not file_pid  # the command line names the missing patient
        if not (keep_scanner and original_study):
            study_uid = derive_uid(uid_root, "study", study_uid, "patient id", new_pid)
        if not (keep_scanner and original_frame):
            frame_uid = derive_uid(uid_root, "frame of reference", frame_uid, "patient id", new_pid)
    if deidentify:
        patient_id = _pick(o.patient_id, pseudonym)
        patient_name = _pick(o.patient_name, pseudonym + "^")  # FAMILY^ (a name without ^ is a retired form)
        birth_date = dicom_date(o.patient_birth_date or "")
        sex = dicom_sex(o.patient_sex or "")
        weight = None
        study_date = study_time = ""
        accession = _identifier(o.accession_number or "", "accession_number", given=True)
        referring = o.referring_physician or ""
        study_description = o.study_description
        institution = o.institution_name
        station = device_serial = protocol = None
    else:
        patient_id = _pick(o.patient_id, original_pid)
        # a de-identified run's file names the patient as de-identification does (its header has no name)
        patient_name = _pick(o.patient_name, h.patient_name, pseudonym_id and pseudonym_id + "^")
        birth_date = dicom_date(_pick(o.patient_birth_date, h.patient_birth_date))
        sex = dicom_sex(_pick(o.patient_sex, h.patient_sex))
        weight = None if h.patient_weight_kg is None else f"{h.patient_weight_kg:.6g}"
        study_date = dicom_date(h.study_date)
        study_time = dicom_time(h.study_time) if study_date else ""
        accession = _identifier(
            _pick(o.accession_number, h.accession_number),
            "accession_number",
            given=bool(o.accession_number),
            source=input_file,
        )
        referring = _pick(o.referring_physician, h.referring_physician)
        study_description = o.study_description or h.study_description or None
        institution = o.institution_name or h.institution or None
        station = h.station or None
        device_serial = h.device_serial or None
        protocol = h.protocol_name or None
    if deidentify or not h.study_id:
        study_id = _pick(o.study_id, "MR" + _short_hash(study_uid, length=8))
    else:
        study_id = _pick(o.study_id, h.study_id)
    study_id = _identifier(study_id, "study_id", given=bool(o.study_id), source=input_file)
    patient_id = _identifier(patient_id, "patient_id", given=bool(o.patient_id), source=input_file)
    body_part = clean_code_string(
        _pick(o.body_part, h.body_part, _FASTMRI_BODY_PARTS.get(acquisition.upper()))
    )
    laterality = (o.laterality or "").strip().upper() or None
    if laterality not in (None, "L", "R"):
        raise ConfigError(f"laterality must be L or R, got {o.laterality!r}", hint="give --laterality L or R")
    if laterality and body_part and body_part not in PAIRED_BODY_PARTS:  # DICOM: only for paired parts
        raise ConfigError(
            f"--laterality is for a paired body part (KNEE, SHOULDER, BREAST, ...); {body_part} is not one",
            hint="leave out --laterality, or give the body part it belongs to with --body-part",
        )
    if laterality is None and (not body_part or body_part in PAIRED_BODY_PARTS):
        laterality = ""  # paired or unknown body part, side unknown: present but empty
    position = clean_code_string(h.patient_position)
    return Identity(
        patient_name=clean_person_name(patient_name),
        patient_id=patient_id,
        patient_birth_date=birth_date,
        patient_sex=sex,
        patient_weight_kg=weight,
        study_instance_uid=study_uid,
        study_date=study_date,
        study_time=study_time,
        study_id=study_id,
        accession_number=accession,
        referring_physician=clean_person_name(referring),
        study_description=None if study_description is None else clean_text(study_description, 64),
        institution_name=None if institution is None else clean_text(institution, 64),
        station_name=None if station is None else clean_text(station, 16),
        device_serial=None if device_serial is None else clean_text(device_serial, 64),
        protocol_name=None if protocol is None else clean_text(protocol, 64),
        body_part=body_part or None,
        laterality=laterality,
        patient_position=position if position in _PATIENT_POSITIONS else "",
        frame_of_reference_uid=frame_uid,
        uid_key=uid_key,
        # a de-identified run's file exported as it is stays de-identified, unless identifiers are added
        deidentified=deidentify or (pseudonymous and not _adds_identifiers(o)),
    )
