"""``open_volume``: the one entry point that opens any supported input as a :class:`RawVolume`.

- fastMRI HDF5 (multi-/single-coil; Calgary-Campinas float layout): ``.h5``/``.hdf5`` with a
  ``kspace`` dataset; read lazily, slice by slice;
- ISMRMRD raw HDF5 (Cartesian): ``.h5``/``.hdf5`` with ``dataset/xml`` or ``dataset/data``;
  converted in memory;
- BART ``.cfl`` + ``.hdr`` (given as either): memory-mapped (3-D data decoupled in memory);
- NumPy ``.npy``: memory-mapped (3-D data decoupled in memory).

Inference, training and the converters read inputs only through :func:`open_volume`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mrirecon.data.arrays import open_npy
from mrirecon.data.bart import bart_pair, open_cfl
from mrirecon.data.fastmri import FastMRIVolume
from mrirecon.data.hdf5_inputs import open_hdf5
from mrirecon.data.ismrmrd_raw import Frame, is_ismrmrd_file, open_ismrmrd
from mrirecon.data.raw import RawVolume, kspace_energy
from mrirecon.errors import DataError, path_text

__all__ = [
    "HDF5_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "check_file_name",
    "is_ismrmrd_raw",
    "is_supported",
    "open_volume",
]

HDF5_SUFFIXES = (".h5", ".hdf5")
#: File suffixes :func:`open_volume` reads (a BART array is listed by its ``.cfl``).
SUPPORTED_SUFFIXES = (*HDF5_SUFFIXES, ".cfl", ".npy")


def is_supported(path: Path) -> bool:
    """Whether a path names a file :func:`open_volume` may read (by suffix; hidden files are not)."""
    return path.suffix.lower() in SUPPORTED_SUFFIXES and not path.name.startswith(".")


def check_file_name(path: str | os.PathLike[str]) -> None:
    """Refuse a file whose name is not valid UTF-8 (written in another encoding, e.g. Latin-1 on an
    SMB share): its outputs, reports, manifests and DICOM identifiers are text that must name it.

    Raises:
        DataError: naming the file with its undecodable bytes as ``\\xNN``.
    """
    if path_text(path) != os.fspath(path):
        raise DataError(
            "the file name is not valid UTF-8 (another encoding, e.g. Latin-1 from an SMB share): the "
            "outputs, reports and DICOM identifiers that name it cannot be written",
            path=path,
            hint="rename it in UTF-8 (e.g. `convmv -f latin1 -t utf8 --notest FILE`)",
        )


def is_ismrmrd_raw(path: Path) -> bool:
    """Whether an HDF5 file holds ISMRMRD raw data (and no fastMRI ``kspace``): what
    :func:`open_volume` converts.

    Raises:
        DataError: if it cannot be opened as HDF5.
    """
    with open_hdf5(path) as handle:
        return "kspace" not in handle and is_ismrmrd_file(handle)


def _reopen(path: str, npy_axes: str | None, centered: bool | None, frame: Frame | None = None) -> RawVolume:
    return open_volume(path, npy_axes=npy_axes, centered=centered, frame=frame)


def open_volume(
    path: str | Path, *, npy_axes: str | None = None, centered: bool | None = None, frame: Frame | None = None
) -> RawVolume:
    """Open any supported input (see the module docstring) as a volume of 2-D k-space slices.

    Args:
        path: The input file (a BART array by its ``.cfl`` or ``.hdr``).
        npy_axes: Axis order of a ``.npy`` array, e.g. ``"coils,kx,ky"`` or
            ``"slices,coils,kx,ky"`` (see :mod:`mrirecon.data.arrays`); ignored for other formats.
        centered: FFT convention of the stored k-space; ``None`` uses the file's own
            (``mrirecon_fft_centered``; uncentred for the Calgary-Campinas layout; centred otherwise).
            Pass ``False`` for Calgary-Campinas-style data stored uncentred.
        frame: The contrast, repetition, phase and set of an ISMRMRD raw file to take (default: the
            first of each); ignored for other formats.

    Returns:
        A :class:`~mrirecon.data.raw.RawVolume`; close it (or use ``with``) when done. It can be
        pickled: it reopens the file with the same options where it is unpickled.

    Raises:
        DataError: for a missing, unsupported, truncated or corrupt file, or content that does not
            make sense (see the readers).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".npy", *HDF5_SUFFIXES) and path.is_file() and path.stat().st_size == 0:
        raise DataError(
            "the file is empty (0 bytes)",
            path=path,
            hint="copy or export the scan again (an interrupted transfer?)",
        )
    volume: RawVolume
    arrays_centred = True if centered is None else centered  # NumPy and BART say nothing themselves
    if suffix in (".cfl", ".hdr"):
        volume = _stated(open_cfl(path, centered=arrays_centred), centered)
    elif suffix == ".npy":
        volume = _stated(open_npy(path, npy_axes=npy_axes, centered=arrays_centred), centered)
    elif suffix in HDF5_SUFFIXES:
        if is_ismrmrd_raw(path):
            if centered is False:
                raise DataError(
                    "ISMRMRD raw data are placed centred by the converter; centered=False does not apply",
                    path=path,
                )
            volume = open_ismrmrd(path, frame=frame)
        else:
            volume = FastMRIVolume(path, centered=centered)
    elif not path.exists() and not bart_pair(path)[1].exists():
        raise DataError("no such file", path=path)
    elif not path.suffix and bart_pair(path)[1].exists():
        volume = _stated(open_cfl(path, centered=arrays_centred), centered)
    else:
        raise DataError(
            f"unsupported file type '{path.suffix}'",
            path=path,
            hint=f"mrirecon reads {', '.join(SUPPORTED_SUFFIXES)} (fastMRI/ISMRMRD HDF5, BART, NumPy)",
        )
    volume._reopen = (_reopen, (str(path), npy_axes, centered, frame))
    return volume


