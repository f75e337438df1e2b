"""The reconstruction HDF5 (docs/interfaces.md §5): what ``infer``/``batch`` write, ``evaluate`` and
``export-dicom`` read.

Layout (fastMRI's submission format plus what the DICOM export needs)::

    reconstruction   float32 (slices, h, w)   magnitude, input's intensity scale, recon-size crop
    zero_filled      float32 (slices, h, w)   optional: RSS of the zero-filled measured data
    ismrmrd_header   bytes                    copied from the input, if it had one
    geometry/        position, read_dir, ...  copied from the input, if it had one
    attrs            model, checkpoint_sha256, mrirecon_version, input_file, acquisition,
                     patient_id, undersampling, mask_type, acceleration

The file is written as ``.NAME.partial`` beside ``NAME``, fsynced and renamed when complete
(:mod:`mrirecon.atomic`): a file under its final name is always complete.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mrirecon._version import __version__
from mrirecon.atomic import PARTIAL_SUFFIX, atomic_file
from mrirecon.data.hdf5_inputs import check_stored, numeric_dataset, plain_attrs, stored_dataset, stored_group
from mrirecon.data.header import AcquisitionHeader, parse_ismrmrd_header
from mrirecon.errors import DataError, Notice
from mrirecon.export.geometry import SliceGeometry

__all__ = [
    "InputMetadata",
    "ReconVolume",
    "read_input_metadata",
    "read_reconstruction",
    "write_reconstruction",
]

#: The provenance attributes of docs/interfaces.md §5, in the order they are written.
PROVENANCE_ATTRS = (
    "model",
    "checkpoint_sha256",
    "mrirecon_version",
    "input_file",
    "acquisition",
    "patient_id",
    "undersampling",
    "mask_type",
    "acceleration",
)
UNDERSAMPLING_KINDS = ("prospective", "retrospective", "none", "")


@dataclass(eq=False)
class ReconVolume:
    """One reconstructed volume and everything written beside it.

    Attributes:
        reconstruction: ``(S, h, w)`` magnitude in the input's intensity scale (float32 as written;
            a file's float32 or float64 kept as read, complex as its magnitude).
        zero_filled: ``(S, h, w)``, the same way, or None.
        ismrmrd_header: The input's ISMRMRD XML header, or None.
        geometry: The input's slice geometry, or None (fastMRI files).
        model: Name of the reconstructor (registry name, or a classical baseline).
        checkpoint_sha256: sha256 of the checkpoint file ("" for classical baselines).
        mrirecon_version: Version that reconstructed it.
        input_file: The input file's name (not its full path).
        acquisition: fastMRI's ``acquisition`` attribute of the input (e.g. ``CORPD_FBK``).
        patient_id: fastMRI's ``patient_id`` attribute of the input, if present (identifying).
        undersampling: ``prospective``, ``retrospective`` or ``none``.
        mask_type: Mask function name for retrospective undersampling.
        acceleration: Nominal acceleration, if undersampled.
        extra_attrs: More attributes to write (str, int, float or bool values).
    """

    reconstruction: np.ndarray
    zero_filled: np.ndarray | None = None
    ismrmrd_header: str | None = None
    geometry: SliceGeometry | None = None
    model: str = ""
    checkpoint_sha256: str = ""
    mrirecon_version: str = __version__
    input_file: str = ""
    acquisition: str = ""
    patient_id: str = ""
    undersampling: str = ""
    mask_type: str = ""
    acceleration: float | None = None
    extra_attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reconstruction = _magnitude(self.reconstruction)
        if self.reconstruction.ndim != 3:
            raise ValueError(
                f"reconstruction must have shape (slices, h, w), got {self.reconstruction.shape}"
            )
        if self.zero_filled is not None:
            self.zero_filled = _magnitude(self.zero_filled)
            if self.zero_filled.shape != self.reconstruction.shape:
                raise ValueError(
                    f"zero_filled has shape {self.zero_filled.shape}, the reconstruction "
                    f"{self.reconstruction.shape}"
                )
        if self.undersampling not in UNDERSAMPLING_KINDS:
            raise ValueError(
                f"undersampling must be one of {UNDERSAMPLING_KINDS[:-1]}, got {self.undersampling!r}"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(S, h, w)``."""
        s, h, w = self.reconstruction.shape
        return int(s), int(h), int(w)

    def header(self, source: str | Path | None = None) -> AcquisitionHeader | None:
        """The parsed ISMRMRD header, or None without one."""
        if not self.ismrmrd_header:
            return None
        return parse_ismrmrd_header(self.ismrmrd_header, source=source)

    def attrs(self) -> dict[str, Any]:
        """The provenance attributes that are set (empty strings and None left out)."""
        out: dict[str, Any] = {}
        for name in PROVENANCE_ATTRS:
            value = getattr(self, name)
            if value is not None and value != "":
                out[name] = value
        out.update(self.extra_attrs)
        return out


