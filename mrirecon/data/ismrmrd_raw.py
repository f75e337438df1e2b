"""ISMRMRD raw HDF5 (Cartesian) → the k-space layout mrirecon serves, in memory.

What the conversion does, in order:

1. The header (``dataset/xml``) is parsed; non-Cartesian trajectories are refused.
2. Every acquisition is sorted by its flags (read with the ``ismrmrd`` package): noise readouts
   (``ACQ_IS_NOISE_MEASUREMENT``) are kept aside for pre-whitening and never enter the k-space
   grid; navigators, phase-correction, dummy-scan and feedback readouts are dropped; parallel-
   imaging calibration lines (``ACQ_IS_PARALLEL_CALIBRATION``) of an embedded calibration are
   measured k-space and fill the grid where no imaging line was measured (those of a separate
   reference scan, and readouts of another encoding, are left out); reversed readouts
   (``ACQ_IS_REVERSE``) are flipped (``center_sample`` counts in the flipped, forward order);
   averages are averaged; one :class:`Frame` (contrast, repetition, phase, set) is taken; slice
   indices without readouts are left out.
3. Each line goes to its place in the encoded matrix: phase-encode line ``e1`` at
   ``e1 + (N_y/2 − center)`` from the encoding limits (partial Fourier: the lines never acquired
   stay exact zeros), readout samples centred on ``center_sample``.
4. Pre-whitening: with noise covariance Ψ (from the noise readouts, scaled by the ratio of the
   noise and imaging dwell times) and its Cholesky factor Ψ = L·Lᴴ, the coils are replaced by
   ``L⁻¹·y``: white noise of unit variance, uncorrelated between (virtual) coils.
5. Readout oversampling is removed in image space (inverse FFT along the readout, keep the
   reconstruction field of view, FFT back): 384 → 192 samples for the 2× oversampled test file.
6. 2-D data keep their line mask (the lines actually measured); 3-D data (a second phase encode)
   are split into 2-D slices along the readout with a 2-D mask.
7. The header is kept (identifiers for DICOM) with its encoding rewritten to describe the stored
   k-space; the acquisitions' positions and directions become the ``geometry/`` arrays.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import ismrmrd
import numpy as np
import torch

from mrirecon.data.cartesian import crop_readout, decouple_readout
from mrirecon.data.fastmri import MAX_HEADER_BYTES, check_stored, max_kspace_gb, stored_dataset
from mrirecon.data.header import AcquisitionHeader, EncodingLimits, parse_ismrmrd_header, rewrite_encoding
from mrirecon.data.raw import ArrayVolume
from mrirecon.errors import DataError, Notice
from mrirecon.masks import describe_mask, reduce_mask

__all__ = ["Frame", "IsmrmrdProbe", "is_ismrmrd_file", "open_ismrmrd", "probe_ismrmrd", "whitening_matrix"]

_DROP = (
    ismrmrd.ACQ_IS_NAVIGATION_DATA,
    ismrmrd.ACQ_IS_PHASECORR_DATA,
    ismrmrd.ACQ_IS_DUMMYSCAN_DATA,
    ismrmrd.ACQ_IS_RTFEEDBACK_DATA,
    ismrmrd.ACQ_IS_HPFEEDBACK_DATA,
    ismrmrd.ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA,
    ismrmrd.ACQ_IS_PHASE_STABILIZATION,
    ismrmrd.ACQ_IS_PHASE_STABILIZATION_REFERENCE,
)
_GEOMETRY = ("position", "read_dir", "phase_dir", "slice_dir", "patient_table_position")


def is_ismrmrd_file(handle: h5py.File, group: str = "dataset") -> bool:
    """Whether an open HDF5 file holds ISMRMRD raw data (``dataset/xml`` or ``dataset/data``)."""
    node = handle.get(group)
    return isinstance(node, h5py.Group) and ("data" in node or "xml" in node)


def whitening_matrix(noise: np.ndarray, *, scale: float = 1.0) -> np.ndarray:
    """The pre-whitening matrix ``L⁻¹`` of noise samples.

    Args:
        noise: ``(C, N)`` complex noise samples.
        scale: Factor applied to the covariance (the ratio of the noise readout's dwell time to
            the imaging readout's: noise power grows with the receiver bandwidth).

    Returns:
        ``(C, C)`` complex64 ``W`` with ``W·Ψ·Wᴴ = I`` for ``Ψ = scale · noise·noiseᴴ / N``.
    """
    samples = noise.shape[1]
    covariance = (noise @ noise.conj().T) / max(samples, 1) * scale
    covariance = covariance.astype(np.complex128)
    # a dead channel would make Ψ singular: a tiny ridge keeps the factorisation defined
    ridge = 1e-9 * float(np.real(np.trace(covariance))) / covariance.shape[0]
    lower = np.linalg.cholesky(covariance + ridge * np.eye(covariance.shape[0]))
    return np.linalg.inv(lower).astype(np.complex64)


class Frame(NamedTuple):
    """One frame of an ISMRMRD acquisition: the readouts sharing these four loop counters."""

    contrast: int = 0
    repetition: int = 0
    phase: int = 0
    set: int = 0

    def describe(self) -> str:
        return ", ".join(f"{name} {value}" for name, value in zip(self._fields, self, strict=True))

    def recorded(self) -> str:
        """The frame as reconstructions record it (attribute ``frame``): "" for the first of each
        (what a file of one frame gives), else :meth:`describe`."""
        return "" if self == Frame() else self.describe()


class _Readout(NamedTuple):
    """Where one imaging readout goes, and how to unpack it."""

    row: int
    slice: int
    y: int
    z: int
    calibration_only: bool
    reverse: bool
    discard_pre: int
    discard_post: int
    center_sample: int
    scan: int


@dataclass
class _Lines:
    """The readouts of a file, sorted (the samples stay in ``rows`` until they are gridded)."""

    rows: np.ndarray
    coils: int
    shape: tuple[int, int, int, int]  # slices, x, y, z
    readouts: list[_Readout]
    noise: list[np.ndarray] = field(default_factory=list)
    noise_dwell_us: float = 0.0
    dwell_us: float = 0.0
    geometry: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    dropped: int = 0
    other_frames: int = 0
    frames: set[Frame] = field(default_factory=set)
    separate_calibration: int = 0
    other_encodings: int = 0
    empty_slices: tuple[int, ...] = ()
    gridded: np.ndarray | None = None  # (S, C, X, Y, Z) once gridded, until the volume is made


def _samples(row: np.void, channels: int, samples: int, scan: int, path: Path) -> np.ndarray:
    data = np.asarray(row["data"])
    if data.size != 2 * channels * samples:
        raise DataError(
            f"acquisition {scan} holds {data.size} values, its header says {2 * channels * samples}",
            path=path,
        )
    return data.view(np.complex64).reshape(channels, samples)


def _place_readout(samples: np.ndarray, readout: _Readout, size_x: int, path: Path) -> np.ndarray:
    """The readout on the encoded x grid, centred on its echo (``center_sample``).

    Raises:
        DataError: if the kept samples, centred on ``center_sample``, do not fit the encoded matrix
            (a header whose ``encodedSpace`` x leaves the oversampling out, or a wrong echo sample).
    """
    if readout.reverse:
        samples = samples[:, ::-1]
    pre, post = readout.discard_pre, readout.discard_post
    samples = samples[:, pre : samples.shape[1] - post if post else None]
    line = np.zeros((samples.shape[0], size_x), dtype=np.complex64)
    start = size_x // 2 - (readout.center_sample - pre)
    if start < 0 or start + samples.shape[1] > size_x:
        raise DataError(
            f"acquisition {readout.scan} has {samples.shape[1]} readout samples (after discards) with "
            f"its echo at sample {readout.center_sample}: they do not fit the encoded matrix "
            f"({size_x} samples along x)",
            path=path,
            hint="encodedSpace/matrixSize/x must count the samples including readout oversampling, "
            "and center_sample must be the echo's sample; convert the raw data again",
        )
    line[:, start : start + samples.shape[1]] = samples
    return line


#: Calibration modes whose reference lines are a scan of their own (another contrast or timing):
#: never gridded into the imaging k-space.
_SEPARATE_CALIBRATION = ("separate", "external", "other")


def _sort(
    rows: np.ndarray,
    header: AcquisitionHeader,
    path: Path,
    frame: Frame,
    *,
    heads_only: bool = False,
) -> _Lines:
    """Sort the acquisitions (``rows`` of the table, or with ``heads_only`` their ``head`` column
    alone: noise readouts are then counted, not read)."""
    size_x, size_y, size_z = (max(n, 1) for n in header.encoded_matrix)
    off_y = size_y // 2 - header.e1_limits.center if header.e1_limits else 0
    off_z = size_z // 2 - header.e2_limits.center if header.e2_limits and size_z > 1 else 0
    separate = header.calibration_mode.strip().lower() in _SEPARATE_CALIBRATION
    lines = _Lines(rows=rows, coils=0, shape=(0, size_x, size_y, size_z), readouts=[])
    for number, row in enumerate(rows):
        acq = ismrmrd.Acquisition(row if heads_only else row["head"])
        channels, samples = int(acq.active_channels), int(acq.number_of_samples)
        if acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            if not heads_only:
                lines.noise.append(_samples(row, channels, samples, acq.scan_counter, path))
            lines.noise_dwell_us = float(acq.sample_time_us)
            continue
        if any(acq.is_flag_set(flag) for flag in _DROP):
            lines.dropped += 1
            continue
        if int(acq.encoding_space_ref) != 0:  # another <encoding> of the header (e.g. a reference scan)
            lines.other_encodings += 1
            continue
        calibration_only = acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) and not acq.is_flag_set(
            ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING
        )
        if calibration_only and separate:
            lines.separate_calibration += 1
            continue
        idx = acq.idx
        this = Frame(int(idx.contrast), int(idx.repetition), int(idx.phase), int(idx.set))
        lines.frames.add(this)
        if this != frame:
            lines.other_frames += 1
            continue
        if not lines.readouts:
            lines.coils, lines.dwell_us = channels, float(acq.sample_time_us)
        elif channels != lines.coils:
            raise DataError(
                f"acquisition {acq.scan_counter} has {channels} channels, earlier ones {lines.coils}",
                path=path,
            )
        y = int(idx.kspace_encode_step_1) + off_y
        z = int(idx.kspace_encode_step_2) + off_z if size_z > 1 else 0
        if not (0 <= y < size_y and 0 <= z < size_z):
            raise DataError(
                f"acquisition {acq.scan_counter} (line {idx.kspace_encode_step_1}, partition "
                f"{idx.kspace_encode_step_2}) falls outside the encoded matrix {size_y}×{size_z}",
                path=path,
                hint="the header's encoding limits do not match the data",
            )
        lines.readouts.append(
            _Readout(
                row=number,
                slice=int(idx.slice),
                y=y,
                z=z,
                calibration_only=calibration_only,
                reverse=acq.is_flag_set(ismrmrd.ACQ_IS_REVERSE),
                discard_pre=int(acq.discard_pre),
                discard_post=int(acq.discard_post),
                center_sample=int(acq.center_sample),
                scan=int(acq.scan_counter),
            )
        )
        if int(idx.slice) not in lines.geometry:
            lines.geometry[int(idx.slice)] = {
                name: np.asarray(getattr(acq, name), dtype=np.float64) for name in _GEOMETRY
            }
    if not lines.readouts:
        if lines.frames:
            ordered = sorted(lines.frames)
            present = "; ".join(f.describe() for f in ordered[:6])
            more = " ..." if len(ordered) > 6 else ""
            first = ",".join(f"{n}={v}" for n, v in zip(Frame._fields, ordered[0], strict=True) if v)
            raise DataError(
                f"the file holds no imaging readouts of {frame.describe()}; its frames are: {present}{more}",
                path=path,
                hint=f"choose one with --frame {first or 'contrast=0'} (NAME=N for contrast, repetition, "
                f"phase, set) of `mrirecon infer`/`batch`, or convert it: `mrirecon convert {path.name} "
                f"-o out.h5 --frame {first or 'contrast=0'}`",
            )
        raise DataError("the file holds no imaging readouts", path=path)
    _drop_empty_slices(lines)
    return lines


def _drop_empty_slices(lines: _Lines) -> None:
    """Number the slices that hold readouts 0, 1, …: a slice index without readouts (an aborted or
    filtered export) is left out, and said so (:attr:`_Lines.empty_slices`)."""
    present = sorted({r.slice for r in lines.readouts})
    lines.empty_slices = tuple(s for s in range(present[-1] + 1) if s not in set(present))
    if lines.empty_slices:
        index = {s: i for i, s in enumerate(present)}
        lines.readouts = [r._replace(slice=index[r.slice]) for r in lines.readouts]
        lines.geometry = {index[s]: g for s, g in lines.geometry.items() if s in index}
    _, size_x, size_y, size_z = lines.shape
    lines.shape = (len(present), size_x, size_y, size_z)


def _grid(lines: _Lines, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(S, C, X, Y, Z)`` k-space (averages averaged) and bool ``(S, Y, Z)`` measured positions.

    Imaging lines first; calibration-only lines fill the positions no imaging line measured.
    """
    slices, size_x, size_y, size_z = lines.shape
    declared = slices * lines.coils * size_x * size_y * size_z * 8
    limit_gb = max_kspace_gb()
    if declared > limit_gb * 2**30:
        raise DataError(
            f"the header's encoded matrix {size_x}×{size_y}×{size_z} with {slices} slice(s) of "
            f"{lines.coils} coils needs {declared / 2**30:.0f} GiB, more than the {limit_gb:g} GiB "
            "mrirecon reads from one file",
            path=path,
            hint="check encodedSpace/matrixSize in the header; set MRIRECON_MAX_KSPACE_GB to allow more",
        )
    kspace = np.zeros((slices, lines.coils, size_x, size_y, size_z), dtype=np.complex64)
    counts = np.zeros((slices, size_y, size_z), dtype=np.int32)
    for calibration in (False, True):
        imaging_measured = counts > 0
        for readout in lines.readouts:
            if readout.calibration_only != calibration:
                continue
            position = (readout.slice, readout.y, readout.z)
            if calibration and imaging_measured[position]:
                continue
            row = lines.rows[readout.row]
            head = row["head"]
            samples = _samples(row, lines.coils, int(head["number_of_samples"]), readout.row, path)
            kspace[readout.slice, :, :, readout.y, readout.z] += _place_readout(
                samples, readout, size_x, path
            )
            counts[position] += 1
    repeated = counts > 1
    if repeated.any():
        scale = np.where(repeated, 1.0 / np.maximum(counts, 1), 1.0).astype(np.float32)
        kspace *= scale[:, None, None]
    return kspace, counts > 0


def _prewhiten(kspace: np.ndarray, lines: _Lines, path: Path) -> np.ndarray | None:
    if not lines.noise:
        return None
    if len({n.shape[0] for n in lines.noise}) != 1 or lines.noise[0].shape[0] != lines.coils:
        raise DataError(
            f"the noise readouts have {sorted({n.shape[0] for n in lines.noise})} channels, "
            f"the imaging data {lines.coils}",
            path=path,
        )
    noise = np.concatenate(lines.noise, axis=1)
    scale = lines.noise_dwell_us / lines.dwell_us if lines.noise_dwell_us > 0 and lines.dwell_us > 0 else 1.0
    matrix = whitening_matrix(noise, scale=scale)
    for index in range(kspace.shape[0]):  # slice by slice: one slice's temporary, not the volume's
        kspace[index] = np.einsum("dc,c...->d...", matrix, kspace[index])
    return matrix


def _line_mask(measured: np.ndarray, keep: int, size_y: int, path: Path) -> np.ndarray | None:
    """The line mask of 2-D data (``measured`` ``(S, Y, 1)``) on the ``(keep, Y)`` grid served, or
    None when fully sampled.

    Raises:
        DataError: if the slices were sampled with different lines.
    """
    if not (measured == measured[:1]).all():
        raise DataError("slices were sampled with different lines; mrirecon needs one mask", path=path)
    mask, _ = reduce_mask(np.broadcast_to(measured[0, :, 0][None, :], (keep, size_y)))
    return mask


def _one_slab(lines: _Lines, path: Path) -> None:
    """3-D data are served from one slab.

    Raises:
        DataError: for several.
    """
    if lines.shape[0] > 1:
        raise DataError("3-D data with several slabs is not supported", path=path)


def _crop_slices(kspace: np.ndarray, keep: int) -> np.ndarray:
    """:func:`crop_readout` of ``(S, C, X, Y)`` slice by slice into one new array (the volume-wide
    call held several volume-sized temporaries)."""
    if keep >= kspace.shape[-2]:
        return kspace
    out = np.empty((*kspace.shape[:-2], keep, kspace.shape[-1]), dtype=np.complex64)
    for index in range(kspace.shape[0]):
        out[index] = crop_readout(torch.from_numpy(kspace[index]), keep).numpy()
    return out


def _geometry_2d(lines: _Lines, header: AcquisitionHeader) -> dict[str, Any] | None:
    if len(lines.geometry) != lines.shape[0]:
        return None
    out: dict[str, Any] = {
        name: np.stack([lines.geometry[s][name] for s in range(lines.shape[0])]) for name in _GEOMETRY
    }
    out["field_of_view_mm"] = np.asarray(header.recon_fov_mm, dtype=np.float64)
    matrix_z = max(header.encoded_matrix[2], 1)
    if header.encoded_fov_mm[2] > 0:
        out["slice_thickness_mm"] = header.encoded_fov_mm[2] / matrix_z
    return out


def _geometry_3d(lines: _Lines, header: AcquisitionHeader, keep: int) -> dict[str, Any] | None:
    """Slices along the readout: rows run along the phase encode, columns along the partitions."""
    if 0 not in lines.geometry or header.recon_fov_mm[0] <= 0:
        return None
    first = lines.geometry[0]
    spacing = header.recon_fov_mm[0] / keep
    offsets = (np.arange(keep) - keep // 2) * spacing
    position = first["position"][None, :] + offsets[:, None] * first["read_dir"][None, :]
    tile = lambda v: np.repeat(v[None, :], keep, axis=0)  # noqa: E731
    return {
        "position": position,
        "read_dir": tile(first["phase_dir"]),
        "phase_dir": tile(first["slice_dir"]),
        "slice_dir": tile(first["read_dir"]),
        "patient_table_position": tile(first["patient_table_position"]),
        "field_of_view_mm": np.asarray((header.recon_fov_mm[1], header.recon_fov_mm[2], spacing)),
        "slice_thickness_mm": spacing,
    }


def _readout_keep(header: AcquisitionHeader) -> int:
    size_x = header.encoded_matrix[0]
    enc_fov, rec_fov = header.encoded_fov_mm[0], header.recon_fov_mm[0]
    if enc_fov > 0 and rec_fov > 0:
        return max(1, min(size_x, round(size_x * rec_fov / enc_fov)))
    return max(1, min(size_x, header.recon_matrix[0] or size_x))


def _attrs(
    header: AcquisitionHeader, path: Path, lines: _Lines, mask: np.ndarray | None, frame: Frame
) -> dict[str, Any]:
    note = f"ISMRMRD {path.name}: {len(lines.readouts)} readouts"
    if lines.noise:
        note += f", {len(lines.noise)} noise readout(s) used for pre-whitening"
    if lines.dropped:
        note += f", {lines.dropped} navigator/correction readouts dropped"
    said: list[str] = []
    if lines.other_frames:
        note += f", {lines.other_frames} readouts of other contrasts/repetitions/phases/sets left out"
        said.append(
            f"{lines.other_frames} readouts belong to other frames ({len(lines.frames)} in the file); "
            f"only {frame.describe()} is reconstructed ({len(lines.readouts)} readouts; choose another "
            "with --frame of convert, infer or batch)"
        )
    if lines.separate_calibration:
        note += f", {lines.separate_calibration} lines of a separate reference scan left out"
        said.append(
            f"{lines.separate_calibration} calibration lines of a separate reference scan "
            f"(calibrationMode {header.calibration_mode}) are left out: their contrast is not the "
            "imaging data's; coil maps come from the imaging data"
        )
    if lines.other_encodings:
        note += f", {lines.other_encodings} readouts of other encodings left out"
        said.append(
            f"{lines.other_encodings} readouts belong to another encoding of the header "
            "(encoding_space_ref > 0, e.g. a reference scan) and are left out"
        )
    if lines.empty_slices:
        shown = ", ".join(str(s) for s in lines.empty_slices[:8]) + (
            " ..." if len(lines.empty_slices) > 8 else ""
        )
        note += f", slice(s) {shown} without readouts left out"
        said.append(
            f"slice index(es) {shown} hold no readouts (an aborted or filtered export) and are left "
            f"out; the volume has the {lines.shape[0]} slices that do"
        )
    for text in said:
        warnings.warn(Notice(f"{path.name}: {text}"), stacklevel=3)
    attrs: dict[str, Any] = {
        "acquisition": header.protocol_name or header.sequence_type,
        "mrirecon_source": note,
        "mrirecon_prewhitened": bool(lines.noise),
    }
    if header.patient_id:
        attrs["patient_id"] = header.patient_id
    if mask is not None:
        info = describe_mask(mask)
        attrs["acceleration"] = round(info.acceleration, 2)
        attrs["num_low_frequency"] = info.num_low_frequencies
    return attrs


def _check_layout(path: Path, group: str) -> None:
    """The ISMRMRD layout the reader relies on: ``xml`` a one-element string dataset, ``data`` a
    table of acquisitions (compound rows with ``head`` and ``data``); either may be missing (the
    reader reports that)."""
    try:
        with h5py.File(path, "r") as handle:
            for name in ("xml", "data"):  # held by the file itself: no links, no external storage
                if f"{group}/{name}" in handle:
                    dataset = stored_dataset(handle, f"{group}/{name}", path)
                    if name == "data":
                        check_stored(dataset, path)
                    elif dataset.size > 1 or dataset.dtype.itemsize > MAX_HEADER_BYTES:
                        raise DataError(
                            f"'{group}/xml' declares {dataset.shape} × {dataset.dtype}", path=path
                        )
            xml, data = handle.get(f"{group}/xml"), handle.get(f"{group}/data")
            if xml is not None and (
                not isinstance(xml, h5py.Dataset)
                or xml.ndim != 1
                or xml.size < 1
                or (h5py.check_string_dtype(xml.dtype) is None and xml.dtype.kind not in "SO")
            ):
                raise DataError(
                    f"'{group}/xml' must hold the XML header as a one-element string dataset, found {xml}",
                    path=path,
                )
            names = getattr(getattr(data, "dtype", None), "names", None) or ()
            if data is not None and not (isinstance(data, h5py.Dataset) and {"head", "data"} <= set(names)):
                raise DataError(
                    f"'{group}/data' must be a table of ISMRMRD acquisitions (head, traj, data), "
                    f"found {data}",
                    path=path,
                )
    except OSError as error:
        raise DataError(f"cannot open the ISMRMRD file: {error}", path=path) from error


def open_ismrmrd(path: str | Path, *, frame: Frame | None = None, group: str = "dataset") -> ArrayVolume:
    """Convert an ISMRMRD raw file in memory (see the module docstring).

    Args:
        path: The ``.h5`` file.
        frame: Which contrast (echo), repetition, phase and set to take when there are several
            (default: the first of each).
        group: The HDF5 group of the dataset.

    Returns:
        An :class:`~mrirecon.data.raw.ArrayVolume` ``(S, C, H, W)``: H the readout (oversampling
        removed), W the phase encode; with its mask when undersampled.

    Raises:
        DataError: unreadable file or header, non-Cartesian data, readouts outside the matrix, no
            readout of ``frame``.
    """
    path = Path(path)
    xml_text, header = _read_header(path, group)
    try:
        with h5py.File(path, "r") as handle:
            rows = handle[f"{group}/data"][()]
    except (OSError, KeyError) as error:
        raise DataError(f"cannot read the acquisitions: {error}", path=path) from error
    frame = frame or Frame()
    lines = _sort(rows, header, path, frame)
    lines.gridded, measured = _grid(lines, path)  # held by lines alone: _volume lets it go
    lines.rows = np.empty(0, dtype=rows.dtype)  # the raw table is gridded: free it
    del rows
    return _volume(path, xml_text, header, lines, measured, frame)


@dataclass
class IsmrmrdProbe:
    """What planning needs of an ISMRMRD raw file, read from its header and the acquisitions'
    headers alone (no sample is read: a 1 GB file is probed in a second, not converted in 20).

    The fields are those of the volume :func:`open_ismrmrd` serves (``tests`` check them equal).
    """

    path: Path
    num_slices: int
    kspace_shape: tuple[int, int, int]
    crop_size: tuple[int, int]
    mask: np.ndarray | None
    centered: bool = True
    attrs: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        """Nothing is held open."""


def probe_ismrmrd(path: str | Path, *, frame: Frame | None = None, group: str = "dataset") -> IsmrmrdProbe:
    """The shape, crop and mask of what :func:`open_ismrmrd` would serve, without converting.

    Raises:
        DataError: as :func:`open_ismrmrd` for the header and the acquisitions' headers.
    """
    path = Path(path)
    _, header = _read_header(path, group)
    try:
        with h5py.File(path, "r") as handle:
            heads = handle[f"{group}/data"]["head"]  # the head column alone: no samples read
    except (OSError, KeyError, ValueError) as error:
        raise DataError(f"cannot read the acquisitions: {error}", path=path) from error
    lines = _sort(heads, header, path, frame or Frame(), heads_only=True)
    slices, _, size_y, size_z = lines.shape
    measured = np.zeros((slices, size_y, size_z), dtype=bool)
    for readout in lines.readouts:
        measured[readout.slice, readout.y, readout.z] = True
    keep = _readout_keep(header)
    enc_y, enc_z = (max(n, 1) for n in header.encoded_matrix[1:])
    rec_x, rec_y, rec_z = (max(n, 1) for n in header.recon_matrix)
    if enc_z == 1:
        mask = _line_mask(measured, keep, enc_y, path)
        num_slices, shape, crop = slices, (lines.coils, keep, enc_y), (rec_x, rec_y)
    else:
        _one_slab(lines, path)
        mask, _ = reduce_mask(measured[0])
        num_slices, shape, crop = keep, (lines.coils, enc_y, enc_z), (rec_y, rec_z)
    return IsmrmrdProbe(path, num_slices, shape, (min(crop[0], shape[1]), min(crop[1], shape[2])), mask)


def _read_header(path: Path, group: str) -> tuple[str, AcquisitionHeader]:
    """The checked layout, the XML text and the parsed header of a Cartesian ISMRMRD file."""
    _check_layout(path, group)
    try:
        with ismrmrd.Dataset(str(path), group, create_if_needed=False, mode="r") as dataset:
            xml = dataset.read_xml_header()
            dataset.number_of_acquisitions()
    except LookupError as error:
        raise DataError(f"not a complete ISMRMRD file: {error}", path=path) from error
    except OSError as error:
        raise DataError(f"cannot open the ISMRMRD file: {error}", path=path) from error
    xml_text = xml.decode("utf-8", "replace") if isinstance(xml, bytes) else str(xml)
    header = parse_ismrmrd_header(xml_text, source=path)
    if header.trajectory.lower() != "cartesian":
        raise DataError(
            f"the trajectory is {header.trajectory}; mrirecon converts Cartesian data only", path=path
        )
    return xml_text, header


def _volume(
    path: Path,
    xml_text: str,
    header: AcquisitionHeader,
    lines: _Lines,
    measured: np.ndarray,
    frame: Frame,
) -> ArrayVolume:
    """The gridded k-space (``lines.gridded``, taken from it) as the volume :func:`open_ismrmrd`
    serves (steps 4-7 of the module docstring)."""
    kspace, lines.gridded = lines.gridded, None
    assert kspace is not None
    _prewhiten(kspace, lines, path)
    keep = _readout_keep(header)
    enc_x, enc_y, enc_z = (max(n, 1) for n in header.encoded_matrix)
    rec_x, rec_y, rec_z = (max(n, 1) for n in header.recon_matrix)
    enc_fov, rec_fov = header.encoded_fov_mm, header.recon_fov_mm
    if enc_z == 1:
        mask = _line_mask(measured, keep, enc_y, path)
        data = _crop_slices(kspace[..., 0], keep)
        del kspace
        xml_out = rewrite_encoding(
            xml_text,
            encoded_matrix=(keep, enc_y, enc_z),
            encoded_fov_mm=(enc_fov[0] * keep / enc_x, enc_fov[1], enc_fov[2]),
            recon_matrix=(rec_x, rec_y, rec_z),
            recon_fov_mm=rec_fov,
            source=path,
        )
        geometry = _geometry_2d(lines, header)
    else:
        _one_slab(lines, path)
        slabs, sampled = decouple_readout(kspace[0], path=path, partial_readout=True)
        start = enc_x // 2 - keep // 2  # the centre sample enc_x // 2 lands on keep // 2
        data = np.ascontiguousarray(slabs[start : start + keep])
        mask, _ = reduce_mask(sampled)
        spacing = rec_fov[0] / keep if rec_fov[0] > 0 else 1.0
        e2 = header.e2_limits or EncodingLimits(0, enc_z - 1, enc_z // 2)
        xml_out = rewrite_encoding(
            xml_text,
            encoded_matrix=(enc_y, enc_z, 1),
            encoded_fov_mm=(enc_fov[1], enc_fov[2], spacing),
            recon_matrix=(rec_y, rec_z, 1),
            recon_fov_mm=(rec_fov[1], rec_fov[2], spacing),
            e1_limits=e2,
            e2_limits=EncodingLimits(0, 0, 0),
            source=path,
        )
        geometry = _geometry_3d(lines, header, keep)
    new_header = parse_ismrmrd_header(xml_out, source=path)
    attrs = _attrs(header, path, lines, mask, frame)
    if enc_z > 1:
        attrs["mrirecon_decoupled_3d"] = True
    return ArrayVolume(
        path,
        data,
        mask=mask,
        header=new_header,
        header_xml=xml_out,
        centered=True,
        attrs=attrs,
        geometry=geometry,
    )
