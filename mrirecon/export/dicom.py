"""DICOM export: one classic MR Image Storage file per slice, one series per volume.

What is written and why is in docs/dicom.md. In short:

- SOP class MR Image Storage (1.2.840.10008.5.1.4.1.1.4), the one every PACS and viewer reads;
  ImageType ``DERIVED\\SECONDARY\\OTHER`` (the MR IOD requires a third value);
- 16-bit unsigned pixels with one linear scale per series (:mod:`mrirecon.export.pixels`), the float
  scale in RealWorldValueMappingSequence (Rescale Slope/Intercept are not in the classic MR IOD);
  the window from the volume's 0.5–99.5 percentiles, the same on every slice;
- geometry from the ISMRMRD header and the ``geometry/`` group (:mod:`mrirecon.export.geometry`),
  or a documented synthetic default, then marked in the series description;
- identifiers from the header or the command line, or removed (:mod:`mrirecon.export.identity`);
- provenance (model, checkpoint sha256, mrirecon version) in SeriesDescription and
  DerivationDescription (the texts: :mod:`mrirecon.export.dicom_text`); deterministic UIDs, so
  exporting the same reconstruction again writes the same UIDs (idempotent batch runs);
- every decimal string formatted to at most 16 characters; every file written atomically.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_ROOT_UID, MRImageStorage

from mrirecon._version import __version__
from mrirecon.atomic import (
    atomic_directory,
    atomic_file,
    export_error,
    fsync_file,
    prepare_output_folder,
)
from mrirecon.errors import ConfigError, DataError, ExportError, Notice, path_text
from mrirecon.export.dicom_text import (
    RESEARCH_USE,
    acquisition_label,
    character_set,
    code_item,
    derivation_description,
    fit_text_lengths,
    mr_attributes,
    precision_text,
    series_description,
    text_attributes,
)
from mrirecon.export.geometry import ImagePlanes, image_planes
from mrirecon.export.identity import (
    Identity,
    IdentityOverrides,
    check_uid_root,
    clean_text,
    derive_uid,
    is_valid_uid,
    resolve_identity,
)
from mrirecon.export.pixels import ds, quantise, squeezed_window, window_from_percentiles
from mrirecon.export.recon_h5 import ReconVolume, read_reconstruction
from mrirecon.export.series_record import write_record

__all__ = ["DicomOptions", "DicomSeries", "build_series", "export_dicom", "export_volume_dicom"]

#: File names of the slices: ``IM_0001.dcm`` … (instance numbers start at 1).
FILE_PATTERN = "IM_{:04d}.dcm"
FILE_GLOB = "IM_*.dcm"
DEFAULT_SERIES_NUMBER = 1001


@dataclass(frozen=True)
class DicomOptions:
    """How to export a series.

    Attributes:
        deidentify: Replace or remove every identifying attribute (docs/dicom.md lists them).
        salt: Secret mixed into pseudonyms and UIDs when de-identifying.
        identity: Identifiers given on the command line.
        series_number: SeriesNumber (default 1001: above scanner series numbers).
        series_description: Replaces the generated SeriesDescription (the provenance stays in
            DerivationDescription; "synthetic geometry" is appended when it applies).
        uid_root: Organisation root of the generated UIDs.
        bits_stored: Significant bits of the stored pixels (8–16).
        window_percentiles: Volume percentiles that bound the default window.
        overwrite: Replace a different series already in the output folder.
        allow_unsalted: De-identify without a salt (pseudonyms and UIDs anyone can recompute from
            the patient ID); refused unless set.
    """

    deidentify: bool = False
    salt: str = ""
    identity: IdentityOverrides = field(default_factory=IdentityOverrides)
    series_number: int = DEFAULT_SERIES_NUMBER
    series_description: str | None = None
    uid_root: str = PYDICOM_ROOT_UID
    bits_stored: int = 16
    window_percentiles: tuple[float, float] = (0.5, 99.5)
    overwrite: bool = False
    allow_unsalted: bool = False

    def __post_init__(self) -> None:
        if self.deidentify and not self.salt and not self.allow_unsalted:
            raise ConfigError(
                "--deidentify without a salt gives pseudonyms that anyone can recompute from the patient ID",
                hint="set a secret in MRIRECON_DEID_SALT (or --deid-salt), or pass --allow-unsalted",
            )


@dataclass(frozen=True)
class DicomSeries:
    """What :func:`export_dicom` wrote (no identifiers, so it may be logged)."""

    folder: Path
    files: tuple[Path, ...]
    series_instance_uid: str
    study_instance_uid: str
    synthetic_geometry: bool
    slope: float
    intercept: float


# reconstruction settings recorded in extra_attrs that change the pixels: part of the series' identity
_RECON_SETTINGS = ("model_config", "coil_maps", "center_fraction", "frame")


def _acquisition_digest(volume: ReconVolume, planes: ImagePlanes) -> str:
    """What tells two acquisitions of one file name apart (another folder, another scan): the
    header's text, the slice planes as written, the volume's size, and its content: the zero-filled
    image (the measured data, whatever the model; the reconstruction when the file has none), as
    the reconstruction's HDF5 stores it, so that any export of that file derives the same UIDs."""
    digest = hashlib.sha256((volume.ismrmrd_header or "").encode("utf-8"))
    digest.update(repr(volume.shape).encode())
    content = volume.zero_filled if volume.zero_filled is not None else volume.reconstruction
    digest.update(np.ascontiguousarray(content, dtype=np.float32).tobytes())
    digest.update(np.round(planes.position, 6).astype(np.float64).tobytes())
    digest.update(np.round(planes.orientation, 10).astype(np.float64).tobytes())
    return digest.hexdigest()


