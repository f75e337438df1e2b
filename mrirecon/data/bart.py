"""BART ``.cfl``/``.hdr`` k-space: read (memory-mapped) and write.

A BART array is two files: ``NAME.hdr`` (text: a ``# Dimensions`` line, then the sizes) and
``NAME.cfl`` (complex64 samples in column-major order). BART's axes are fixed: 0 readout, 1 phase
encode 1, 2 phase encode 2, 3 coils, 13 slices (others: maps, echoes, time... must be 1 here).
mrirecon serves the readout as H and phase encode 1 as W; with phase encode 2 larger than 1 the
data are 3-D and are split into 2-D slices along the readout
(:func:`mrirecon.data.cartesian.decouple_readout`). BART's FFT is centred, as mrirecon's.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mrirecon.data.arrays import volume_from_3d, volume_from_slices
from mrirecon.data.hdf5_inputs import check_kspace_size
from mrirecon.data.raw import ArrayVolume, memory_maps_enabled
from mrirecon.errors import DataError

__all__ = ["BART_AXES", "bart_pair", "open_cfl", "read_cfl", "write_cfl"]

#: BART's names of its first 16 axes.
BART_AXES = (
    "readout",
    "phase 1",
    "phase 2",
    "coils",
    "maps",
    "echoes",
    "coefficients",
    "coefficients 2",
    "iterations",
    "cardiac/shift",
    "time",
    "time 2",
    "level",
    "slices",
    "averages",
    "batch",
)
_SUPPORTED = {0, 1, 2, 3, 13}


def bart_pair(path: str | Path) -> tuple[Path, Path]:
    """``(NAME.hdr, NAME.cfl)`` for a path given as ``NAME``, ``NAME.cfl`` or ``NAME.hdr``.

    Dots inside ``NAME`` stay (``scan.2024`` pairs ``scan.2024.hdr`` with ``scan.2024.cfl``). The
    suffixes take the case of the one given (``U2.CFL`` pairs ``U2.HDR``); a partner that exists
    only in the other case is taken as it is.
    """
    path = Path(path)
    upper = False
    base = path
    if path.suffix.lower() in (".cfl", ".hdr"):
        base, upper = path.with_suffix(""), path.suffix.isupper()

    def partner(suffix: str) -> Path:
        wanted = base.with_name(base.name + (suffix.upper() if upper else suffix))
        other = base.with_name(base.name + (suffix if upper else suffix.upper()))
        return other if not wanted.exists() and other.exists() else wanted

    return partner(".hdr"), partner(".cfl")


def _read_dims(header: Path) -> tuple[int, ...]:
    """The ``# Dimensions`` of a BART header, read as BART reads it: the sizes on the lines after
    the keyword (or on its own line), blank lines skipped; other ``#`` sections (``# Command``,
    which may hold file names in any encoding) are ignored."""
    try:
        # the sizes are ASCII; a command line or file name in another encoding must not stop it
        lines = header.read_bytes().decode("ascii", errors="replace").splitlines()
    except OSError as error:
        raise DataError(f"cannot read the BART header: {error}", path=header) from error
    found: list[tuple[int, ...]] = []
    for number, line in enumerate(lines):
        text = line.strip()
        if not (text.startswith("#") and text[1:].strip().startswith("Dimensions")):
            continue
        values = text[1:].strip()[len("Dimensions") :].split()
        following = (other.strip() for other in lines[number + 1 :])
        if not values:
            values = next((other for other in following if other), "").split()
        if not values or values[0].startswith("#"):
            break
        try:
            dims = tuple(int(v) for v in values)
        except ValueError as error:
            raise DataError(f"the '# Dimensions' line is not integers: {error}", path=header) from error
        if not all(d >= 1 for d in dims):
            break
        found.append(dims)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise DataError("the BART header has more than one '# Dimensions' section", path=header)
    raise DataError("the BART header has no valid '# Dimensions' line", path=header)


def read_cfl(path: str | Path) -> np.ndarray:
    """A BART array as a read-only memory map with BART's (column-major) axis order.

    Raises:
        DataError: missing ``.hdr``/``.cfl``, a bad header, or a ``.cfl`` of the wrong size.
    """
    header, data = bart_pair(path)
    for part in (header, data):
        if not part.is_file():
            raise DataError(f"the BART {part.suffix} file is missing", path=part)
    dims = _read_dims(header)
    expected = math.prod(int(n) for n in dims) * 8  # Python ints: a huge header cannot wrap round
    size = data.stat().st_size
    if size != expected:
        raise DataError(
            f"the .cfl holds {size} bytes but the header's dimensions {dims} need {expected}",
            path=data,
            hint="the file is truncated, or the .hdr belongs to another array",
        )
    check_kspace_size(expected, f"the header declares {dims}", header)
    if not memory_maps_enabled():
        return np.fromfile(data, dtype=np.complex64).reshape(dims, order="F")
    return np.memmap(data, dtype=np.complex64, mode="r", shape=dims, order="F")


def write_cfl(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` (BART axis order) as ``NAME.hdr`` + ``NAME.cfl``; returns the ``.cfl`` path."""
    header, data = bart_pair(path)
    array = np.asarray(array, dtype=np.complex64)
    header.write_text("# Dimensions\n" + " ".join(str(n) for n in array.shape) + "\n")
    np.asfortranarray(array).reshape(-1, order="F").tofile(data)
    return data


def open_cfl(path: str | Path, *, centered: bool = True) -> ArrayVolume:
    """Open BART k-space as a volume (see the module docstring).

    Raises:
        DataError: unreadable files, or axes other than readout, phase 1/2, coils and slices used.
    """
    _, data = bart_pair(path)
    array = read_cfl(path)
    dims = array.shape + (1,) * max(0, 16 - array.ndim)
    extra = [
        f"{BART_AXES[i] if i < 16 else i} ({n})" for i, n in enumerate(dims) if n > 1 and i not in _SUPPORTED
    ]
    if extra:
        raise DataError(
            f"the BART array uses axes mrirecon does not serve: {', '.join(extra)}",
            path=data,
            hint="keep readout, phase encodes, coils and slices (e.g. `bart slice` the others away)",
        )
    full = array.reshape(dims[:16], order="F")  # a view: trailing axes are 1
    attrs = {"mrirecon_source": f"BART {data.name}"}
    if dims[2] > 1:
        if dims[13] > 1:
            raise DataError("3-D data with several slices (multi-slab) is not supported", path=data)
        kspace3d = np.transpose(full[:, :, :, :, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], (3, 0, 1, 2))
        return volume_from_3d(data, np.asarray(kspace3d), centered=centered, attrs=attrs)
    # (RO, PE1, coils, slices) -> (slices, coils, RO, PE1), a lazy view of the memory map
    planes = full[:, :, 0, :, 0, 0, 0, 0, 0, 0, 0, 0, 0, :, 0, 0]
    return volume_from_slices(data, np.transpose(planes, (3, 2, 0, 1)), centered=centered, attrs=attrs)
