"""What every input looks like to mrirecon: a :class:`RawVolume` of 2-D multi-coil k-space slices.

Whatever the file format (fastMRI HDF5, ISMRMRD raw, BART cfl, NumPy), the data layer serves a
volume as slices of k-space ``(C, H, W)`` complex64: H along the readout (rows), W along the
phase encode (columns, where line masks sample), single-coil data as ``C = 1``. A volume also
knows its sampling mask (when it was undersampled before mrirecon saw it), its ISMRMRD header,
the reconstruction size (the crop) and, when it has one, its fully sampled reference.

Every slice is checked when read: NaN or Inf values and an all-zero slice raise a
:class:`~mrirecon.errors.DataError` naming the file and the slice.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch

from mrirecon.data.header import AcquisitionHeader
from mrirecon.errors import DataError
from mrirecon.physics import ifftnc, rss
from mrirecon.shapes import center_crop

__all__ = [
    "NO_MMAP_ENV",
    "ArrayVolume",
    "Calibration",
    "RawVolume",
    "check_kspace_slice",
    "check_slice_energy",
    "kspace_energy",
    "memory_maps_enabled",
    "normalize_mask",
    "rss_reference",
]


#: Set to 1 to read every input into memory instead of mapping it (what batch inference does).
NO_MMAP_ENV = "MRIRECON_NO_MMAP"


def memory_maps_enabled() -> bool:
    """Whether readers may memory-map input files (``MRIRECON_NO_MMAP`` unset or 0).

    A mapped file that is truncated or replaced in place while it is read kills the reading
    process with SIGBUS; read into memory, the same damage is an ``OSError`` the reader reports as
    a :class:`~mrirecon.errors.DataError`. Batch inference, which reads archives that may change
    under it, turns maps off; training, which reads fixed datasets many times, keeps them.
    """
    return os.environ.get(NO_MMAP_ENV, "") in ("", "0")


def check_kspace_slice(kspace: np.ndarray, path: Path | None, index: int) -> np.ndarray:
    """Check one slice of k-space for NaN/Inf and for being all zeros; return it unchanged.

    One pass over the data: the squared norm (a BLAS dot product) is NaN/Inf if any value is, and
    zero only if every value is; the exact test runs only when the norm is not finite (an
    overflowing norm of very large but finite values is not an error).

    Raises:
        DataError: naming the file and slice.
    """
    flat = kspace.reshape(-1)
    if flat.dtype == np.complex64:
        flat = flat.view(np.float32)
    elif flat.dtype == np.complex128:
        flat = flat.view(np.float64)
    with np.errstate(over="ignore"):
        norm = float(np.dot(flat, flat))
    check_slice_energy(norm, kspace, path, index)
    return kspace


def check_slice_energy(energy: float, kspace: np.ndarray, path: Path | None, index: int) -> None:
    """The test of :func:`check_kspace_slice` from an energy ``Σ|y|²`` of the slice already computed.

    ``energy`` is NaN/Inf if a value is, and zero only if every value is; the exact scan of
    ``kspace`` runs only when it is not finite (large but finite values may overflow it).

    Raises:
        DataError: NaN or Inf values, or an all-zero slice, naming the file and slice.
    """
    if not np.isfinite(energy) and not np.isfinite(kspace).all():
        raise DataError(
            f"slice {index} of the k-space holds NaN or Inf values",
            path=path,
            hint="the file is corrupt or was written by a failed conversion; re-export it",
        )
    if energy == 0.0:
        raise DataError(
            f"slice {index} of the k-space is all zeros",
            path=path,
            hint="nothing was measured in this slice; remove it or the file",
        )


#: Below this largest energy (a column's or location's), :func:`kspace_energy` recomputes in float64:
#: float32 squares of values under about 1e-19 are subnormal or zero.
_SMALL_ENERGY = 1e-28


def kspace_energy(kspace: np.ndarray, *, per_column: bool) -> np.ndarray:
    """``Σ|y|²`` of a k-space slice per column or per location, in one pass without temporaries.

    Args:
        kspace: ``(C, H, W)`` complex64, C-contiguous.
        per_column: Sum over coils and rows, giving ``(W,)`` (what a line mask selects); else sum
            over coils only, giving ``(H, W)`` (what a 2-D mask selects).

    Returns:
        float32 ``(W,)`` or ``(H, W)``; its sum is the slice's squared norm (NaN/Inf if a value
        is; computed and returned in float64 when float32 would overflow, or when every value is so
        small (below about 1e-14) that float32 squares would lose precision or underflow to 0).
    """
    if kspace.ndim != 3 or kspace.dtype != np.complex64 or not kspace.flags.c_contiguous:
        raise ValueError(
            f"kspace must be C-contiguous complex64 (C, H, W), got {kspace.dtype} {kspace.shape}"
        )
    coils, height, width = kspace.shape
    # Real and imaginary parts side by side: a sum of squares down the columns of a 2-D array,
    # which einsum does in one vectorised pass.
    rows = kspace.view(np.float32).reshape((coils * height, 2 * width) if per_column else (coils, -1))
    with np.errstate(over="ignore"):
        energy = np.einsum("ij,ij->j", rows, rows)
    overflow = np.isinf(energy).any() and np.isfinite(rows).all()  # of large finite values
    tiny = energy.max(initial=0.0) < _SMALL_ENERGY  # squares of tiny values lose precision, or vanish
    if overflow or tiny:
        energy = np.einsum("ij,ij->j", rows, rows, dtype=np.float64)
    pairs = energy.reshape(-1, 2)
    summed = pairs[:, 0] + pairs[:, 1]
    return summed if per_column else summed.reshape(height, width)


def normalize_mask(mask: np.ndarray, height: int, width: int, path: Path | None) -> np.ndarray:
    """A stored sampling mask as bool ``(W,)`` (line mask) or ``(H, W)`` (2-D mask).

    Accepts ``(W,)``, ``(1, W)`` and ``(H, W)`` of any numeric or bool dtype (non-zero = sampled).

    Raises:
        DataError: if the mask does not fit k-space of in-plane size ``(H, W)`` or samples nothing.
    """
    array = np.asarray(mask)
    if array.dtype.kind not in "biuf":  # text would count every entry as sampled
        raise DataError(f"the mask holds {array.dtype} values, not numbers", path=path)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.shape not in ((width,), (height, width)):
        raise DataError(
            f"the mask has shape {tuple(np.shape(mask))}, which does not fit the k-space's in-plane "
            f"size {height}×{width}",
            path=path,
            hint=f"a mask must be ({width},) for lines along W or ({height}, {width}) for a 2-D pattern",
        )
    array = array != 0
    if not array.any():
        raise DataError("the mask samples no k-space location", path=path)
    return array


def file_number(value: object, what: str, path: str | os.PathLike[str] | None) -> float:
    """A number read from a file's attributes as float; a DataError naming the file otherwise."""
    try:
        number = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        number = None
    if number is None or number.ndim != 0:
        raise DataError(f"{what} must be a number, found {value!r}", path=path)
    return float(number)


