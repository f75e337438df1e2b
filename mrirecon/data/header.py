"""The ISMRMRD XML header: read the parts mrirecon needs, and write a minimal valid one.

fastMRI files carry the header of the raw acquisition as ``ismrmrd_header``; ISMRMRD raw files as
``dataset/xml``. mrirecon reads from it the encoded and reconstructed matrix and field of view
(hence fastMRI's zero-padded columns and the crop size), the encoding limits, parallel-imaging
settings, sequence parameters and the identifiers that the DICOM export carries over.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from mrirecon.errors import DataError

__all__ = [
    "AcquisitionHeader",
    "EncodingLimits",
    "build_ismrmrd_header",
    "parse_ismrmrd_header",
    "rewrite_encoding",
]

NAMESPACE = "http://www.ismrm.org/ISMRMRD"
_NS = {"m": NAMESPACE}
#: Largest encoded or reconstructed matrix size per axis a header may state.
MAX_MATRIX = 16384
#: The most levels of nested elements a header may have (the ISMRMRD schema has fewer than 10).
MAX_HEADER_DEPTH = 64


@dataclass(frozen=True)
class EncodingLimits:
    """``minimum``, ``maximum`` and ``center`` of one encoding counter (e.g. kspace_encoding_step_1)."""

    minimum: int
    maximum: int
    center: int


@dataclass(frozen=True)
class AcquisitionHeader:
    """What mrirecon uses from an ISMRMRD header; every field may be missing except the matrices.

    Matrix sizes and fields of view are ``(x, y, z)`` as ISMRMRD orders them: x is the readout
    (it includes readout oversampling in the encoded space), y the first phase-encode direction.
    """

    encoded_matrix: tuple[int, int, int]
    recon_matrix: tuple[int, int, int]
    encoded_fov_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    recon_fov_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    e1_limits: EncodingLimits | None = None
    e2_limits: EncodingLimits | None = None
    trajectory: str = "cartesian"
    acceleration_e1: int = 1
    acceleration_e2: int = 1
    calibration_mode: str = ""
    # sequence
    tr_ms: float | None = None
    te_ms: float | None = None
    ti_ms: float | None = None
    flip_angle_deg: float | None = None
    sequence_type: str = ""
    echo_spacing_ms: float | None = None
    # system
    vendor: str = ""
    model: str = ""
    field_strength_t: float | None = None
    institution: str = ""
    station: str = ""
    device_serial: str = ""
    receiver_channels: int | None = None
    resonance_frequency_hz: float | None = None
    # measurement and study
    measurement_id: str = ""
    protocol_name: str = ""
    patient_position: str = ""
    frame_of_reference_uid: str = ""
    study_date: str = ""
    study_time: str = ""
    study_id: str = ""
    study_instance_uid: str = ""
    accession_number: str = ""
    referring_physician: str = ""
    study_description: str = ""
    body_part: str = ""
    # subject (identifying: never logged)
    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    patient_weight_kg: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def separate_reference(self) -> bool:
        """Whether the parallel-imaging reference lines are a scan of their own (``calibrationMode``
        separate, external or other: another contrast or timing), not lines of the imaging data."""
        return self.calibration_mode.strip().lower() in ("separate", "external", "other")

    def padding(self, num_cols: int) -> tuple[int, int]:
        """fastMRI's acquired column range ``[left, right)`` along W (= encoding step 1).

        Columns outside it were zero-filled, never measured (partial Fourier / asymmetric matrices).
        Without encoding limits every column counts as acquired.
        """
        if self.e1_limits is None:
            return 0, num_cols
        # line e1 sits at column e1 + offset (the limits' centre at the matrix centre); the lines
        # acquired are minimum … maximum
        offset = self.encoded_matrix[1] // 2 - self.e1_limits.center
        left = offset + self.e1_limits.minimum
        right = offset + self.e1_limits.maximum + 1
        return max(left, 0), min(right, num_cols)

    @property
    def crop_size(self) -> tuple[int, int]:
        """The reconstruction size ``(h, w)`` = (reconSpace x, reconSpace y), fastMRI's crop."""
        return self.recon_matrix[0], self.recon_matrix[1]


def _text(root: ET.Element, path: str) -> str:
    node = root.find(path, _NS)
    return node.text.strip() if node is not None and node.text else ""


def _float(root: ET.Element, path: str) -> float | None:
    text = _text(root, path)
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is None or math.isfinite(value) else None  # nan, inf: not stated


