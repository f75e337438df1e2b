"""ISMRMRD acquisitions → sorted readouts → gridded k-space (steps 2-4 of
:mod:`mrirecon.data.ismrmrd_raw`'s conversion).

:func:`sort_readouts` reads the acquisitions' flags and loop counters into :class:`Lines` (which
readout goes where; noise readouts aside; navigators, other frames, other encodings and separate
reference scans counted and left out), :func:`grid` places the samples on the encoded matrix
(averages averaged, calibration-only lines filling what imaging lines did not measure) and
:func:`prewhiten` decorrelates the coils with the noise readouts' covariance
(:func:`whitening_matrix`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import ismrmrd
import numpy as np

from mrirecon.data.hdf5_inputs import max_kspace_gb
from mrirecon.data.header import AcquisitionHeader
from mrirecon.errors import DataError

__all__ = [
    "GEOMETRY",
    "Frame",
    "Lines",
    "Readout",
    "grid",
    "grid_reference",
    "prewhiten",
    "sort_readouts",
    "whitening_matrix",
]

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
GEOMETRY = ("position", "read_dir", "phase_dir", "slice_dir", "patient_table_position")


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


class Readout(NamedTuple):
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
class Lines:
    """The readouts of a file, sorted (the samples stay in ``rows`` until they are gridded)."""

    rows: np.ndarray
    coils: int
    shape: tuple[int, int, int, int]  # slices, x, y, z
    readouts: list[Readout]
    noise: list[np.ndarray] = field(default_factory=list)
    noise_dwell_us: float = 0.0
    dwell_us: float = 0.0
    geometry: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    dropped: int = 0
    #: acquisitions without channels or samples: left out
    empty: int = 0
    other_frames: int = 0
    frames: set[Frame] = field(default_factory=set)
    separate_calibration: int = 0
    #: the separate reference scan's readouts (of the frame taken, else of any): coil maps only
    reference: list[Readout] = field(default_factory=list)
    #: lines of that scan that do not fit the imaging data (matrix, channels, samples): left out
    reference_unfit: int = 0
    other_encodings: int = 0
    empty_slices: tuple[int, ...] = ()
    gridded: np.ndarray | None = None  # (S, C, X, Y, Z) once gridded, until the volume is made
    #: :func:`grid_reference`'s result once gridded, until the volume is made
    reference_gridded: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def _samples(row: np.void, channels: int, samples: int, scan: int, path: Path) -> np.ndarray:
    data = np.asarray(row["data"])
    if data.size != 2 * channels * samples:
        raise DataError(
            f"acquisition {scan} holds {data.size} values, its header says {2 * channels * samples}",
            path=path,
        )
    return data.view(np.complex64).reshape(channels, samples)


def _place_readout(samples: np.ndarray, readout: Readout, size_x: int, path: Path) -> np.ndarray:
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


def sort_readouts(
    rows: np.ndarray,
    header: AcquisitionHeader,
    path: Path,
    frame: Frame,
    *,
    heads_only: bool = False,
) -> Lines:
    """Sort the acquisitions (``rows`` of the table, or with ``heads_only`` their ``head`` column
    alone: noise readouts are then counted, not read)."""
    size_x, size_y, size_z = (max(n, 1) for n in header.encoded_matrix)
    off_y = size_y // 2 - header.e1_limits.center if header.e1_limits else 0
    off_z = size_z // 2 - header.e2_limits.center if header.e2_limits and size_z > 1 else 0
    separate = header.separate_reference
    lines = Lines(rows=rows, coils=0, shape=(0, size_x, size_y, size_z), readouts=[])
    references: list[tuple[Frame, Readout, int]] = []
    for number, row in enumerate(rows):
        acq = ismrmrd.Acquisition(row if heads_only else row["head"])
        channels, samples = int(acq.active_channels), int(acq.number_of_samples)
        if channels == 0 or samples == 0:  # nothing to grid (in a table of zero rows, 0 coils)
            lines.empty += 1
            continue
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
        idx = acq.idx
        this = Frame(int(idx.contrast), int(idx.repetition), int(idx.phase), int(idx.set))
        if calibration_only and separate:
            lines.separate_calibration += 1
            try:  # only for coil maps: a line that does not fit is left out, not fatal
                references.append(
                    (this, _readout(acq, number, off_y, off_z, (size_y, size_z), path), channels)
                )
            except DataError:
                lines.reference_unfit += 1
            continue
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
        lines.readouts.append(_readout(acq, number, off_y, off_z, (size_y, size_z), path))
        if int(idx.slice) not in lines.geometry:
            lines.geometry[int(idx.slice)] = {
                name: np.asarray(getattr(acq, name), dtype=np.float64) for name in GEOMETRY
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
        empty = f" ({lines.empty:,} acquisitions without channels or samples)" if lines.empty else ""
        raise DataError(f"the file holds no imaging readouts{empty}", path=path)
    # a reference scan of the frame taken, else of whatever frame it was recorded with
    fitting = [(f, r) for f, r, channels in references if channels == lines.coils]
    lines.reference_unfit += len(references) - len(fitting)
    lines.reference = [r for f, r in fitting if f == frame] or [r for _, r in fitting]
    _drop_empty_slices(lines)
    return lines


def _readout(
    acq: ismrmrd.Acquisition, row: int, off_y: int, off_z: int, size: tuple[int, int], path: Path
) -> Readout:
    """Where the acquisition in ``row`` goes in the encoded ``(Y, Z)`` matrix.

    Raises:
        DataError: if it falls outside.
    """
    idx = acq.idx
    y = int(idx.kspace_encode_step_1) + off_y
    # a 2-D encoding has one partition: readouts of others (a 3-D or multi-partition scan whose
    # header lost its z size) would be averaged into one plane as if they were repeats
    z = int(idx.kspace_encode_step_2) + off_z if size[1] > 1 else int(idx.kspace_encode_step_2)
    if not (0 <= y < size[0] and 0 <= z < size[1]):
        raise DataError(
            f"acquisition {acq.scan_counter} (line {idx.kspace_encode_step_1}, partition "
            f"{idx.kspace_encode_step_2}) falls outside the encoded matrix {size[0]}×{size[1]}",
            path=path,
            hint="the header's encoding limits do not match the data",
        )
    return Readout(
        row=row,
        slice=int(idx.slice),
        y=y,
        z=z,
        calibration_only=acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
        and not acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING),
        reverse=acq.is_flag_set(ismrmrd.ACQ_IS_REVERSE),
        discard_pre=int(acq.discard_pre),
        discard_post=int(acq.discard_post),
        center_sample=int(acq.center_sample),
        scan=int(acq.scan_counter),
    )


def _drop_empty_slices(lines: Lines) -> None:
    """Number the slices that hold readouts 0, 1, …: a slice index without readouts (an aborted or
    filtered export) is left out, and said so (:attr:`Lines.empty_slices`)."""
    present = sorted({r.slice for r in lines.readouts})
    lines.empty_slices = tuple(s for s in range(present[-1] + 1) if s not in set(present))
    index = {s: i for i, s in enumerate(present)}
    lines.reference = [r._replace(slice=index[r.slice]) for r in lines.reference if r.slice in index]
    if lines.empty_slices:
        lines.readouts = [r._replace(slice=index[r.slice]) for r in lines.readouts]
        lines.geometry = {index[s]: g for s, g in lines.geometry.items() if s in index}
    _, size_x, size_y, size_z = lines.shape
    lines.shape = (len(present), size_x, size_y, size_z)


def grid(lines: Lines, path: Path) -> tuple[np.ndarray, np.ndarray]:
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


def grid_reference(lines: Lines, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The separate reference scan's lines of 2-D data, compactly: ``(S, C, X, L)`` k-space of its
    ``L`` distinct phase-encode lines (averages averaged), their positions ``(L,)`` on the encoded
    ``y`` grid, and which slice measured which ``(S, L)``; None without such lines or for 3-D data.
    """
    slices, size_x, _, size_z = lines.shape
    if not lines.reference or size_z > 1:
        return None
    positions = np.array(sorted({r.y for r in lines.reference}), dtype=np.int64)
    column = {int(y): i for i, y in enumerate(positions)}
    kspace = np.zeros((slices, lines.coils, size_x, len(positions)), dtype=np.complex64)
    counts = np.zeros((slices, len(positions)), dtype=np.int32)
    for readout in lines.reference:
        row = lines.rows[readout.row]
        try:
            samples = _samples(row, lines.coils, int(row["head"]["number_of_samples"]), readout.scan, path)
            line = _place_readout(samples, readout, size_x, path)
        except DataError:  # only for coil maps: left out, and said
            lines.reference_unfit += 1
            continue
        where = (readout.slice, column[readout.y])
        kspace[readout.slice, :, :, where[1]] += line
        counts[where] += 1
    if not counts.any():
        return None
    kspace /= np.maximum(counts, 1).astype(np.float32)[:, None, None, :]
    return kspace, positions, counts > 0


