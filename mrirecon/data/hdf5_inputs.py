"""Opening HDF5 inputs safely: what every reader of mrirecon checks before it reads.

A file from elsewhere may be missing, unreadable, truncated, or may declare far more than it
stores (HDF5 serves unwritten chunks as zeros), keep its data in another file (external links,
external raw storage, virtual datasets) or declare a terabyte mask in 10 KB. These helpers open a
file with a :class:`~mrirecon.errors.DataError` naming it (:func:`open_hdf5`), take a dataset only
when the file holds its data (:func:`stored_dataset`), check declared sizes against what is stored
and against the limits below before anything is read (:func:`check_stored`, :func:`check_small`),
map contiguous complex64 k-space read-only instead of copying it (:func:`map_contiguous`), and
turn attributes into plain Python values (:func:`plain_attrs`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mrirecon.data.raw import memory_maps_enabled
from mrirecon.errors import ConfigError, DataError

__all__ = [
    "MAX_CHUNK_MB",
    "MAX_HEADER_BYTES",
    "MAX_KSPACE_GB",
    "MAX_SLICE_GB",
    "check_kspace_size",
    "check_small",
    "check_stored",
    "map_contiguous",
    "max_kspace_gb",
    "open_hdf5",
    "plain_attrs",
    "stored_dataset",
]


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.reshape(-1)[0].item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def plain_attrs(attrs: h5py.AttributeManager) -> dict[str, Any]:
    """HDF5 attributes as plain Python values (bytes decoded, NumPy scalars unwrapped)."""
    return {key: _plain(value) for key, value in attrs.items()}


def open_hdf5(path: Path) -> h5py.File:
    """Open an HDF5 file for reading, with a :class:`DataError` for a missing or corrupt file."""
    if not path.exists():
        raise DataError("no such file", path=path)
    if not path.is_file():
        raise DataError("not a file", path=path, hint="give a file, or a folder to a dataset")
    if not os.access(path, os.R_OK):
        raise DataError(
            "cannot read the file: permission denied",
            path=path,
            hint="give this user read access to it (the file itself may be fine)",
        )
    try:
        return h5py.File(path, "r")
    except OSError as error:
        reason = "truncated" if "truncated" in str(error) else "corrupt or not HDF5"
        raise DataError(
            f"cannot open the file as HDF5 ({reason}): {error}",
            path=path,
            hint="copy or download the file again; an interrupted transfer truncates HDF5 files",
        ) from error


def _is_plain_complex64(data: h5py.Dataset) -> bool:
    """Whether ``data``'s elements are stored exactly as NumPy's complex64: real float32 at byte 0,
    imaginary float32 at byte 4, little-endian (h5py's own layout)."""
    kind = data.id.get_type()
    if not isinstance(kind, h5py.h5t.TypeCompoundID) or kind.get_size() != 8 or kind.get_nmembers() != 2:
        return False
    for member, (name, offset) in enumerate(((b"r", 0), (b"i", 4))):
        part = kind.get_member_type(member)
        if (
            kind.get_member_name(member) != name
            or kind.get_member_offset(member) != offset
            or part.get_class() != h5py.h5t.FLOAT
            or part.get_size() != 4
            or part.get_order() != h5py.h5t.ORDER_LE
        ):
            return False
    return np.dtype(np.complex64).isnative


def map_contiguous(path: Path, data: h5py.Dataset) -> np.ndarray | None:
    """A read-only memory map of a contiguous complex64 dataset's bytes, or None where h5py must read.

    None for chunked, compressed or filtered storage, other element layouts, storage not yet
    written, a file shorter than the dataset's extent (truncated), or ``MRIRECON_NO_MMAP=1``.
    """
    if not memory_maps_enabled():
        return None
    if data.chunks is not None or data.size == 0 or not _is_plain_complex64(data):
        return None
    try:
        offset = data.id.get_offset()
        if offset is None or offset + data.size * 8 > path.stat().st_size:
            return None
        return np.memmap(path, dtype=np.complex64, mode="r", offset=offset, shape=data.shape)
    except (OSError, ValueError):
        return None


#: Largest k-space a file may declare (GiB), unless ``MRIRECON_MAX_KSPACE_GB`` allows more.
MAX_KSPACE_GB = 64.0
#: Largest slice (GiB) and HDF5 chunk (MiB) a file may declare: what one read allocates.
MAX_SLICE_GB = 4.0
MAX_CHUNK_MB = 512.0
#: Largest fixed-length ISMRMRD header text a file may declare.
MAX_HEADER_BYTES = 64 * 2**20


def max_kspace_gb() -> float:
    """The most k-space (GiB) mrirecon reads from one file: ``MRIRECON_MAX_KSPACE_GB``, else
    :data:`MAX_KSPACE_GB`."""
    text = os.environ.get("MRIRECON_MAX_KSPACE_GB", "")
    if not text:
        return float(MAX_KSPACE_GB)
    try:
        limit = float(text)
    except ValueError:
        limit = math.nan
    if not limit > 0:  # NaN too
        raise ConfigError(
            f"MRIRECON_MAX_KSPACE_GB={text!r} is not a positive number of GiB",
            hint=f"set it to the most GiB of k-space to read (the default is {MAX_KSPACE_GB:g}), or unset it",
        )
    return limit


def _refuse_link(link: object, name: str, path: Path) -> None:
    """Refuse an object reached through anything but a hard link (an external link to another
    file, a soft link): mrirecon reads only what the file itself holds."""
    if not isinstance(link, h5py.HardLink):
        target = getattr(link, "filename", None) or getattr(link, "path", "")
        raise DataError(
            f"'{name}' is a link ({type(link).__name__} to {target}): mrirecon reads only data stored "
            "in the file itself",
            path=path,
            hint="copy the data into the file (h5copy, or h5py) and run again",
        )


def stored_dataset(handle: h5py.File | h5py.Group, key: str, path: Path) -> h5py.Dataset:
    """The dataset ``key`` of an open file, refused unless its data are stored in the file itself.

    An external link (to another HDF5 file), external raw storage (any file of the host, a named
    pipe) or a virtual dataset would make a small file serve another file's data under this file's
    name and header, or hang a read: mrirecon reads only datasets the file holds.

    Raises:
        DataError: a missing key, a group, a dataset along the key's path, a link other than a
            hard link along it, a dataset without a dataspace (``h5py.Empty``), or a dataset
            whose data live outside the file.
    """
    where = handle
    parts = [part for part in key.split("/") if part]
    for depth, part in enumerate(parts):
        if not isinstance(where, h5py.Group):  # a dataset where the key needs a group
            above = "/".join(parts[:depth])
            raise DataError(f"'{above}' is a dataset, not a group holding '{key}'", path=path)
        link = where.get(part, getlink=True)
        if link is None:
            raise DataError(f"the file has no '{key}'", path=path)
        _refuse_link(link, "/".join(parts[: depth + 1]), path)
        try:
            where = where[part]
        except (OSError, KeyError, RuntimeError) as error:
            raise DataError(f"cannot read '{key}': {error}", path=path) from error
    if not isinstance(where, h5py.Dataset):
        raise DataError(f"'{key}' is a group, not a dataset", path=path)
    if where.shape is None:  # h5py.Empty: a null dataspace, no values at all
        raise DataError(f"'{key}' holds no values (an empty, null-dataspace dataset)", path=path)
    if where.is_virtual or where.id.get_create_plist().get_external_count() > 0:
        raise DataError(
            f"'{key}' keeps its data outside the file (a virtual dataset or external storage)",
            path=path,
            hint="copy the data into the file (h5copy, or h5py) and run again",
        )
    _check_filters(where, key, path)
    return where


#: Common HDF5 plugin filters by registered id (https://portal.hdfgroup.org/documentation/hdf5-docs/registered_filter_plugins.html).
_PLUGIN_FILTERS = {
    307: "bzip2",
    32001: "Blosc",
    32004: "LZ4",
    32008: "bitshuffle",
    32013: "ZFP",
    32015: "Zstandard",
    32017: "SZ",
    32026: "Blosc2",
}


def _check_filters(dataset: h5py.Dataset, key: str, path: Path) -> None:
    """Refuse a dataset compressed with an HDF5 filter this installation cannot decode, naming
    it (HDF5 itself fails the first read with "can't open directory (/usr/local/lib/plugin)").
    The filters of the ``hdf5plugin`` package (Blosc, LZ4, Zstandard, bitshuffle, ...) are
    registered first when it is installed."""
    pipeline = dataset.id.get_create_plist()
    codes = [int(pipeline.get_filter(i)[0]) for i in range(pipeline.get_nfilters())]
    missing = [code for code in codes if not h5py.h5z.filter_avail(code)]
    if missing and _register_plugins():
        missing = [code for code in missing if not h5py.h5z.filter_avail(code)]
    if missing:
        names = ", ".join(f"{_PLUGIN_FILTERS.get(code, 'unknown')} (id {code})" for code in missing)
        raise DataError(
            f"'{key}' is compressed with an HDF5 filter this installation cannot decode: {names}",
            path=path,
            hint="pip install hdf5plugin (mrirecon loads its filters), or store the file without it: "
            "h5repack -f NONE IN.h5 OUT.h5 where the filter is installed",
        )


def _register_plugins() -> bool:
    """Import ``hdf5plugin`` (it registers its filters with HDF5); False when it is not installed."""
    try:
        import hdf5plugin  # noqa: F401  # type: ignore[import-not-found]
    except ImportError:
        return False
    return True


def numeric_dataset(
    handle: h5py.File | h5py.Group, key: str, path: Path, ndim: int | None = None
) -> h5py.Dataset:
    """:func:`stored_dataset` ``key``, refused unless it holds numbers (and has ``ndim`` axes).

    Raises:
        DataError: as :func:`stored_dataset`; text or compound data; another number of axes.
    """
    data = stored_dataset(handle, key, path)
    if not np.issubdtype(data.dtype, np.number):
        raise DataError(f"'{key}' holds {data.dtype}, not numbers", path=path)
    if ndim is not None and data.ndim != ndim:
        raise DataError(f"'{key}' must have {ndim} axes, got shape {data.shape}", path=path)
    return data


def check_small(dataset: h5py.Dataset, elements: int, path: Path) -> None:
    """Refuse an auxiliary dataset (mask, header, geometry) declaring more than ``elements``
    elements, before it is read (a 10 KB file can declare a terabyte mask)."""
    if math.prod(dataset.shape) > elements:
        raise DataError(
            f"'{dataset.name.lstrip('/')}' declares {dataset.shape}, more than the {elements:,} values "
            "it can hold for this k-space",
            path=path,
        )


def stored_group(handle: h5py.File | h5py.Group, key: str, path: Path) -> h5py.Group | None:
    """The group ``key`` of an open file (None when there is none), refused unless it is the
    file's own: a group reached through an external or soft link would serve another file's
    values (geometry, its attributes) under this file's name.

    Raises:
        DataError: a link other than a hard link, or a dataset where the group belongs.
    """
    link = handle.get(key, getlink=True)
    if link is None:
        return None
    _refuse_link(link, key, path)
    group = handle[key]
    if not isinstance(group, h5py.Group):
        raise DataError(f"'{key}' must be a group, found a dataset", path=path)
    return group


def check_kspace_size(declared: int, what: str, path: Path) -> None:
    """Refuse k-space of ``declared`` bytes above ``MRIRECON_MAX_KSPACE_GB``, whatever the format.

    Args:
        declared: Bytes the file's header declares.
        what: The start of the message, e.g. ``"'kspace' declares (2, 4, 64, 64)"``.
        path: The file, named in the error.
    """
    limit_gb = max_kspace_gb()
    if declared > limit_gb * 2**30:
        raise DataError(
            f"{what} ({declared / 2**30:.3g} GiB), "
            f"more than the {limit_gb:g} GiB mrirecon reads from one file",
            path=path,
            hint="set MRIRECON_MAX_KSPACE_GB to allow larger volumes",
        )


def check_stored(dataset: h5py.Dataset, path: Path) -> None:
    """Check that a dataset holds the data its shape declares, before anything is read.

    A file can declare a huge dataset and store almost nothing (HDF5 serves unwritten chunks as
    zeros): a 3 KB file declaring 10⁶ slices would keep a batch busy for minutes. Checked from
    the metadata alone, in microseconds: the declared size against ``MRIRECON_MAX_KSPACE_GB``
    (default 64); a contiguous dataset must have its whole storage allocated; a chunked one every
    chunk (compressed chunks may be small, but each must exist).

    Raises:
        DataError: naming the declared shape and what is stored.
    """
    declared = math.prod(int(n) for n in dataset.shape) * dataset.dtype.itemsize  # Python ints: no overflow
    check_kspace_size(declared, f"'{dataset.name.lstrip('/')}' declares {dataset.shape}", path)
    if dataset.ndim > 1 and dataset.shape[0] > 0 and declared // dataset.shape[0] > MAX_SLICE_GB * 2**30:
        raise DataError(
            f"'{dataset.name.lstrip('/')}' declares slices of {declared // dataset.shape[0] / 2**30:.3g} GiB "
            f"(shape {dataset.shape}), more than the {MAX_SLICE_GB:g} GiB mrirecon reads at once",
            path=path,
        )
    if dataset.chunks is not None:
        chunk = math.prod(dataset.chunks) * dataset.dtype.itemsize
        if chunk > MAX_CHUNK_MB * 2**20:
            raise DataError(
                f"'{dataset.name.lstrip('/')}' is stored in chunks of {chunk / 2**20:.0f} MiB "
                f"(chunks {dataset.chunks}), more than the {MAX_CHUNK_MB:g} MiB mrirecon reads at once",
                path=path,
                hint="rewrite the file with smaller chunks (one slice per chunk, or none)",
            )
    layout = dataset.id.get_create_plist().get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        stored = int(dataset.id.get_storage_size())
        if stored < declared:
            raise DataError(
                f"'{dataset.name.lstrip('/')}' declares {dataset.shape} ({declared:,} bytes) but stores "
                f"{stored:,} bytes",
                path=path,
                hint="the file is truncated or was never completely written; copy or export it again",
            )
    elif layout == h5py.h5d.CHUNKED and dataset.chunks is not None:
        expected = math.prod(-(-int(n) // int(c)) for n, c in zip(dataset.shape, dataset.chunks))
        stored_chunks = int(dataset.id.get_num_chunks())
        if stored_chunks < expected:
            raise DataError(
                f"'{dataset.name.lstrip('/')}' declares {dataset.shape} but stores {stored_chunks:,} of its "
                f"{expected:,} chunks",
                path=path,
                hint="the file is truncated or was never completely written; copy or export it again",
            )