def _int(root: ET.Element, path: str, default: int | None = None) -> int | None:
    value = _float(root, path)
    return int(value) if value is not None else default


def _triple(root: ET.Element, path: str, cast: type) -> tuple:
    return tuple(cast(_float(root, f"{path}/m:{axis}") or 0) for axis in "xyz")


def _limits(root: ET.Element, name: str) -> EncodingLimits | None:
    base = f"m:encoding/m:encodingLimits/m:{name}"
    if root.find(base, _NS) is None:
        return None
    return EncodingLimits(
        minimum=_int(root, f"{base}/m:minimum", 0) or 0,
        maximum=_int(root, f"{base}/m:maximum", 0) or 0,
        center=_int(root, f"{base}/m:center", 0) or 0,
    )


def _depth(root: ET.Element) -> int:
    """The number of levels of an element tree (1 for a lone root), counted without recursion:
    a hostile header nests thousands deep, and Python's serialiser recurses per level."""
    deepest, level = 0, [(root, 1)]
    while level:
        element, depth = level.pop()
        deepest = max(deepest, depth)
        level.extend((child, depth + 1) for child in element)
    return deepest


def parse_ismrmrd_header(xml: str | bytes, *, source: str | Path | None = None) -> AcquisitionHeader:
    """Parse an ISMRMRD header.

    Args:
        xml: The XML document (``ismrmrd_header`` of a fastMRI file, ``dataset/xml`` of a raw file).
        source: The file it came from, for error messages.

    Returns:
        An :class:`AcquisitionHeader`.

    Raises:
        DataError: if the XML is malformed or has no encoding section with matrix sizes.
    """
    if isinstance(xml, bytes):
        xml = xml.decode("utf-8", errors="replace")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise DataError(f"unreadable ISMRMRD header: {error}", path=source) from error
    if root.tag != f"{{{NAMESPACE}}}ismrmrdHeader":
        raise DataError(f"the header is not an ISMRMRD header (root element {root.tag!r})", path=source)
    depth = _depth(root)
    if depth > MAX_HEADER_DEPTH:
        raise DataError(
            f"the ISMRMRD header nests its elements {depth} levels deep; the ISMRMRD schema needs "
            f"fewer than 10 and mrirecon reads up to {MAX_HEADER_DEPTH}",
            path=source,
            hint="write the header again from the scanner's raw data (siemens_to_ismrmrd, or h5py)",
        )
    enc = "m:encoding/m:encodedSpace"
    rec = "m:encoding/m:reconSpace"
    if root.find(f"{enc}/m:matrixSize", _NS) is None or root.find(f"{rec}/m:matrixSize", _NS) is None:
        raise DataError("the ISMRMRD header has no encodedSpace/reconSpace matrix sizes", path=source)
    subject = "m:subjectInformation"
    study = "m:studyInformation"
    system = "m:acquisitionSystemInformation"
    seq = "m:sequenceParameters"
    meas = "m:measurementInformation"
    accel = "m:encoding/m:parallelImaging/m:accelerationFactor"
    encoded_matrix = _triple(root, f"{enc}/m:matrixSize", int)
    recon_matrix = _triple(root, f"{rec}/m:matrixSize", int)
    for name, matrix in (("encodedSpace", encoded_matrix), ("reconSpace", recon_matrix)):
        if max(matrix) > MAX_MATRIX:
            raise DataError(
                f"the ISMRMRD header's {name}/matrixSize is {matrix}; mrirecon reads matrices up to "
                f"{MAX_MATRIX} per axis",
                path=source,
                hint="fix the header (x, y, z of the matrix), or convert the raw data again",
            )
        if min(matrix) < 1:
            raise DataError(
                f"the ISMRMRD header's {name}/matrixSize is {matrix}; every size must be at least 1",
                path=source,
                hint="fix the header (x, y, z of the matrix), or convert the raw data again",
            )
    return AcquisitionHeader(
        encoded_matrix=encoded_matrix,
        recon_matrix=recon_matrix,
        encoded_fov_mm=_triple(root, f"{enc}/m:fieldOfView_mm", float),
        recon_fov_mm=_triple(root, f"{rec}/m:fieldOfView_mm", float),
        e1_limits=_limits(root, "kspace_encoding_step_1"),
        e2_limits=_limits(root, "kspace_encoding_step_2"),
        trajectory=_text(root, "m:encoding/m:trajectory") or "cartesian",
        acceleration_e1=_int(root, f"{accel}/m:kspace_encoding_step_1", 1) or 1,
        acceleration_e2=_int(root, f"{accel}/m:kspace_encoding_step_2", 1) or 1,
        calibration_mode=_text(root, "m:encoding/m:parallelImaging/m:calibrationMode"),
        tr_ms=_float(root, f"{seq}/m:TR"),
        te_ms=_float(root, f"{seq}/m:TE"),
        ti_ms=_float(root, f"{seq}/m:TI"),
        flip_angle_deg=_float(root, f"{seq}/m:flipAngle_deg"),
        sequence_type=_text(root, f"{seq}/m:sequence_type"),
        echo_spacing_ms=_float(root, f"{seq}/m:echo_spacing"),
        vendor=_text(root, f"{system}/m:systemVendor"),
        model=_text(root, f"{system}/m:systemModel"),
        field_strength_t=_float(root, f"{system}/m:systemFieldStrength_T"),
        institution=_text(root, f"{system}/m:institutionName"),
        station=_text(root, f"{system}/m:stationName"),
        device_serial=_text(root, f"{system}/m:deviceSerialNumber"),
        receiver_channels=_int(root, f"{system}/m:receiverChannels"),
        resonance_frequency_hz=_float(root, "m:experimentalConditions/m:H1resonanceFrequency_Hz"),
        measurement_id=_text(root, f"{meas}/m:measurementID"),
        protocol_name=_text(root, f"{meas}/m:protocolName"),
        patient_position=_text(root, f"{meas}/m:patientPosition"),
        frame_of_reference_uid=_text(root, f"{meas}/m:frameOfReferenceUID"),
        study_date=_text(root, f"{study}/m:studyDate"),
        study_time=_text(root, f"{study}/m:studyTime"),
        study_id=_text(root, f"{study}/m:studyID"),
        study_instance_uid=_text(root, f"{study}/m:studyInstanceUID"),
        accession_number=_text(root, f"{study}/m:accessionNumber"),
        referring_physician=_text(root, f"{study}/m:referringPhysicianName"),
        study_description=_text(root, f"{study}/m:studyDescription"),
        body_part=_text(root, f"{study}/m:bodyPartExamined"),
        patient_name=_text(root, f"{subject}/m:patientName"),
        patient_id=_text(root, f"{subject}/m:patientID"),
        patient_birth_date=_text(root, f"{subject}/m:patientBirthdate"),
        patient_sex=_text(root, f"{subject}/m:patientGender"),
        patient_weight_kg=_float(root, f"{subject}/m:patientWeight_kg"),
    )