def _series_uids(
    volume: ReconVolume, identity: Identity, planes: ImagePlanes, root: str, bits_stored: int
) -> tuple[str, str]:
    series_uid = derive_uid(
        root,
        "series",
        _acquisition_digest(volume, planes),
        f"bits={bits_stored}",  # other pixels, another series (an export option that changes them)
        identity.study_instance_uid,
        identity.uid_key,
        volume.model,
        volume.checkpoint_sha256,
        volume.mrirecon_version,
        volume.input_file,
        volume.undersampling,
        volume.mask_type,
        repr(volume.acceleration),
        # what else makes another reconstruction of the same input (absent: as before)
        *(f"{key}={volume.extra_attrs[key]!r}" for key in _RECON_SETTINGS if key in volume.extra_attrs),
        # --precision bf16-mixed gives other pixels; float32's series keep the UIDs they had
        *([f"precision={precision}"] if (precision := precision_text(volume)) != "32" else []),
    )
    if planes.synthetic:
        frame_uid = derive_uid(root, "synthetic frame of reference", series_uid)
    else:  # the header's (or derived from it: shared by the series of a study), see resolve_identity
        frame_uid = identity.frame_of_reference_uid
    return series_uid, frame_uid


def _flag(value: Any) -> bool:
    """An HDF5 attribute that is a true boolean (or a non-zero integer); anything else is False."""
    return isinstance(value, bool | np.bool_ | int | np.integer) and bool(value)


def _uid_attr(value: Any) -> str:
    """An HDF5 attribute that is a valid UID (digits and dots, at most 64 characters), else ""."""
    if isinstance(value, bytes | np.bytes_):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str) and is_valid_uid(value):
        return value
    return ""


def _kspace_matrix(volume: ReconVolume) -> tuple[int, int] | None:
    """``(H, W)`` of the k-space grid the reconstruction was cropped from (attribute
    ``kspace_matrix``, written by infer/batch), or None when the file does not record it."""
    value = np.asarray(volume.extra_attrs.get("kspace_matrix", []))
    if value.shape != (2,) or value.dtype.kind not in "iu" or not bool((value > 0).all()):
        return None
    return int(value[0]), int(value[1])


