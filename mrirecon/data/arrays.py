"""Volumes from plain k-space arrays: NumPy ``.npy`` files with a stated axis order, and the shared
step that turns any array (NumPy, BART) into a :class:`~mrirecon.data.raw.ArrayVolume`.

Axis names for ``.npy`` files (``npy_axes``, comma-separated, one per array axis):

- ``kx``: the readout (fully sampled); becomes H, the rows;
- ``ky``: the first phase encode; becomes W, the columns (where line masks sample);
- ``kz``: a second phase encode: the data are 3-D and are split into 2-D slices along ``kx``
  (:func:`mrirecon.data.cartesian.decouple_readout`), each slice ``(C, ky, kz)``;
- ``coils`` and ``slices``: optional.

Defaults: a 2-D array is ``kx,ky`` (one coil, one slice) and a 3-D array ``coils,kx,ky`` (the
layout of SigPy and of the tutorial data); anything else must be stated, since
``slices,coils,kx,ky`` and ``coils,kx,ky,kz`` cannot be told apart from the shape.

Undersampled input keeps its own mask, recovered from its exact zeros (a location is sampled when
any coil of any slice is non-zero there). Fully sampled data surrounded by never-acquired zero
columns (zero padding, partial Fourier) count as fully sampled, with those columns as padding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mrirecon.data.cartesian import decouple_readout
from mrirecon.data.hdf5_inputs import check_kspace_size
from mrirecon.data.raw import ArrayVolume, memory_maps_enabled
from mrirecon.errors import DataError
from mrirecon.masks import describe_mask, reduce_mask, sampled_locations

__all__ = ["AXIS_NAMES", "open_npy", "parse_axes", "volume_from_3d", "volume_from_slices"]

AXIS_NAMES = ("slices", "coils", "kx", "ky", "kz")
_DEFAULT_AXES = {2: ("kx", "ky"), 3: ("coils", "kx", "ky")}
#: Axis orders to suggest for an array of each rank.
_EXAMPLES = {
    2: "e.g. --npy-axes kx,ky (one coil, one slice)",
    3: "e.g. --npy-axes coils,kx,ky or --npy-axes slices,kx,ky (one coil)",
    4: "e.g. --npy-axes slices,coils,kx,ky or --npy-axes coils,kx,ky,kz",
    5: "e.g. --npy-axes slices,coils,kx,ky,kz (3-D data of one slice)",
}


def parse_axes(text: str | None, ndim: int, *, path: Path | None = None) -> tuple[str, ...]:
    """The axis names of an array of rank ``ndim`` (see the module docstring).

    Raises:
        DataError: unknown or repeated names, a count that differs from ``ndim``, no ``kx``/``ky``,
            a rank outside 2-5, or no default for this rank.
    """
    if ndim not in _EXAMPLES:
        raise DataError(
            f"the array has {ndim} axes; k-space arrays have 2 to 5 ({', '.join(AXIS_NAMES)})",
            path=path,
            hint="save the k-space alone, with its other axes (echoes, time...) sliced away",
        )
    hint = _EXAMPLES[ndim]
    if text is None:
        if ndim not in _DEFAULT_AXES:
            raise DataError(
                f"the array has {ndim} axes and their order is ambiguous; state it with npy_axes "
                f"(names: {', '.join(AXIS_NAMES)})",
                path=path,
                hint=hint,
            )
        return _DEFAULT_AXES[ndim]
    axes = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    unknown = [name for name in axes if name not in AXIS_NAMES]
    if unknown:
        raise DataError(
            f"unknown axis name(s) {', '.join(unknown)} in '{text}'; use {', '.join(AXIS_NAMES)}",
            path=path,
            hint=hint,
        )
    if len(set(axes)) != len(axes):
        raise DataError(f"axis names repeat in '{text}'", path=path, hint=hint)
    if len(axes) != ndim:
        raise DataError(f"'{text}' names {len(axes)} axes but the array has {ndim}", path=path, hint=hint)
    if "kx" not in axes or "ky" not in axes:
        raise DataError(f"'{text}' must name the readout kx and the phase encode ky", path=path, hint=hint)
    return axes


def _drop_singletons(
    array: np.ndarray, axes: tuple[str, ...], path: Path
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Drop a ``kz`` of one sample (the data are 2-D, as BART's phase encode 2 of size 1) and, with
    ``kz``, ``slices`` of one slice (3-D data of one slab); refuse several slabs.

    Returns:
        The array (a view) and its remaining axis names.
    """
    for name in ("kz", "slices"):
        if name in axes and "kz" in axes and array.shape[axes.index(name)] == 1:
            index = axes.index(name)
            array = array[(slice(None),) * index + (0,)]
            axes = axes[:index] + axes[index + 1 :]
    if "slices" in axes and "kz" in axes:
        raise DataError(
            f"3-D data (kz) with several slices (multi-slab, {array.shape[axes.index('slices')]}) "
            "is not supported",
            path=path,
            hint="give one slab at a time",
        )
    return array, axes


def _prospective_attrs(mask: np.ndarray) -> dict[str, Any]:
    info = describe_mask(mask)
    return {
        "acceleration": round(info.acceleration, 2),
        "num_low_frequency": info.num_low_frequencies,
        "mrirecon_mask_recovered": True,
    }