def _element(parent: ET.Element, tag: str, text: object | None = None) -> ET.Element:
    node = ET.SubElement(parent, f"{{{NAMESPACE}}}{tag}")
    if text is not None:
        node.text = str(text)
    return node


def _xyz(parent: ET.Element, tag: str, values: tuple[float, ...], fmt: str) -> None:
    node = _element(parent, tag)
    for axis, value in zip("xyz", values):
        _element(node, axis, format(value, fmt))


def build_ismrmrd_header(
    *,
    encoded_matrix: tuple[int, int, int],
    recon_matrix: tuple[int, int, int] | None = None,
    encoded_fov_mm: tuple[float, float, float] = (220.0, 220.0, 5.0),
    recon_fov_mm: tuple[float, float, float] | None = None,
    e1_limits: EncodingLimits | None = None,
    field_strength_t: float = 3.0,
    vendor: str = "mrirecon",
    model: str = "simulator",
    protocol_name: str = "",
    patient_id: str = "",
    patient_name: str = "",
    study_date: str = "",
    tr_ms: float | None = None,
    te_ms: float | None = None,
    sequence_type: str = "",
    receiver_channels: int | None = None,
) -> str:
    """A minimal, schema-ordered ISMRMRD header for files mrirecon writes (simulated, converted)."""
    recon_matrix = recon_matrix or encoded_matrix
    recon_fov_mm = recon_fov_mm or encoded_fov_mm
    if e1_limits is None:
        n = encoded_matrix[1]
        e1_limits = EncodingLimits(0, n - 1, n // 2)
    ET.register_namespace("", NAMESPACE)
    root = ET.Element(f"{{{NAMESPACE}}}ismrmrdHeader")
    if patient_id or patient_name:
        subject = _element(root, "subjectInformation")
        if patient_name:
            _element(subject, "patientName", patient_name)
        if patient_id:
            _element(subject, "patientID", patient_id)
    if study_date:
        _element(_element(root, "studyInformation"), "studyDate", study_date)
    if protocol_name:
        _element(_element(root, "measurementInformation"), "protocolName", protocol_name)
    system = _element(root, "acquisitionSystemInformation")
    _element(system, "systemVendor", vendor)
    _element(system, "systemModel", model)
    _element(system, "systemFieldStrength_T", f"{field_strength_t:.6f}")
    if receiver_channels is not None:
        _element(system, "receiverChannels", receiver_channels)
    _element(
        _element(root, "experimentalConditions"),
        "H1resonanceFrequency_Hz",
        int(42.577478e6 * field_strength_t),
    )
    encoding = _element(root, "encoding")
    encoded = _element(encoding, "encodedSpace")
    _xyz(encoded, "matrixSize", encoded_matrix, "d")
    _xyz(encoded, "fieldOfView_mm", encoded_fov_mm, ".6f")
    recon = _element(encoding, "reconSpace")
    _xyz(recon, "matrixSize", recon_matrix, "d")
    _xyz(recon, "fieldOfView_mm", recon_fov_mm, ".6f")
    limits = _element(encoding, "encodingLimits")
    e1 = _element(limits, "kspace_encoding_step_1")
    for name in ("minimum", "maximum", "center"):
        _element(e1, name, getattr(e1_limits, name))
    _element(encoding, "trajectory", "cartesian")
    if tr_ms is not None or te_ms is not None or sequence_type:
        seq = _element(root, "sequenceParameters")
        if tr_ms is not None:
            _element(seq, "TR", f"{tr_ms:.6f}")
        if te_ms is not None:
            _element(seq, "TE", f"{te_ms:.6f}")
        if sequence_type:
            _element(seq, "sequence_type", sequence_type)
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode")


def _set_xyz(parent: ET.Element, tag: str, values: tuple[float, ...], fmt: str) -> None:
    node = parent.find(f"m:{tag}", _NS)
    if node is None:
        node = _element(parent, tag)
    for axis, value in zip("xyz", values):
        child = node.find(f"m:{axis}", _NS)
        if child is None:
            child = _element(node, axis)
        child.text = format(value, fmt)


def _set_limits(limits: ET.Element, name: str, value: EncodingLimits) -> None:
    node = limits.find(f"m:{name}", _NS)
    if node is None:
        node = _element(limits, name)
    for key in ("minimum", "maximum", "center"):
        child = node.find(f"m:{key}", _NS)
        if child is None:
            child = _element(node, key)
        child.text = str(getattr(value, key))


def rewrite_encoding(
    xml: str | bytes,
    *,
    encoded_matrix: tuple[int, int, int],
    encoded_fov_mm: tuple[float, float, float],
    recon_matrix: tuple[int, int, int],
    recon_fov_mm: tuple[float, float, float],
    e1_limits: EncodingLimits | None = None,
    e2_limits: EncodingLimits | None = None,
    source: str | Path | None = None,
) -> str:
    """A copy of an ISMRMRD header whose first encoding describes the k-space as mrirecon stores it.

    Everything else (identifiers, system, sequence, user parameters) is kept. Converters use it
    after removing readout oversampling (encoded x shrinks) and after splitting 3-D data into 2-D
    slices (the phase encodes become x and y).

    Raises:
        DataError: if the XML is unreadable or has no encoding section.
    """
    if isinstance(xml, bytes):
        xml = xml.decode("utf-8", errors="replace")
    ET.register_namespace("", NAMESPACE)
    ET.register_namespace("xsi", "http://www.w3.org/2001/XMLSchema-instance")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise DataError(f"unreadable ISMRMRD header: {error}", path=source) from error
    encoding = root.find("m:encoding", _NS)
    if encoding is None:
        raise DataError("the ISMRMRD header has no encoding section", path=source)
    for space, matrix, fov in (
        ("encodedSpace", encoded_matrix, encoded_fov_mm),
        ("reconSpace", recon_matrix, recon_fov_mm),
    ):
        node = encoding.find(f"m:{space}", _NS)
        if node is None:
            node = _element(encoding, space)
        _set_xyz(node, "matrixSize", matrix, "d")
        _set_xyz(node, "fieldOfView_mm", fov, ".6f")
    limits = encoding.find("m:encodingLimits", _NS)
    if limits is None and (e1_limits or e2_limits):
        limits = _element(encoding, "encodingLimits")
    if limits is not None and e1_limits is not None:
        _set_limits(limits, "kspace_encoding_step_1", e1_limits)
    if limits is not None and e2_limits is not None:
        _set_limits(limits, "kspace_encoding_step_2", e2_limits)
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode")