def write_reconstruction(path: str | Path, volume: ReconVolume) -> Path:
    """Write ``volume`` to ``path`` atomically (``.NAME.partial``, fsync, rename).

    Args:
        path: The final file name, e.g. ``out/file1000001.h5``. Its folder is created if needed.
        volume: What to write.

    Returns:
        ``path`` as a :class:`Path`.

    Raises:
        ExportError: if the disk is full, the folder is not writable, or another I/O error occurs;
            the temporary is removed and an existing complete file at ``path`` is left unchanged.
    """
    final = Path(path)
    with atomic_file(final, what="reconstruction HDF5") as temporary:
        _write_contents(temporary, volume)
    return final


def _write_contents(path: Path, volume: ReconVolume) -> None:
    # HDF5 builds the file in memory and Python writes the bytes: a failing disk (ENOSPC, EFBIG)
    # then fails a plain write() with an OSError. Had HDF5 written to the disk itself, a failed
    # flush would leave its file handle half-closed, and the library crashes (SIGSEGV) when it
    # closes it later or at interpreter exit.
    image = io.BytesIO()
    with h5py.File(image, "w") as f:
        f.create_dataset("reconstruction", data=volume.reconstruction.astype(np.float32, copy=False))
        if volume.zero_filled is not None:
            f.create_dataset("zero_filled", data=volume.zero_filled.astype(np.float32, copy=False))
        if volume.ismrmrd_header:
            f.create_dataset("ismrmrd_header", data=np.bytes_(volume.ismrmrd_header.encode("utf-8")))
        if volume.geometry is not None:
            volume.geometry.write(f.create_group("geometry"))
        for name, value in volume.attrs().items():
            f.attrs[name] = value
    with open(path, "wb") as handle:
        handle.write(image.getbuffer())


def _magnitude(array: Any) -> np.ndarray:
    """A magnitude array as stored: float32 or float64 kept (fastMRI's evaluation computes in the
    file's precision), complex as its magnitude, anything else as float32."""
    array = np.asarray(array)
    if np.iscomplexobj(array):
        return np.abs(array)
    if array.dtype in (np.float32, np.float64):
        return array
    return array.astype(np.float32)


def _text(value: Any) -> str:
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.shape == (1,):
        return _text(value[0])
    return str(value)


def _geometry(handle: h5py.File, path: Path) -> SliceGeometry | None:
    """The file's ``geometry`` group read, None without one; a DataError when it is not a group
    of the file's own (a link to another file's)."""
    if isinstance(handle.get("geometry", getlink=True), h5py.HardLink) and not isinstance(
        handle["geometry"], h5py.Group
    ):
        raise DataError("'geometry' must be a group of per-slice vectors, found a dataset", path=path)
    group = stored_group(handle, "geometry", path)
    return None if group is None else SliceGeometry.read(group)


def _open(path: Path, what: str) -> h5py.File:
    if path.name.endswith(PARTIAL_SUFFIX):
        raise DataError(
            f"this is an incomplete {what} (a write that did not finish)",
            path=path,
            hint="use the file without the .partial suffix, or run the reconstruction again",
        )
    if not path.is_file():
        raise DataError(f"no such {what}", path=path, hint="check the path")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"not a readable HDF5 file ({error})", path=path) from error