def volume_from_slices(
    path: Path, kspace: np.ndarray, *, centered: bool = True, attrs: dict[str, Any] | None = None
) -> ArrayVolume:
    """A volume from 2-D slices ``(S, C, H, W)``, with the mask recovered from the exact zeros."""
    mask, padding = reduce_mask(sampled_locations(kspace, path=path))
    extra = dict(attrs or {})
    if mask is not None:
        extra.update(_prospective_attrs(mask))
    return ArrayVolume(path, kspace, mask=mask, centered=centered, attrs=extra, padding=padding)


def volume_from_3d(
    path: Path, kspace: np.ndarray, *, centered: bool = True, attrs: dict[str, Any] | None = None
) -> ArrayVolume:
    """A volume from 3-D k-space ``(C, X, Y, Z)``, split into X slices ``(C, Y, Z)`` with a 2-D mask."""
    slices, sampled = decouple_readout(kspace, centered=centered, path=path)
    mask, padding = reduce_mask(sampled)
    extra = dict(attrs or {})
    extra["mrirecon_decoupled_3d"] = True
    if mask is not None:
        extra.update(_prospective_attrs(mask))
    return ArrayVolume(path, slices, mask=mask, centered=centered, attrs=extra, padding=padding)


def _check_npy_size(path: Path) -> None:
    """A ``.npy`` file must hold the data its header declares (a truncated file would make NumPy
    allocate the declared size, or fail with a MemoryError), at most ``MRIRECON_MAX_KSPACE_GB``."""
    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read(handle)
            offset = handle.tell()
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"cannot read the file as a NumPy array: {error}", path=path) from error
    if dtype.hasobject:
        return  # np.load refuses it (no pickles)
    declared = math.prod(int(n) for n in shape) * dtype.itemsize  # Python ints: no overflow
    held = path.stat().st_size - offset
    if held < declared:
        raise DataError(
            f"the header declares {shape} {dtype} ({declared:,} bytes) and the file holds {held:,}",
            path=path,
            hint="copy or save the file again (an interrupted transfer truncates it)",
        )
    check_kspace_size(declared, f"the array declares {tuple(shape)} {dtype}", path)


#: More coils than this and than a spatial axis has samples: the axis order is wrong.
_MOST_COILS = 64


def _check_coil_count(shape: tuple[int, ...], axes: Sequence[str], path: Path) -> None:
    """Refuse an axis order that makes a spatial axis the coils (``kx,ky,coils`` given for
    ``coils,kx,ky`` data: 180 "coils" of 8 × 230, every location sampled by some coil, so the mask
    was lost and the image was nonsense)."""
    if "coils" not in axes:
        return
    coils = shape[axes.index("coils")]
    spatial = [shape[axes.index(name)] for name in ("kx", "ky", "kz") if name in axes]
    if coils > _MOST_COILS and coils > min(spatial):
        raise DataError(
            f"the axes {','.join(axes)} give {coils} coils and a spatial axis of {min(spatial)} samples: "
            "the axis order looks wrong",
            path=path,
            hint=f"give the array's axis order with --npy-axes (the array's shape is {tuple(shape)}), "
            "e.g. coils,kx,ky",
        )


def open_npy(path: str | Path, *, npy_axes: str | None = None, centered: bool = True) -> ArrayVolume:
    """Open a NumPy ``.npy`` k-space array (memory-mapped; 3-D data are decoupled in memory).

    Args:
        path: The ``.npy`` file, complex.
        npy_axes: The axis order (module docstring); default by rank.
        centered: FFT convention of the data.

    Raises:
        DataError: missing or unreadable file, real dtype, ambiguous or wrong axis order.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path=path)
    _check_npy_size(path)
    try:
        array = np.load(path, mmap_mode="r" if memory_maps_enabled() else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:  # EOFError: an empty file
        raise DataError(f"cannot read the file as a NumPy array: {error}", path=path) from error
    if not np.iscomplexobj(array):
        raise DataError(
            f"the array has dtype {array.dtype}; k-space must be complex",
            path=path,
            hint="save complex64 k-space (real + 1j·imaginary)",
        )
    if array.size == 0:
        raise DataError(f"the array is empty (shape {array.shape})", path=path)
    axes = parse_axes(npy_axes, array.ndim, path=path)
    array, axes = _drop_singletons(array, axes, path)
    _check_coil_count(array.shape, axes, path)
    attrs = {"mrirecon_source": f"NumPy {path.name}, axes {','.join(axes)}"}
    if "kz" in axes:
        order = [axes.index(name) for name in ("coils", "kx", "ky", "kz") if name in axes]
        data = np.transpose(array, order)
        if "coils" not in axes:
            data = data[None]
        return volume_from_3d(path, np.asarray(data), centered=centered, attrs=attrs)
    order = [axes.index(name) for name in ("slices", "coils", "kx", "ky") if name in axes]
    data = np.transpose(array, order)  # a lazy view of the memory map
    if "coils" not in axes:
        data = np.expand_dims(data, 1 if "slices" in axes else 0)
    if "slices" not in axes:
        data = data[None]
    return volume_from_slices(path, data, centered=centered, attrs=attrs)