def build_series(
    volume: ReconVolume, options: DicomOptions | None = None, *, source: Path | None = None
) -> list[Dataset]:
    """One MR Image Storage dataset per slice of ``volume`` (file meta is added when saving).

    Args:
        volume: The reconstruction and its header, geometry and provenance.
        options: Export options.
        source: The file ``volume`` came from, for error messages.

    Raises:
        DataError: non-finite pixels, a malformed header, or geometry that does not fit the volume.
        ConfigError: a bad option (UID root, laterality).
    """
    return _build(volume, options or DicomOptions(), source)[0]


def _build(
    volume: ReconVolume, options: DicomOptions, source: Path | None
) -> tuple[list[Dataset], ImagePlanes]:
    root = check_uid_root(options.uid_root)
    if volume.shape[0] == 0 or volume.reconstruction.size == 0:
        raise DataError(f"the reconstruction is empty (shape {volume.shape})", path=source)
    if not np.all(np.isfinite(volume.reconstruction)):
        raise DataError(
            "the reconstruction holds NaN or infinite values",
            path=source,
            hint="reconstruct the volume again",
        )
    header = volume.header(source)
    planes = image_planes(
        volume.shape, header, volume.geometry, source=source, kspace_matrix=_kspace_matrix(volume)
    )
    extra = volume.extra_attrs
    identity = resolve_identity(
        header,
        recon_patient_id=volume.patient_id,
        input_file=volume.input_file,
        acquisition=volume.acquisition,
        overrides=options.identity,
        deidentify=options.deidentify,
        salt=options.salt,
        uid_root=root,
        # a de-identified run's reconstruction: pseudonymous ID, its de-identified UIDs recorded
        pseudonymous=_flag(extra.get("deidentified")),
        recorded_study_uid=_uid_attr(extra.get("study_instance_uid")),
        recorded_frame_uid=_uid_attr(extra.get("frame_of_reference_uid")),
    )
    series_uid, frame_uid = _series_uids(volume, identity, planes, root, options.bits_stored)
    q = quantise(volume.reconstruction, options.bits_stored)
    centre, width = window_from_percentiles(q.stored, *options.window_percentiles)
    if squeezed_window(q, width):
        image = volume.reconstruction
        low, high = options.window_percentiles
        warnings.warn(
            Notice(
                f"{path_text(source) + ': ' if source else ''}the reconstruction's {low:g}-{high:g} % "
                f"percentiles span {width:.0f} of {q.largest + 1} stored grey levels: a few pixels far "
                f"from the rest (values {float(image.min()):.4g} to {float(image.max()):.4g}, "
                f"{high:g}th percentile {float(np.percentile(image, high)):.4g}) took the range, and "
                "the series shows the rest almost flat (the values are kept, to one stored step)"
            ),
            stacklevel=3,
        )
    description = series_description(
        volume, planes, options.series_description, acquisition_label(volume, identity)
    )
    derivation = derivation_description(volume, planes, q)
    rwv = Dataset()
    rwv.RealWorldValueFirstValueMapped = 0
    rwv.RealWorldValueLastValueMapped = q.largest
    rwv.RealWorldValueSlope = q.slope
    rwv.RealWorldValueIntercept = q.intercept
    rwv.LUTExplanation = "reconstructed magnitude, input intensity scale"
    rwv.LUTLabel = "MAGNITUDE"
    rwv.MeasurementUnitsCodeSequence = Sequence([code_item("[arb'U]", "UCUM", "arbitrary unit")])
    content_date, content_time = identity.study_date, identity.study_time
    numbers = _instance_numbers(planes)
    datasets = []
    for index in range(volume.shape[0]):
        d = Dataset()
        d.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
        d.SOPClassUID = MRImageStorage
        d.SOPInstanceUID = derive_uid(root, "instance", series_uid, str(index))
        text_attributes(d, identity)
        d.Modality = "MR"
        d.SeriesInstanceUID = series_uid
        d.SeriesNumber = int(options.series_number)
        d.SeriesDescription = description
        d.Manufacturer = clean_text(header.vendor, 64) if header else ""
        if header and header.model:
            d.ManufacturerModelName = clean_text(header.model, 64)
        d.SoftwareVersions = f"mrirecon {__version__}"
        d.FrameOfReferenceUID = frame_uid
        d.PositionReferenceIndicator = ""
        d.InstanceNumber = numbers[index]
        if content_date:
            d.ContentDate = content_date
            d.ContentTime = content_time
        d.DerivationDescription = derivation
        d.ImageComments = RESEARCH_USE
        d.BurnedInAnnotation = "NO"
        d.PixelSpacing = [ds(planes.pixel_spacing[0]), ds(planes.pixel_spacing[1])]
        d.ImageOrientationPatient = [ds(v) for v in np.round(planes.orientation[index], 10)]
        d.ImagePositionPatient = [ds(v) for v in np.round(planes.position[index], 6)]
        d.SliceThickness = ds(planes.slice_thickness)
        d.SpacingBetweenSlices = ds(round(planes.spacing_between_slices, 4))  # float32 positions
        d.SliceLocation = ds(round(float(planes.slice_location[index]), 6))
        mr_attributes(d, header, three_d=_flag(extra.get("mrirecon_decoupled_3d")))
        d.set_pixel_data(q.stored[index], "MONOCHROME2", q.bits_stored, generate_instance_uid=False)
        d.WindowCenter = ds(round(centre, 2))
        d.WindowWidth = ds(round(width, 2))
        d.WindowCenterWidthExplanation = (
            f"volume {options.window_percentiles[0]:g}-{options.window_percentiles[1]:g} percentile"
        )
        d.RealWorldValueMappingSequence = Sequence([rwv])
        datasets.append(d)
    charset = character_set(datasets[0])  # every slice has the same texts
    for d in datasets:
        fit_text_lengths(d, charset)
        d.SpecificCharacterSet = charset
    return datasets, planes