def _slices(dataset: h5py.Dataset, path: Path) -> np.ndarray:
    """A reconstruction dataset as ``(slices, h, w)``: one axis of size 1 besides those (ATOMMIC's
    ``(S, 1, h, w)``, a trailing channel) is dropped."""
    check_stored(dataset, path)  # a few KB declaring gigabytes of unwritten chunks
    shape = dataset.shape
    if len(shape) == 4 and 1 in shape[1:]:
        axis = 1 if shape[1] == 1 else (3 if shape[3] == 1 else None)
        if axis is not None:
            return np.squeeze(dataset[()], axis=axis)
    if len(shape) != 3:
        raise DataError(
            f"'reconstruction' must have the axes (slices, h, w), got shape {shape}",
            path=path,
            hint="store one magnitude or complex image per slice",
        )
    return np.asarray(dataset[()])


def read_reconstruction(path: str | Path) -> ReconVolume:
    """Read a reconstruction HDF5 written by :func:`write_reconstruction` (or a fastMRI one).

    Raises:
        DataError: if the file is missing, incomplete, not HDF5, or has no 3-D ``reconstruction``.
    """
    path = Path(path)
    with _open(path, "reconstruction HDF5") as f:
        if "reconstruction" not in f:
            present = ", ".join(f"'{key}'" for key in f) or "none"
            raise DataError(
                f"the file has no 'reconstruction' dataset (datasets: {present})",
                path=path,
                hint="the images go in a dataset named 'reconstruction' (slices, h, w), as infer/batch "
                "and fastMRI's save_reconstructions write them",
            )
        reconstruction = _magnitude(_slices(numeric_dataset(f, "reconstruction", path), path))
        zero_filled = None
        if "zero_filled" in f:
            stored = numeric_dataset(f, "zero_filled", path)
            check_stored(stored, path)
            zero_filled = _magnitude(stored[()])
        if zero_filled is not None and zero_filled.shape != reconstruction.shape:
            warnings.warn(  # only the report's pictures use it: the scores do not depend on it
                Notice(
                    f"{path}: 'zero_filled' has shape {zero_filled.shape}, 'reconstruction' "
                    f"{reconstruction.shape}: left out"
                ),
                stacklevel=2,
            )
            zero_filled = None
        header = _text(stored_dataset(f, "ismrmrd_header", path)[()]) if "ismrmrd_header" in f else None
        geometry = _geometry(f, path)
        attrs = plain_attrs(f.attrs)
    known: dict[str, Any] = {}
    for name in PROVENANCE_ATTRS:
        if name in attrs:
            value = attrs.pop(name)
            if name != "acceleration":
                known[name] = _text(value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                known[name] = float(value)
            else:
                attrs[name] = value  # not a number: kept, but not as the acceleration
    known.setdefault("mrirecon_version", "")  # a file written elsewhere says nothing about it
    if known.get("undersampling", "") not in UNDERSAMPLING_KINDS:
        attrs["undersampling"] = known.pop("undersampling")
    return ReconVolume(
        reconstruction=reconstruction,
        zero_filled=zero_filled,
        ismrmrd_header=header,
        geometry=geometry,
        extra_attrs=attrs,
        **known,
    )


@dataclass(frozen=True, eq=False)
class InputMetadata:
    """What a reconstruction HDF5 copies from its input file (docs/interfaces.md §1).

    ``decoupled_3d``: the input is a 3-D acquisition served as slices along the readout (attribute
    ``mrirecon_decoupled_3d``; its header is rewritten to one partition per slice, so only this
    says the DICOM series is 3-D).
    """

    ismrmrd_header: str | None
    geometry: SliceGeometry | None
    acquisition: str
    patient_id: str
    decoupled_3d: bool = False


def read_input_metadata(path: str | Path) -> InputMetadata:
    """The ISMRMRD header, geometry group, ``acquisition`` and ``patient_id`` of an input HDF5.

    Raises:
        DataError: if the file cannot be read or its geometry group is malformed.
    """
    path = Path(path)
    with _open(path, "input HDF5") as f:
        header = _text(stored_dataset(f, "ismrmrd_header", path)[()]) if "ismrmrd_header" in f else None
        geometry = _geometry(f, path)
        acquisition = _text(f.attrs.get("acquisition", ""))
        patient_id = _text(f.attrs.get("patient_id", ""))
        decoupled = f.attrs.get("mrirecon_decoupled_3d", False)
    return InputMetadata(
        header,
        geometry,
        acquisition,
        patient_id,
        decoupled_3d=isinstance(decoupled, bool | np.bool_) and bool(decoupled),
    )