#: How much more energy the corners of a slice's k-space must hold than its centre to look uncentred.
_UNCENTRED_RATIO = 10.0


def _stated(volume: RawVolume, centered: bool | None) -> RawVolume:
    """``volume`` (a NumPy or BART array, taken as centred unless ``centered`` says otherwise),
    refused when its convention was not given and its k-space looks uncentred.

    Real k-space holds its energy around the zero frequency: stored centred, in the middle of the
    array; stored uncentred (``np.fft.fft2`` without ``fftshift``, Calgary-Campinas), in the
    corners. Taken as centred, uncentred k-space gives a scrambled image, masks whose "centre"
    samples the highest frequencies, and garbage coil maps. The middle slice is checked: its
    corners (the quarter of the array that ``fftshift`` brings to the middle) holding ten times the
    energy of its middle is never centred MR data.

    Raises:
        DataError: the k-space looks uncentred (the hint converts it as such).
    """
    if centered is not None:
        return volume
    kspace = np.ascontiguousarray(volume.kspace_slice(volume.num_slices // 2), dtype=np.complex64)
    energy = kspace_energy(kspace, per_column=False).astype(np.float64)
    height, width = energy.shape
    rows, cols = slice(height // 4, height - height // 4), slice(width // 4, width - width // 4)
    middle = float(energy[rows, cols].sum())
    corners = float(np.fft.fftshift(energy)[rows, cols].sum())
    if corners > _UNCENTRED_RATIO * middle:
        volume.close()
        raise DataError(
            f"the k-space looks uncentred: its corners hold {corners / max(middle, 1e-300):.0f}× the "
            "energy of its middle (the zero frequency at the first sample, as np.fft.fft2 stores it), "
            "and NumPy and BART arrays are taken as centred",
            path=volume.path,
            hint=f"convert it as uncentred (`mrirecon convert {volume.path.name} -o "
            f"{volume.path.stem}.h5 --uncentered`) and reconstruct the .h5",
        )
    return volume