class RawVolume(abc.ABC):
    """One input volume, read slice by slice.

    Attributes:
        path: The file it was read from.
        num_slices: Slices ``S``.
        kspace_shape: ``(C, H, W)`` of one slice.
        mask: bool ``(W,)`` or ``(H, W)`` when the input was undersampled before mrirecon saw it
            (prospective data, fastMRI test files), else ``None`` (fully sampled).
        header: The parsed ISMRMRD header, or ``None`` when the input has none.
        header_xml: The ISMRMRD header as text, or ``None``.
        crop_size: ``(h, w)``, the reconstruction size (fastMRI's crop).
        centered: FFT convention of the k-space (``False`` for Calgary-Campinas-style data).
        attrs: File attributes (``acquisition``, ``max``, ``norm``, ``patient_id``, test-set
            ``acceleration`` / ``num_low_frequency``...), plain Python values.
        geometry: The ``geometry/`` arrays of docs/interfaces.md §1 (``position``, ``read_dir``,
            ``phase_dir``, ``slice_dir`` ``(S, 3)``...), or ``None``.

    A volume is a context manager (closing releases the file) and can be pickled: it then reopens
    its file with the same options where it is unpickled (a DataLoader worker, say).
    """

    path: Path
    num_slices: int
    kspace_shape: tuple[int, int, int]
    mask: np.ndarray | None
    header: AcquisitionHeader | None
    header_xml: str | None
    crop_size: tuple[int, int]
    centered: bool
    attrs: dict[str, Any]
    geometry: dict[str, Any] | None = None
    #: How to reopen the volume after unpickling: ``(function, args)``; None pickles by value.
    _reopen: tuple[Callable[..., RawVolume], tuple[Any, ...]] | None = None

    @property
    def num_coils(self) -> int:
        """Coils ``C`` (1 for single-coil data)."""
        return self.kspace_shape[0]

    @property
    def acquisition(self) -> str:
        """The ``acquisition`` attribute (``AXFLAIR``, ``CORPD_FBK``...), or ``""``."""
        return str(self.attrs.get("acquisition", ""))

    @property
    def padding(self) -> tuple[int, int]:
        """Acquired column range ``[left, right)`` along W from the header's encoding limits.

        Columns outside it were zero-filled, never measured (fastMRI's padding).
        """
        width = self.kspace_shape[2]
        if self.header is None:
            return 0, width
        return self.header.padding(width)

    @property
    def has_target(self) -> bool:
        """Whether :meth:`read_target` returns a reference."""
        return False

    @abc.abstractmethod
    def _read_kspace(self, index: int) -> np.ndarray:
        """Slice ``index`` as ``(C, H, W)``, unchecked."""

    def read_kspace(self, index: int) -> np.ndarray:
        """One slice of k-space, checked, in an array the caller owns.

        Args:
            index: Slice index, ``0 <= index < num_slices``.

        Returns:
            ``(C, H, W)`` complex64 (single-coil as ``C = 1``).

        Raises:
            DataError: if the slice holds NaN/Inf, is all zeros, or cannot be read.
        """
        kspace = self.kspace_slice(index)
        if not kspace.flags.writeable:
            kspace = kspace.copy()
        return check_kspace_slice(kspace, self.path, index)

    def kspace_slice(self, index: int) -> np.ndarray:
        """Slice ``index`` as ``(C, H, W)`` complex64, C-contiguous, **unchecked**, copied only if need be.

        Either a fresh array the caller owns (writeable) or a read-only view of the volume's data
        (for example of a memory-mapped file; never a writeable view). For callers that check the
        slice themselves and write their result elsewhere, like ``ReconTransform`` through
        :func:`~mrirecon.data.transforms.normalize_slice`; everything else calls
        :meth:`read_kspace`.
        """
        self._check_index(index)
        return np.ascontiguousarray(self._read_kspace(index), dtype=np.complex64)

    def read_target(self, index: int) -> np.ndarray | None:
        """The fully sampled reference of slice ``index``: ``(h, w)`` float32, or ``None``."""
        self._check_index(index)
        return None

    def read_lesion_labels(self, index: int) -> np.ndarray | None:
        """Lesion labels of slice ``index``: ``(h, w)`` int16 (0 = none), or ``None``."""
        self._check_index(index)
        return None

    @property
    def calibration(self) -> Calibration | None:
        """The lines of a separate calibration (reference) scan, or None (most inputs)."""
        return None

    def read_calibration(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The separate calibration (reference) scan of slice ``index``, for coil maps only: its
        k-space ``(C, H, W)`` complex64 on the slice's grid (zero where it measured nothing) and
        its bool line mask ``(W,)``; None when the input has none (the coil maps then come from the
        fully sampled centre of the imaging data)."""
        self._check_index(index)
        calibration = self.calibration
        return None if calibration is None else calibration.slice(index, self.kspace_shape[2])

    @property
    def target_max(self) -> float | None:
        """The reference volume's maximum (attribute ``max``), or ``None`` without a reference."""
        if not self.has_target:
            return None
        value = self.attrs.get("max")
        if value is None:
            value = max(float(np.max(np.asarray(self.read_target(i)))) for i in range(self.num_slices))
            self.attrs["max"] = value
        return file_number(value, "the attribute 'max'", self.path)

    def _check_index(self, index: int) -> None:  # IndexError: the sequence protocol's end
        if not 0 <= index < self.num_slices:
            raise IndexError(f"{self.path}: slice {index} out of range (the volume has {self.num_slices})")

    def close(self) -> None:  # noqa: B027 (most volumes hold no file)
        """Release the file (idempotent)."""

    def __enter__(self) -> RawVolume:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def __reduce__(self) -> str | tuple[Any, ...]:
        if self._reopen is not None:
            return self._reopen
        return super().__reduce__()

    def __repr__(self) -> str:
        kind = "undersampled" if self.mask is not None else "fully sampled"
        return (
            f"{type(self).__name__}({str(self.path)!r}, slices={self.num_slices}, "
            f"kspace_shape={self.kspace_shape}, {kind})"
        )


@dataclass(frozen=True)
class Calibration:
    """The lines of a separate calibration (reference) scan, for coil maps: k-space
    ``(S, C, H, L)`` of ``L`` phase-encode lines, the columns ``(L,)`` they lie on in the volume's
    ``W``, and which slice measured which line, bool ``(S, L)``."""

    kspace: np.ndarray
    columns: np.ndarray
    measured: np.ndarray

    def slice(self, index: int, width: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``(k-space (C, H, W), line mask (W,))`` of slice ``index``, or None if it measured none."""
        measured = self.measured[index]
        if not measured.any():
            return None
        coils, height, _ = self.kspace[index].shape
        kspace = np.zeros((coils, height, width), dtype=np.complex64)
        columns = self.columns[measured]
        kspace[..., columns] = self.kspace[index][..., measured]
        mask = np.zeros(width, dtype=bool)
        mask[columns] = True
        return kspace, mask


def rss_reference(kspace: np.ndarray, crop_size: tuple[int, int], *, centered: bool) -> np.ndarray:
    """The reference of one fully sampled slice ``(C, H, W)``: the root-sum-of-squares of its coil
    images, centre-cropped to ``crop_size`` (fastMRI's ``reconstruction_rss``), float32 ``(h, w)``."""
    images = ifftnc(torch.from_numpy(np.asarray(kspace)), 2, centered=centered)
    return np.ascontiguousarray(center_crop(rss(images, dim=0).numpy(), crop_size))


class ArrayVolume(RawVolume):
    """A volume held as an array ``(S, C, H, W)`` (in memory or memory-mapped).

    Readers of formats that need converting (ISMRMRD raw, BART cfl, NumPy, 3-D decoupling) build
    one. Fully sampled input gets a reference computed on demand: the RSS of the slice's coil
    images, centre-cropped to ``crop_size``.

    Args:
        path: The source file.
        kspace: ``(S, C, H, W)`` complex array (a view of a memory map is read slice by slice).
        mask: bool ``(W,)`` / ``(H, W)`` for undersampled input, else ``None``.
        header: Parsed header, or ``None``.
        header_xml: The header's text, or ``None``.
        centered: FFT convention.
        crop_size: ``(h, w)``; default the header's reconstruction size, or ``(H, W)``.
        attrs: Attributes to expose.
        geometry: Slice geometry arrays, or ``None``.
        padding: Acquired column range ``[left, right)``; default from the header, or all columns.
        calibration: The lines of a separate calibration scan (coil maps), or ``None``.
    """

    def __init__(
        self,
        path: str | Path,
        kspace: np.ndarray,
        *,
        mask: np.ndarray | None = None,
        header: AcquisitionHeader | None = None,
        header_xml: str | None = None,
        centered: bool = True,
        crop_size: tuple[int, int] | None = None,
        attrs: dict[str, Any] | None = None,
        geometry: dict[str, Any] | None = None,
        padding: tuple[int, int] | None = None,
        calibration: Calibration | None = None,
    ):
        self.path = Path(path)
        self._padding = padding
        self._calibration = calibration
        if kspace.ndim != 4 or not np.iscomplexobj(kspace):
            raise DataError(
                f"internal layout must be complex (slices, coils, H, W), got {kspace.dtype} {kspace.shape}",
                path=self.path,
            )
        self._kspace = kspace
        slices, coils, height, width = (int(n) for n in kspace.shape)
        self.num_slices = slices
        self.kspace_shape = (coils, height, width)
        self.mask = None if mask is None else normalize_mask(mask, height, width, self.path)
        self.header = header
        self.header_xml = header_xml
        self.centered = centered
        if crop_size is None:
            crop_size = header.crop_size if header is not None else (height, width)
        self.crop_size = (min(int(crop_size[0]), height), min(int(crop_size[1]), width))
        self.attrs = dict(attrs or {})
        self.geometry = geometry

    def _read_kspace(self, index: int) -> np.ndarray:
        # a C-ordered copy: memory maps are read-only, and a transposed or column-major array
        # (BART's .cfl, .npy with --npy-axes) would keep its strides through np.array
        return np.ascontiguousarray(self._kspace[index], dtype=np.complex64)

    def kspace_slice(self, index: int) -> np.ndarray:
        self._check_index(index)
        view = self._kspace[index]
        if view.dtype != np.complex64 or not view.flags.c_contiguous:
            return self._read_kspace(index)
        view = view.view()
        view.flags.writeable = False  # never hand out a writeable view of the volume's array
        return view

    @property
    def padding(self) -> tuple[int, int]:
        return self._padding if self._padding is not None else super().padding

    @property
    def has_target(self) -> bool:
        return self.mask is None

    def read_target(self, index: int) -> np.ndarray | None:
        self._check_index(index)
        if self.mask is not None:
            return None
        return rss_reference(self.read_kspace(index), self.crop_size, centered=self.centered)

    @property
    def calibration(self) -> Calibration | None:
        return self._calibration

    def kspace_array(self) -> np.ndarray:
        """The whole k-space ``(S, C, H, W)`` (converters write it out)."""
        return np.asarray(self._kspace)
