"""fastMRI HDF5: the lazy reader of the layout of docs/interfaces.md §1.

Reading opens the file, checks its structure (``kspace`` present, of a known rank; a ``mask`` that
fits; a parsable ``ismrmrd_header``) and reads nothing else up front: each slice is read when
asked for, so a dataset of thousands of files opens quickly and DataLoader workers each read
their own slices. Three k-space layouts are read:

- multi-coil ``(slices, coils, H, W)`` complex (fastMRI, and what mrirecon writes);
- single-coil ``(slices, H, W)`` complex, served with one coil;
- Calgary-Campinas ``(slices, H, W, 2·coils)`` float (real and imaginary parts interleaved),
  stored *uncentred*: ``centered`` defaults to ``False`` for it.

Reading k-space without copying it: when ``kspace`` is stored contiguously (not chunked, not
compressed: what :func:`~mrirecon.data.fastmri_writer.write_volume` and fastMRI write) as
little-endian complex64, the reading process maps that byte range of the file read-only
(``numpy.memmap``), and the training transform reads the slice straight from the page cache
(:meth:`FastMRIVolume.kspace_slice`) instead of having HDF5 copy it into a new array first; any
other layout is read with h5py. Set ``MRIRECON_NO_MMAP=1`` to read everything with h5py. A file
that is truncated *in place* while it is open can then crash the reading process with SIGBUS
instead of raising a ``DataError`` (replacing a file by renaming, as the writer does, is safe); a
file found truncated when it is opened is read with h5py and reported as usual.

Writing is :mod:`mrirecon.data.fastmri_writer` (``write_volume``, the one writer of this layout).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mrirecon.data.geometry_values import GEOMETRY_VECTORS, field_of_view, real_numbers, slice_thickness
from mrirecon.data.hdf5_inputs import (
    MAX_HEADER_BYTES,
    check_small,
    check_stored,
    map_contiguous,
    open_hdf5,
    plain_attrs,
    stored_dataset,
    stored_group,
)
from mrirecon.data.header import parse_ismrmrd_header
from mrirecon.data.lesions import checked_labels
from mrirecon.data.raw import Calibration, RawVolume, normalize_mask
from mrirecon.errors import DataError, Notice
from mrirecon.masks import describe_mask, reduce_mask

__all__ = ["FastMRIVolume", "probe_conventions", "reference_key"]

_TARGET_KEYS = ("reconstruction_rss", "reconstruction_esc")
# fastMRI's single-coil files hold both; their k-space is the emulated single coil's, whose image is
# the ESC reconstruction (fastMRI's SliceDataset reads reconstruction_esc for single-coil)
_SINGLE_COIL_TARGET_KEYS = ("reconstruction_esc", "reconstruction_rss")


def _decode(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size else b""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def probe_conventions(
    path: Path, centered: bool | None = None
) -> tuple[bool, bool, bool, tuple[int, int, int]] | None:
    """``(centered, has_target, has_mask, (C, H, W))`` of a fastMRI-layout file from its structure
    alone: what :class:`FastMRIVolume` decides (the layout by the ``kspace`` dataset's dtype and
    rank, the convention by ``mrirecon_fft_centered`` or the Calgary-Campinas layout, a reference
    and a mask by their datasets, the slice shape by the ``kspace`` dataset's), without reading any
    k-space (opening a volume reads a slice when it has no ``mask``). None when the file is not one
    the rules apply to (no ``kspace``, another layout): open it.

    Raises:
        DataError: the file cannot be opened as HDF5.
    """
    with open_hdf5(path) as handle:
        kspace = handle.get("kspace")
        layout = _layout(kspace) if isinstance(kspace, h5py.Dataset) else None
        if layout is None:
            return None
        has_target = any(key in handle for key in _TARGET_KEYS)
        shape = kspace.shape
        if layout == "multi":
            slice_shape = (int(shape[1]), int(shape[2]), int(shape[3]))
        elif layout == "single":
            slice_shape = (1, int(shape[1]), int(shape[2]))
        else:  # calgary: (S, H, W, 2·C)
            slice_shape = (int(shape[3]) // 2, int(shape[1]), int(shape[2]))
        return (
            _centered(plain_attrs(handle.attrs), layout, centered, path),
            has_target,
            "mask" in handle,
            slice_shape,
        )


def _layout(kspace: h5py.Dataset) -> str | None:
    """``multi`` (complex ``(S, C, H, W)``), ``single`` (complex ``(S, H, W)``), ``calgary`` (float
    ``(S, H, W, 2·C)``), or None for any other ``kspace``.

    The Calgary-Campinas layout's last axis (real and imaginary parts of each coil) is even and no
    longer than either image axis; a float ``(S, C, H, W)`` array (the magnitude or real part of a
    k-space, saved by mistake) has a last axis longer than its coil axis and is not taken for one.
    """
    complex_data = np.issubdtype(kspace.dtype, np.complexfloating)
    if complex_data and kspace.ndim in (3, 4):
        return "multi" if kspace.ndim == 4 else "single"
    if np.issubdtype(kspace.dtype, np.floating) and kspace.ndim == 4:
        parts = kspace.shape[-1]
        if parts % 2 == 0 and parts <= min(kspace.shape[1], kspace.shape[2]):
            return "calgary"
    return None


def _reference_keys(layout: str | None) -> tuple[str, ...]:
    """The datasets that may hold the reference of k-space of ``layout``, in the order fastMRI
    reads them: ``reconstruction_esc`` first for single-coil k-space (its image is the emulated
    single coil's), ``reconstruction_rss`` first otherwise."""
    return _SINGLE_COIL_TARGET_KEYS if layout == "single" else _TARGET_KEYS


def reference_key(handle: h5py.File) -> str | None:
    """The dataset holding a file's fully sampled reference, as fastMRI reads it
    (:func:`_reference_keys`); None without either. A file without k-space (targets only) is read
    as single-coil: only fastMRI's single-coil files hold ``reconstruction_esc``."""
    kspace = handle.get("kspace")
    layout = _layout(kspace) if isinstance(kspace, h5py.Dataset) else "single"
    return next((k for k in _reference_keys(layout) if k in handle), None)


def _centered(attrs: dict[str, Any], layout: str, override: bool | None, path: Path) -> bool:
    """The FFT convention: ``override``, else the ``mrirecon_fft_centered`` attribute (a boolean,
    or the integer 0 or 1), else centred for every layout but Calgary-Campinas.

    Raises:
        DataError: the attribute holds anything else (a text "false" is not taken as true).
    """
    if override is not None:
        return bool(override)
    value = attrs.get("mrirecon_fft_centered", layout != "calgary")
    flag = np.asarray(value)
    if flag.ndim == 0 and (flag.dtype == np.bool_ or (flag.dtype.kind in "iu" and int(flag) in (0, 1))):
        return bool(flag)
    raise DataError(
        f"the attribute 'mrirecon_fft_centered' must be true or false, found {value!r}",
        path=path,
        hint="store it as a boolean (h5py: f.attrs['mrirecon_fft_centered'] = False), or set "
        "data.centered when training",
    )


class FastMRIVolume(RawVolume):
    """A fastMRI HDF5 file, read lazily slice by slice (see the module docstring).

    Args:
        path: The file.
        centered: FFT convention; default the attribute ``mrirecon_fft_centered`` (True when
            absent, False for the Calgary-Campinas layout).

    Raises:
        DataError: missing file, truncated/corrupt HDF5, no ``kspace``, wrong rank or dtype, a mask
            or lesion labels that do not fit, an unreadable ``ismrmrd_header``.
    """

    def __init__(self, path: str | Path, *, centered: bool | None = None):
        self.path = Path(path)
        self._reopen = (FastMRIVolume._rebuild, (str(self.path), centered))
        self._map: np.ndarray | None = None
        self._map_checked = False
        # without a header: the block of columns the zeros of a fully sampled file leave (else None)
        self._zero_padding: tuple[int, int] | None = None
        # with a mask recovered from one slice's zeros: that slice's pattern, and the slices checked
        self._pattern: np.ndarray | None = None
        self._pattern_slice = 0
        self._pattern_checked: set[int] = set()
        self._file: h5py.File | None = open_hdf5(self.path)
        try:
            self._inspect(self._file, centered)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _rebuild(path: str, centered: bool | None) -> FastMRIVolume:
        return FastMRIVolume(path, centered=centered)

    def _dataset(self, handle: h5py.File, key: str) -> h5py.Dataset:
        return stored_dataset(handle, key, self.path)

    def _inspect(self, handle: h5py.File, centered: bool | None) -> None:
        path = self.path
        if "kspace" not in handle:
            raise DataError(
                "the file has no 'kspace' dataset",
                path=path,
                hint="fastMRI files store k-space as 'kspace' (slices, coils, H, W); "
                "convert other layouts with `mrirecon convert`",
            )
        kspace = self._dataset(handle, "kspace")
        shape = tuple(int(n) for n in kspace.shape)
        layout = _layout(kspace)
        if layout == "multi":
            slices, coils, height, width = shape
        elif layout == "single":
            (slices, height, width), coils = shape, 1
        elif layout == "calgary":
            slices, height, width, coils = shape[0], shape[1], shape[2], shape[3] // 2
        else:
            raise DataError(
                f"'kspace' has {'rank ' + str(len(shape))} and dtype {kspace.dtype} (shape {shape}); "
                "expected complex (slices, coils, H, W) or (slices, H, W)",
                path=path,
                hint="Calgary-Campinas files are float (slices, H, W, 2·coils); "
                "convert other layouts with `mrirecon convert`",
            )
        if min(shape) == 0:
            raise DataError(f"'kspace' is empty (shape {shape})", path=path)
        check_stored(kspace, path)
        self._layout = layout
        self._kspace = kspace
        self.num_slices = slices
        self.kspace_shape = (coils, height, width)
        self.attrs = plain_attrs(handle.attrs)
        self.centered = _centered(self.attrs, layout, centered, self.path)

        self.header_xml = self._read_header_xml(handle)
        self.header = None if self.header_xml is None else parse_ismrmrd_header(self.header_xml, source=path)

        self.mask = None
        if "mask" in handle:
            mask = self._dataset(handle, "mask")
            check_small(mask, height * width, path)
            self.mask = normalize_mask(mask[()], height, width, path)
        else:
            self.mask = self._recover_mask()

        self._target: h5py.Dataset | None = None
        for key in self._target_keys:
            if key in handle:
                self._target = self._volume_dataset(handle, key, slices)
                if not np.issubdtype(self._target.dtype, np.number):
                    raise DataError(f"'{key}' holds {self._target.dtype}, not numbers", path=path)
                break
        self._labels: h5py.Dataset | None = None
        if "lesion_labels" in handle:
            self._labels = self._volume_dataset(handle, "lesion_labels", slices)
            if self._target is not None and self._labels.shape != self._target.shape:
                raise DataError(
                    f"lesion_labels {self._labels.shape} and the reference {self._target.shape} "
                    "differ in shape",
                    path=path,
                )
        if self._target is not None:
            self.crop_size = (int(self._target.shape[1]), int(self._target.shape[2]))
        elif self.header is not None:
            recon = self.header.crop_size
            self.crop_size = (min(recon[0], height) or height, min(recon[1], width) or width)
        else:
            self.crop_size = (height, width)
        self.geometry = self._read_geometry(handle)
        self._has_calibration = self._check_calibration(handle)
        self._calibration: Calibration | None = None

    def _recover_mask(self) -> np.ndarray | None:
        """The mask of k-space undersampled before it was written without a ``mask`` dataset.

        Read from the exact zeros of the middle slice (:func:`mrirecon.masks.reduce_mask`, in the
        centred view; columns outside the header's acquired range are padding, not
        undersampling). When there is one it is served as the volume's mask, the attributes say so
        (``mrirecon_mask_recovered``, ``acceleration``, ``num_low_frequency``) and a
        :class:`~mrirecon.errors.Notice` tells the user in one line.
        """
        _, height, width = self.kspace_shape
        middle = self.kspace_slice(self.num_slices // 2)
        sampled = np.asarray((middle != 0).any(axis=0))
        if not sampled.any():
            return None  # an all-zero slice: the reader's own check reports it
        left, right = self.padding
        inside = sampled[:, left:right]
        if not self.centered:
            inside = np.fft.fftshift(inside, axes=(-2, -1))
        mask, columns = reduce_mask(inside)
        if mask is None:
            if self.header is None and columns != (0, inside.shape[-1]) and self.centered:
                self._zero_padding = columns  # zero columns of a fully sampled file: never measured
            return None
        if not self.centered:
            mask = np.fft.ifftshift(mask, axes=tuple(range(-mask.ndim, 0)))
        # every other slice must have been sampled the same way: checked as each is read
        self._pattern, self._pattern_slice = sampled, self.num_slices // 2
        self._pattern_checked = {self._pattern_slice}
        full = np.zeros((width,) if mask.ndim == 1 else (height, width), dtype=bool)
        full[..., left:right] = mask
        info = describe_mask(full)
        self.attrs.update(
            mrirecon_mask_recovered=True,
            acceleration=round(info.acceleration, 2),
            num_low_frequency=info.num_low_frequencies,
        )
        warnings.warn(
            Notice(
                f"{self.path.name}: no 'mask' dataset, but {100 / info.acceleration:.0f} % of the k-space "
                f"is measured ({info.kind} pattern, {info.acceleration:.1f}×): reconstructing it as "
                "undersampled with the mask recovered from its zeros"
            ),
            stacklevel=3,
        )
        return full

    def _volume_dataset(self, handle: h5py.File, key: str, slices: int) -> h5py.Dataset:
        data = self._dataset(handle, key)
        if data.ndim != 3 or data.shape[0] != slices:
            raise DataError(
                f"'{key}' has shape {data.shape}; expected ({slices}, h, w), one image per k-space slice",
                path=self.path,
            )
        return data

    def _check_calibration(self, handle: h5py.File) -> bool:
        """Whether the file holds a separate calibration scan (``calibration/``: ``kspace``
        ``(S, C, H, L)``, ``columns`` ``(L,)``, ``measured`` ``(S, L)``), its shapes checked
        (nothing read but the columns)."""
        if "calibration" not in handle:
            return False
        coils, height, width = self.kspace_shape
        kspace = self._dataset(handle, "calibration/kspace")
        columns = self._dataset(handle, "calibration/columns")
        measured = self._dataset(handle, "calibration/measured")
        lines = int(columns.shape[0]) if columns.ndim == 1 else -1
        if (
            lines < 1
            or lines > width
            or kspace.shape != (self.num_slices, coils, height, lines)
            or not np.issubdtype(kspace.dtype, np.complexfloating)
            or measured.shape != (self.num_slices, lines)
            or not np.issubdtype(columns.dtype, np.integer)
        ):
            raise DataError(
                f"'calibration/' holds kspace {kspace.shape} {kspace.dtype}, columns {columns.shape} "
                f"{columns.dtype} and measured {measured.shape}; expected ({self.num_slices}, {coils}, "
                f"{height}, L) complex, (L,) integers and ({self.num_slices}, L) for the k-space "
                f"{(self.num_slices, coils, height, width)}",
                path=self.path,
            )
        check_stored(kspace, self.path)
        values = columns[()]
        if values.min() < 0 or values.max() >= width or len(set(values.tolist())) != lines:
            raise DataError(
                f"'calibration/columns' must be distinct columns in 0 … {width - 1}", path=self.path
            )
        return True

    @property
    def calibration(self) -> Calibration | None:
        if not self._has_calibration:
            return None
        if self._calibration is None:  # read once, when first asked for
            handle = self._handle()
            try:
                self._calibration = Calibration(
                    np.asarray(handle["calibration/kspace"][()], dtype=np.complex64),
                    np.asarray(handle["calibration/columns"][()], dtype=np.int64),
                    np.asarray(handle["calibration/measured"][()], dtype=bool),
                )
            except OSError as error:
                raise DataError(f"cannot read 'calibration/': {error}", path=self.path) from error
        return self._calibration

    def _read_header_xml(self, handle: h5py.File) -> str | None:
        """The ``ismrmrd_header`` text (one string, checked before it is read), or None."""
        if "ismrmrd_header" not in handle:
            return None
        header = self._dataset(handle, "ismrmrd_header")
        check_small(header, 1, self.path)
        if header.dtype.itemsize > MAX_HEADER_BYTES:
            raise DataError(
                f"'ismrmrd_header' declares {header.dtype.itemsize:,} bytes of text", path=self.path
            )
        return _decode(header[()])

    def _read_geometry(self, handle: h5py.File) -> dict[str, Any] | None:
        if isinstance(handle.get("geometry", getlink=True), h5py.HardLink) and not isinstance(
            handle["geometry"], h5py.Group
        ):
            return None  # a dataset of that name: no geometry (as before)
        group = stored_group(handle, "geometry", self.path)
        if group is None:
            return None
        out: dict[str, Any] = {}
        for name in GEOMETRY_VECTORS:
            if name in group:
                data = stored_dataset(handle, f"geometry/{name}", self.path)
                check_small(data, 3 * max(self.num_slices, 1), self.path)  # (S, 3)
                out[name] = real_numbers(data[()], name, source=self.path)
        attrs = plain_attrs(group.attrs)
        for name, check in (("field_of_view_mm", field_of_view), ("slice_thickness_mm", slice_thickness)):
            if name in attrs:
                check(attrs[name], self.path)
        out.update(attrs)
        return out

    @property
    def padding(self) -> tuple[int, int]:
        """The header's acquired column range; without a header, the block of columns a fully
        sampled file measured when it has zero columns around it (as for NumPy and BART inputs)."""
        if self._zero_padding is not None:
            return self._zero_padding
        return super().padding

    @property
    def _target_keys(self) -> tuple[str, ...]:
        return _reference_keys(self._layout)

    def _handle(self) -> h5py.File:
        if self._file is None:
            self._file = open_hdf5(self.path)
            self._kspace = self._file["kspace"]
            self._target = next((self._file[k] for k in self._target_keys if k in self._file), None)
            self._labels = self._file.get("lesion_labels")
        return self._file

    def _read(self, data: h5py.Dataset, index: int, what: str) -> np.ndarray:
        try:
            return np.asarray(data[index])
        except (OSError, RuntimeError) as error:
            raise DataError(
                f"cannot read slice {index} of '{what}' (truncated or corrupt file?): {error}",
                path=self.path,
            ) from error

    def _kspace_map(self) -> np.ndarray | None:
        """The memory map of ``kspace`` (see the module docstring), made on first use in this process."""
        if not self._map_checked:
            self._handle()
            self._map = None if self._layout == "calgary" else map_contiguous(self.path, self._kspace)
            self._map_checked = True
        return self._map

    def kspace_slice(self, index: int) -> np.ndarray:
        self._check_index(index)
        mapped = self._kspace_map()
        if mapped is None:
            out = super().kspace_slice(index)
        else:
            out = mapped[index] if self._layout == "multi" else mapped[index][None]
        if self._pattern is not None and index not in self._pattern_checked:
            self._check_pattern(out, index)
        return out

    def _check_pattern(self, kspace: np.ndarray, index: int) -> None:
        """A slice of a volume whose mask was recovered from one slice must share that slice's zeros."""
        assert self._pattern is not None
        if not np.array_equal(np.asarray((kspace != 0).any(axis=0)), self._pattern):
            raise DataError(
                f"slice {index} is sampled with another pattern than slice {self._pattern_slice}, whose "
                "zeros gave the mask (the file has no 'mask' dataset)",
                path=self.path,
                hint="mrirecon serves one sampling mask per volume; split the slices into files",
            )
        self._pattern_checked.add(index)

    def _read_kspace(self, index: int) -> np.ndarray:
        self._handle()
        data = self._read(self._kspace, index, "kspace")
        if self._layout == "single":
            return data[None]
        if self._layout == "calgary":
            pairs = data.reshape(*data.shape[:-1], -1, 2)
            return np.moveaxis(pairs[..., 0] + 1j * pairs[..., 1], -1, 0).astype(np.complex64)
        return data

    @property
    def single_coil(self) -> bool:
        """Whether the file is fastMRI's single-coil layout (k-space ``(S, H, W)``)."""
        return self._layout == "single"

    @property
    def has_target(self) -> bool:
        return self._target is not None

    def read_target(self, index: int) -> np.ndarray | None:
        self._check_index(index)
        self._handle()
        if self._target is None:
            return None
        target = self._read(self._target, index, self._target.name.lstrip("/"))
        return np.abs(target).astype(np.float32, copy=False)

    def read_lesion_labels(self, index: int) -> np.ndarray | None:
        self._check_index(index)
        self._handle()
        if self._labels is None:
            return None
        labels = self._read(self._labels, index, "lesion_labels")
        return checked_labels(labels, self.path, f"lesion_labels[{index}]")

    def close(self) -> None:
        self._map, self._map_checked = None, False  # views handed out keep their mapping alive
        if self._file is not None:
            self._file.close()
            self._file = None
