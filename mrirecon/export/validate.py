"""Check an exported DICOM series: dciodvfy (dicom3tools) when installed, and pydicom always.

dciodvfy checks every file against the MR Image IOD of the DICOM standard; its exit status does not
reflect errors, so its output is parsed (lines starting with ``Error``). The pydicom checks hold for
any series mrirecon writes: one SOP class (MR Image Storage), one series and study, distinct SOP
instance UIDs and instance numbers, the type 1 attributes present, and pixel data that decodes to
``Rows × Columns``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.uid import MRImageStorage

from mrirecon.errors import DataError

__all__ = ["DciodvfyVerdict", "SeriesCheck", "run_dciodvfy", "validate_series"]

#: Attributes every image of the series must carry (type 1 in the MR Image IOD's modules).
REQUIRED = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "ImageType",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "FrameOfReferenceUID",
    "ScanningSequence",
    "SequenceVariant",
)


@dataclass(frozen=True)
class SeriesCheck:
    """The verdict on one series folder.

    Attributes:
        folder: The series folder.
        files: DICOM files checked.
        tools: What checked them (``pydicom``, and ``dciodvfy`` when installed).
        errors: One line per problem (file name first); empty when the series is valid.
        warnings: dciodvfy's warnings (informative; they do not make the series invalid).
    """

    folder: Path
    files: int
    tools: tuple[str, ...]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """Whether no check failed."""
        return not self.errors


@dataclass(frozen=True)
class DciodvfyVerdict:
    """What dciodvfy said about one file: its ``Error``/``Warning`` lines and its whole output."""

    errors: list[str]
    warnings: list[str]
    output: str


def run_dciodvfy(path: Path, executable: str, *, timeout: float = 120) -> DciodvfyVerdict:
    """Run dciodvfy on one file (its exit status does not reflect errors, so the output is parsed)."""
    out = subprocess.run([executable, str(path)], capture_output=True, text=True, timeout=timeout)
    text = out.stdout + out.stderr
    lines = [line.strip() for line in text.splitlines()]
    return DciodvfyVerdict(
        errors=[line for line in lines if line.startswith("Error")],
        warnings=[line for line in lines if line.startswith("Warning")],
        output=text,
    )


def validate_series(folder: str | Path, *, use_dciodvfy: bool = True) -> SeriesCheck:
    """Validate the DICOM series in ``folder`` (its ``*.dcm`` files).

    Args:
        folder: A series folder as ``mrirecon export-dicom`` or ``mrirecon batch --dicom`` writes it.
        use_dciodvfy: Also run dciodvfy on every file when it is on ``PATH``.

    Returns:
        A :class:`SeriesCheck`.

    Raises:
        DataError: the folder holds no ``.dcm`` file.
    """
    folder = Path(folder)
    paths = sorted(folder.glob("*.dcm"))
    if not paths:
        raise DataError(
            "no DICOM files (*.dcm) here", path=folder, hint="export a series into this folder first"
        )
    errors: list[str] = []
    warnings: list[str] = []
    series: set[str] = set()
    studies: set[str] = set()
    sop_uids: set[str] = set()
    numbers: set[int] = set()
    for path in paths:
        try:
            ds = pydicom.dcmread(path)
        except Exception as error:  # noqa: BLE001 (a file under validation: pydicom raises many types)
            errors.append(f"{path.name}: not readable as DICOM ({error})")
            continue
        missing = [name for name in REQUIRED if ds.get(name) in (None, "")]
        if missing:
            errors.append(f"{path.name}: missing {', '.join(missing)}")
        if ds.get("SOPClassUID") != MRImageStorage:
            errors.append(f"{path.name}: SOP class {ds.get('SOPClassUID')} is not MR Image Storage")
        series.add(str(ds.get("SeriesInstanceUID")))
        studies.add(str(ds.get("StudyInstanceUID")))
        uid = str(ds.get("SOPInstanceUID"))
        if uid in sop_uids:
            errors.append(f"{path.name}: SOP instance UID {uid} repeats")
        sop_uids.add(uid)
        number = int(ds.get("InstanceNumber", 0) or 0)
        if number in numbers:
            errors.append(f"{path.name}: instance number {number} repeats")
        numbers.add(number)
        try:
            shape = ds.pixel_array.shape
        except Exception as error:  # noqa: BLE001 (a file under validation: decoders raise many types)
            errors.append(f"{path.name}: pixel data does not decode ({error})")
        else:
            if shape != (ds.Rows, ds.Columns):
                errors.append(
                    f"{path.name}: pixel data {shape} is not Rows × Columns ({ds.Rows}, {ds.Columns})"
                )
    if len(series) > 1:
        errors.append(f"{len(series)} series instance UIDs in one series folder")
    if len(studies) > 1:
        errors.append(f"{len(studies)} study instance UIDs in one series folder")
    tools = ["pydicom"]
    executable = shutil.which("dciodvfy") if use_dciodvfy else None
    if executable is not None:
        tools.append("dciodvfy")
        for path in paths:
            verdict = run_dciodvfy(path, executable)
            errors += [f"{path.name}: {line}" for line in verdict.errors]
            warnings += [f"{path.name}: {line}" for line in verdict.warnings]
    return SeriesCheck(folder, len(paths), tuple(tools), errors, warnings)