def prewhiten(
    kspace: np.ndarray, lines: Lines, path: Path, matrix: np.ndarray | None = None
) -> np.ndarray | None:
    """Whiten the coils of ``kspace`` ``(S, C, ...)`` in place with the noise readouts' matrix
    (``matrix`` when a first call returned it); returns the matrix, None without noise readouts."""
    if not lines.noise:
        return None
    if matrix is None:
        if len({n.shape[0] for n in lines.noise}) != 1 or lines.noise[0].shape[0] != lines.coils:
            raise DataError(
                f"the noise readouts have {sorted({n.shape[0] for n in lines.noise})} channels, "
                f"the imaging data {lines.coils}",
                path=path,
            )
        noise = np.concatenate(lines.noise, axis=1)
        finite = bool(np.isfinite(noise).all())
        if not finite or not bool((np.abs(noise) ** 2).sum(axis=1).any()):
            raise DataError(
                "the noise readouts (ACQ_IS_NOISE_MEASUREMENT) hold no noise: "
                + ("all zero" if finite else "values that are not finite"),
                path=path,
                hint="pre-whitening needs a real noise scan; remove the noise readouts from the file "
                "(or their flag) to reconstruct without it",
            )
        dwell = lines.noise_dwell_us > 0 and lines.dwell_us > 0
        matrix = whitening_matrix(noise, scale=lines.noise_dwell_us / lines.dwell_us if dwell else 1.0)
    for index in range(kspace.shape[0]):  # slice by slice: one slice's temporary, not the volume's
        kspace[index] = np.einsum("dc,c...->d...", matrix, kspace[index])
    return matrix