def _instance_numbers(planes: ImagePlanes) -> list[int]:
    """InstanceNumber of each slice: 1…S in the stored order when that order runs through space
    (one way or the other) or the planes have several orientations (a 3-plane localizer: no one
    normal orders them), else in the order of the planes along the normal, so that a viewer
    stacking by InstanceNumber shows the slices as they lie (interleaved slice counters)."""
    location = np.asarray(planes.slice_location, dtype=np.float64)
    steps = np.diff(location)
    if not planes.parallel or np.all(steps >= 0) or np.all(steps <= 0):
        return list(range(1, len(location) + 1))
    order = np.argsort(location if location[-1] >= location[0] else -location, kind="stable")
    numbers = np.empty(len(location), dtype=np.int64)
    numbers[order] = np.arange(1, len(location) + 1)
    return [int(n) for n in numbers]


def _save(dataset: Dataset, path: Path) -> None:
    with open(path, "wb") as handle:
        dataset.save_as(handle, enforce_file_format=True)


def _existing_series(folder: Path) -> dict[Path, str | None]:
    """The SeriesInstanceUID of every DICOM file in ``folder`` (None: unreadable, e.g. damaged)."""
    found: dict[Path, str | None] = {}
    for path in sorted(folder.glob(FILE_GLOB)):
        try:
            uid = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"]).get(
                "SeriesInstanceUID", ""
            )
        except Exception:  # noqa: BLE001 (any file left in the folder: judged by its name below)
            found[path] = None
            continue
        found[path] = str(uid)
    return found


