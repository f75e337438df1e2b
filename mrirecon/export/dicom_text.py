"""The texts of an exported DICOM series: its descriptions, the patient/study/equipment and MR
attributes, and the character set they need (the rest of the export: :mod:`mrirecon.export.dicom`).

- SeriesDescription: the acquisition's protocol (and ISMRMRD frame) first, then the model,
  checkpoint and a "synthetic geometry" flag; DerivationDescription: how the pixels were made and
  what they mean (:func:`series_description`, :func:`derivation_description`);
- identifiers as :mod:`mrirecon.export.identity` resolved them (:func:`text_attributes`); the
  sequence and its timing from the ISMRMRD header (:func:`mr_attributes`);
- SpecificCharacterSet Latin-1 unless some text needs UTF-8 (:func:`character_set`).
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from mrirecon._version import __version__
from mrirecon.data.header import AcquisitionHeader
from mrirecon.export.geometry import ImagePlanes
from mrirecon.export.identity import Identity, clean_text, fit_bytes, is_latin1
from mrirecon.export.pixels import Quantised, ds
from mrirecon.export.recon_h5 import ReconVolume

__all__ = [
    "RESEARCH_USE",
    "acquisition_label",
    "character_set",
    "code_item",
    "derivation_description",
    "fit_text_lengths",
    "frame_text",
    "mr_attributes",
    "series_description",
    "text_attributes",
]

#: In every exported series (ImageComments and the start of DerivationDescription).
RESEARCH_USE = "For research use only, not for diagnosis."

#: ISMRMRD sequence_type → DICOM ScanningSequence; anything else is RM (research mode).
SCANNING_SEQUENCE = {
    "SSFP": "GR", "TRUEFISP": "GR", "FISP": "GR", "FLASH": "GR", "GRE": "GR", "SPGR": "GR", "FFE": "GR",
    "SE": "SE", "TSE": "SE", "FSE": "SE", "RARE": "SE", "HASTE": "SE", "SPACE": "SE",
    "EPI": "EP", "IR": "IR", "FLAIR": "IR", "MPRAGE": "GR\\IR",
}  # fmt: skip


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def series_description(
    volume: ReconVolume, planes: ImagePlanes, override: str | None, protocol: str | None = None
) -> str:
    """SeriesDescription (≤ 64 characters): model, mrirecon version, checkpoint hash, geometry flag.

    With the acquisition's protocol (when it is written): the protocol first, so that the series
    of a study differ in a series list, and no version (SoftwareVersions and DerivationDescription
    have it); the model name is cut before the protocol is.
    """
    flag = "synthetic geometry" if planes.synthetic else ""
    if override is not None:
        text = clean_text(override, 64)
        if flag and flag not in text.lower():
            text = f"{clean_text(text, 64 - len(flag) - 2)}; {flag}"
        return text
    tail = [] if protocol else [f"mrirecon {volume.mrirecon_version or __version__}"]
    if volume.checkpoint_sha256:
        tail.append(f"ckpt {volume.checkpoint_sha256[:8]}")
    if flag:
        tail.append(flag)
    rest = ", " + ", ".join(tail) if tail else ""
    model = clean_text(volume.model or "unknown model", 64)
    room = 64 - len(rest) - len(" recon")
    prefix = ""
    if protocol:  # lengths in UTF-8 bytes, as clean_text cuts (the series may be written in UTF-8)
        length = min(32, room - 2 - min(len(model.encode()), 8))  # the model keeps 8 bytes or more
        prefix = f"{clean_text(protocol, length)}: " if length >= 4 else ""
    return f"{prefix}{clean_text(model, room - len(prefix.encode()))} recon{rest}"


def _attr_text(volume: ReconVolume, name: str, default: str) -> str:
    """The reconstruction's text attribute ``name`` (bytes as HDF5 may return them decoded);
    ``default`` when it is absent or not text."""
    text = volume.extra_attrs.get(name, default)
    if isinstance(text, bytes | np.bytes_):
        text = bytes(text).decode("utf-8", "replace")
    return text if isinstance(text, str) else default


def frame_text(volume: ReconVolume) -> str:
    """The ISMRMRD frame the reconstruction took (attribute ``frame``: ``contrast 0, repetition 0,
    phase 0, set 1``) as its counters other than 0 (``set 1``); "" for the first of each."""
    text = _attr_text(volume, "frame", "")
    return ", ".join(part for part in text.split(", ") if part and not part.endswith(" 0"))


def precision_text(volume: ReconVolume) -> str:
    """The precision the reconstruction ran in (attribute ``precision``, ``--precision``): ``32``
    (also for a file that does not record it) or ``bf16-mixed``."""
    return _attr_text(volume, "precision", "32")


def acquisition_label(volume: ReconVolume, identity: Identity) -> str | None:
    """What leads the series description: the protocol (when written) and the frame (when not the
    first), so that the series of a study, and the echoes of one acquisition, differ."""
    frame = frame_text(volume)
    protocol = identity.protocol_name
    if protocol and frame:
        return f"{protocol} ({frame})"
    return protocol or frame or None


def derivation_description(volume: ReconVolume, planes: ImagePlanes, q: Quantised) -> str:
    """DerivationDescription (≤ 1024 characters): how the pixels were made and what they mean."""
    version = volume.mrirecon_version or __version__
    text = f"{RESEARCH_USE} Reconstructed by mrirecon {version} with model {volume.model or 'unknown'}"
    if volume.checkpoint_sha256:
        text += f" (checkpoint sha256 {volume.checkpoint_sha256})"
    if volume.undersampling == "retrospective":
        text += " from retrospectively undersampled k-space"
        if volume.mask_type:
            text += f" (mask {volume.mask_type}"
            text += f", R={volume.acceleration:g})" if volume.acceleration else ")"
    elif volume.undersampling == "prospective":
        text += " from prospectively undersampled k-space"
    elif volume.undersampling == "none":
        text += " from fully sampled k-space"
    text += (
        f". Magnitude image in the input's intensity scale: value = stored x {ds(q.slope)} + "
        f"{ds(q.intercept)} (RealWorldValueMappingSequence)."
    )
    frame = frame_text(volume)
    if frame:
        text += f" ISMRMRD frame: {frame}."
    precision = precision_text(volume)
    if precision != "32":
        text += f" Convolutions in bfloat16 ({precision})."
    text += " Geometry: " + (
        "synthetic (documented default)" if planes.synthetic else "from the acquisition headers"
    )
    if planes.notes:
        text += "; " + "; ".join(note for note in planes.notes if not note.startswith("synthetic"))
    return clean_text(text.rstrip("; ") + ".", 1024)


def text_attributes(ds_: Dataset, identity: Identity) -> None:
    # Patient
    ds_.PatientName = identity.patient_name
    ds_.PatientID = identity.patient_id
    ds_.PatientBirthDate = identity.patient_birth_date
    ds_.PatientSex = identity.patient_sex
    if identity.patient_weight_kg is not None:
        ds_.PatientWeight = ds(float(identity.patient_weight_kg))
    if identity.deidentified:
        ds_.PatientIdentityRemoved = "YES"
        ds_.DeidentificationMethod = clean_text(f"mrirecon {__version__}: basic profile, hashed UIDs", 64)
        # PS3.15 E.1: the basic profile, and the clean descriptors option (every description
        # written is generated by mrirecon from non-identifying provenance)
        ds_.DeidentificationMethodCodeSequence = Sequence(
            [
                code_item("113100", "DCM", "Basic Application Confidentiality Profile"),
                code_item("113105", "DCM", "Clean Descriptors Option"),
            ]
        )
        ds_.LongitudinalTemporalInformationModified = "REMOVED"
    # General Study
    ds_.StudyInstanceUID = identity.study_instance_uid
    ds_.StudyDate = identity.study_date
    ds_.StudyTime = identity.study_time
    ds_.ReferringPhysicianName = identity.referring_physician
    ds_.StudyID = identity.study_id
    ds_.AccessionNumber = identity.accession_number
    if identity.study_description:
        ds_.StudyDescription = identity.study_description
    # General Equipment (site identifiers only when not de-identifying: resolve_identity decides)
    if identity.institution_name:
        ds_.InstitutionName = identity.institution_name
    if identity.station_name:
        ds_.StationName = identity.station_name
    if identity.device_serial:
        ds_.DeviceSerialNumber = identity.device_serial
    if identity.protocol_name:
        ds_.ProtocolName = identity.protocol_name
    if identity.body_part:
        ds_.BodyPartExamined = identity.body_part
    if identity.laterality is not None:
        ds_.Laterality = identity.laterality
    ds_.PatientPosition = identity.patient_position


def mr_attributes(ds_: Dataset, header: AcquisitionHeader | None, *, three_d: bool = False) -> None:
    h = header
    sequence = (h.sequence_type if h else "").strip()
    scanning = SCANNING_SEQUENCE.get(sequence.upper().replace("-", ""), "RM")
    ds_.ScanningSequence = scanning.split("\\") if "\\" in scanning else scanning
    ds_.SequenceVariant = "NONE"
    ds_.ScanOptions = ""
    # a 3-D acquisition mrirecon decoupled along the readout has a header rewritten to one
    # partition per slice (matrix z = 1): the volume's attribute says it was 3-D
    if three_d:
        ds_.MRAcquisitionType = "3D"
    else:
        ds_.MRAcquisitionType = "" if h is None else ("3D" if h.encoded_matrix[2] > 1 else "2D")
    ds_.RepetitionTime = ds(h.tr_ms) if h and h.tr_ms is not None else ""
    ds_.EchoTime = ds(h.te_ms) if h and h.te_ms is not None else ""
    ds_.EchoTrainLength = ""
    if "IR" in scanning:  # type 2C: present (empty when unknown) with an inversion-recovery sequence
        ds_.InversionTime = ds(h.ti_ms) if h and h.ti_ms is not None else ""
    if h is None:
        return
    if sequence:
        ds_.SequenceName = clean_text(sequence, 16)
    if h.flip_angle_deg is not None:
        ds_.FlipAngle = ds(h.flip_angle_deg)
    if h.resonance_frequency_hz:
        ds_.ImagingFrequency = ds(h.resonance_frequency_hz / 1e6)
    if h.field_strength_t:
        ds_.MagneticFieldStrength = ds(h.field_strength_t)


#: Value representations of text a character set applies to.
_TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})


def character_set(dataset: Dataset) -> str:
    """``ISO_IR 100`` (Latin-1) when every text value of ``dataset`` (sequences included) is
    Latin-1, else ``ISO_IR 192`` (UTF-8): any other name, description or protocol would be
    written as ``?``."""
    for element in dataset.iterall():
        if element.VR in _TEXT_VRS and element.value is not None:
            values = element.value if element.VM > 1 else [element.value]
            if not all(is_latin1(str(value)) for value in values):
                return "ISO_IR 192"
    return "ISO_IR 100"


#: Length limits in bytes of the text value representations the export writes (PS3.5 6.2).
_TEXT_LIMITS = {"PN": 64, "LO": 64, "SH": 16, "ST": 1024, "LT": 10240}


def fit_text_lengths(dataset: Dataset, charset: str) -> None:
    """In a UTF-8 series (``ISO_IR 192``), cut every text value to its value representation's limit
    in UTF-8 bytes: a Latin-1 text was cut by characters (one byte each in ``ISO_IR 100``). The
    identifiers are never cut (:func:`mrirecon.export.identity.resolve_identity` fits them in UTF-8
    bytes already)."""
    if charset != "ISO_IR 192":
        return
    for element in dataset.iterall():
        limit = _TEXT_LIMITS.get(element.VR)
        if limit is None or element.value is None or element.VM != 1:
            continue
        text = str(element.value)
        if len(text.encode("utf-8")) > limit:
            element.value = fit_bytes(text, limit, "utf-8")