def write_series(datasets: list[Dataset], folder: Path, *, overwrite: bool = False) -> tuple[Path, ...]:
    """Write ``datasets`` as ``FOLDER/IM_0001.dcm`` … , atomically.

    A folder that does not exist (or is empty) is filled as ``.NAME.partial`` and renamed when
    every file is written, so it appears complete or not at all; then each file's size and sha256
    are recorded beside it (:mod:`mrirecon.export.series_record`), which is what "finished" means
    to a resumed batch run. In a folder that already holds
    files, each file is replaced atomically; files of a *different* series there are an error
    unless ``overwrite`` (then they are removed once the new series is complete).

    Raises:
        ExportError: on I/O failure (disk full, no permission) or a different series in the folder.
    """
    folder = Path(folder)
    if folder.is_symlink():  # a link planted where the series goes: replaced, never written through
        try:  # (into its target, and --overwrite deleted the other series' files there)
            folder.unlink()
        except OSError as error:
            raise export_error(error, folder, "DICOM series") from error
    names = [FILE_PATTERN.format(d.InstanceNumber) for d in datasets]
    series_uid = str(datasets[0].SeriesInstanceUID) if datasets else ""
    if folder.is_dir() and any(folder.iterdir()):
        existing = _existing_series(folder)
        stale = [path for path in existing if path.name not in names]  # the others are replaced
        # an unreadable file under one of this series' names is a damaged file of it: replaced
        foreign = [
            path
            for path, uid in existing.items()
            if uid != series_uid and not (uid is None and path.name in names)
        ]
        if foreign and not overwrite:
            raise ExportError(
                f"the folder already holds {len(foreign)} DICOM file(s) of another series",
                path=folder,
                hint="choose an empty folder per volume, or pass --overwrite to replace them",
            )
        for dataset, name in zip(datasets, names):
            with atomic_file(folder / name, what="DICOM file") as temporary:
                _save(dataset, temporary)
        for path in stale:
            try:
                path.unlink()
            except OSError as error:
                raise export_error(error, path, "DICOM file") from error
        written = tuple(folder / name for name in names)
        write_record(folder, written)
        return written
    if folder.is_dir():
        prepare_output_folder(folder, "DICOM series")
        folder.rmdir()  # empty: replaced by the complete partial folder below
    with atomic_directory(folder, what="DICOM series") as temporary:
        for dataset, name in zip(datasets, names):
            _save(dataset, temporary / name)
            fsync_file(temporary / name)
    written = tuple(folder / name for name in names)
    write_record(folder, written)
    return written


def export_volume_dicom(
    volume: ReconVolume,
    output_dir: str | os.PathLike[str],
    options: DicomOptions | None = None,
    *,
    source: Path | None = None,
) -> DicomSeries:
    """Export an in-memory reconstruction as one DICOM series in ``output_dir``.

    Returns:
        :class:`DicomSeries` (paths, UIDs, scale; no identifiers).

    Raises:
        DataError, ConfigError: see :func:`build_series`; ExportError: see :func:`write_series`.
    """
    options = options or DicomOptions()
    datasets, planes = _build(volume, options, source)
    folder = Path(output_dir)
    files = write_series(datasets, folder, overwrite=options.overwrite)
    rwv = datasets[0].RealWorldValueMappingSequence[0]
    return DicomSeries(
        folder=folder,
        files=files,
        series_instance_uid=str(datasets[0].SeriesInstanceUID),
        study_instance_uid=str(datasets[0].StudyInstanceUID),
        synthetic_geometry=planes.synthetic,
        slope=float(rwv.RealWorldValueSlope),
        intercept=float(rwv.RealWorldValueIntercept),
    )


def export_dicom(
    recon_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    options: DicomOptions | None = None,
) -> DicomSeries:
    """Read a reconstruction HDF5 (docs/interfaces.md §5) and export it as one DICOM series.

    Args:
        recon_path: The reconstruction file.
        output_dir: The series folder (one per volume); created if needed.
        options: Export options (identifiers, de-identification, series number, ...).
    """
    path = Path(recon_path)
    volume = read_reconstruction(path)
    return export_volume_dicom(volume, output_dir, options, source=path)
