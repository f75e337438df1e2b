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

Steps 2-4 live in :mod:`mrirecon.data.ismrmrd_acquisitions`; this module reads the file and
makes the volume.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import ismrmrd
import numpy as np
import torch

from mrirecon.data.cartesian import crop_readout, decouple_readout
from mrirecon.data.hdf5_inputs import MAX_HEADER_BYTES, check_stored, stored_dataset
from mrirecon.data.header import AcquisitionHeader, EncodingLimits, parse_ismrmrd_header, rewrite_encoding
from mrirecon.data.ismrmrd_acquisitions import (
    GEOMETRY,
    Frame,
    Lines,
    grid,
    grid_reference,
    prewhiten,
    sort_readouts,
    whitening_matrix,
)
from mrirecon.data.raw import ArrayVolume, Calibration
from mrirecon.errors import DataError, Notice
from mrirecon.masks import describe_mask, reduce_mask

__all__ = ["Frame", "IsmrmrdProbe", "is_ismrmrd_file", "open_ismrmrd", "probe_ismrmrd", "whitening_matrix"]


def is_ismrmrd_file(handle: h5py.File, group: str = "dataset") -> bool:
    """Whether an open HDF5 file holds ISMRMRD raw data (``dataset/xml`` or ``dataset/data``)."""
    node = handle.get(group)
    return isinstance(node, h5py.Group) and ("data" in node or "xml" in node)


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


def _one_slab(lines: Lines, path: Path) -> None:
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


def _geometry_2d(lines: Lines, header: AcquisitionHeader) -> dict[str, Any] | None:
    if len(lines.geometry) != lines.shape[0]:
        return None
    out: dict[str, Any] = {
        name: np.stack([lines.geometry[s][name] for s in range(lines.shape[0])]) for name in GEOMETRY
    }
    out["field_of_view_mm"] = np.asarray(header.recon_fov_mm, dtype=np.float64)
    matrix_z = max(header.encoded_matrix[2], 1)
    if header.encoded_fov_mm[2] > 0:
        out["slice_thickness_mm"] = header.encoded_fov_mm[2] / matrix_z
    return out


def _geometry_3d(lines: Lines, header: AcquisitionHeader, keep: int) -> dict[str, Any] | None:
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
    header: AcquisitionHeader,
    path: Path,
    lines: Lines,
    mask: np.ndarray | None,
    frame: Frame,
    calibration: Calibration | None,
) -> dict[str, Any]:
    note = f"ISMRMRD {path.name}: {len(lines.readouts)} readouts"
    for count, what in (
        (len(lines.noise), "noise readout(s) used for pre-whitening"),
        (lines.dropped, "navigator/correction readouts dropped"),
        (lines.empty, "acquisitions without channels or samples left out"),
    ):
        note += f", {count} {what}" if count else ""
    said: list[str] = []
    if lines.other_frames:
        note += f", {lines.other_frames} readouts of other contrasts/repetitions/phases/sets left out"
        said.append(
            f"{lines.other_frames} readouts belong to other frames ({len(lines.frames)} in the file); "
            f"only {frame.describe()} is reconstructed ({len(lines.readouts)} readouts; choose another "
            "with --frame of convert, infer or batch)"
        )
    if lines.separate_calibration and calibration:
        note += (
            f", {lines.separate_calibration} lines of a separate reference scan kept for coil maps "
            "(not gridded: another contrast)"
        )
        without = [s for s in range(lines.shape[0]) if not calibration.measured[s].any()]
        if without:
            shown = ", ".join(str(s) for s in without[:8]) + (" ..." if len(without) > 8 else "")
            said.append(
                f"slice(s) {shown} have no line of its separate reference scan: their coil maps come "
                "from the imaging data's fully sampled centre, if it has one"
            )
        if lines.reference_unfit:
            said.append(
                f"{lines.reference_unfit} of the {lines.separate_calibration} lines of its separate "
                "reference scan do not fit the imaging data (matrix, channels or samples) and are left "
                "out; the others give the coil maps"
            )
    elif lines.separate_calibration:
        note += f", {lines.separate_calibration} lines of a separate reference scan left out"
        if lines.shape[3] > 1:
            why = "3-D data"
        elif lines.reference_unfit:
            why = "they do not fit the imaging data: matrix, channels or samples"
        else:
            why = "none lies on a slice of the imaging data"
        said.append(
            f"{lines.separate_calibration} calibration lines of a separate reference scan "
            f"(calibrationMode {header.calibration_mode}) are left out ({why}); coil maps come from "
            "the imaging data"
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
    lines = sort_readouts(rows, header, path, frame)
    lines.gridded, measured = grid(lines, path)  # held by lines alone: _volume lets it go
    lines.reference_gridded = grid_reference(lines, path)
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
    lines = sort_readouts(heads, header, path, frame or Frame(), heads_only=True)
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
    lines: Lines,
    measured: np.ndarray,
    frame: Frame,
) -> ArrayVolume:
    """The gridded k-space (``lines.gridded``, taken from it) as the volume :func:`open_ismrmrd`
    serves (steps 4-7 of the module docstring)."""
    kspace, lines.gridded = lines.gridded, None
    assert kspace is not None
    whitening = prewhiten(kspace, lines, path)
    reference, lines.reference_gridded = lines.reference_gridded, None
    keep = _readout_keep(header)
    enc_x, enc_y, enc_z = (max(n, 1) for n in header.encoded_matrix)
    rec_x, rec_y, rec_z = (max(n, 1) for n in header.recon_matrix)
    enc_fov, rec_fov = header.encoded_fov_mm, header.recon_fov_mm
    calibration = None
    if enc_z == 1:
        mask = _line_mask(measured, keep, enc_y, path)
        data = _crop_slices(kspace[..., 0], keep)
        del kspace
        if reference is not None:  # the same whitening and readout crop as the imaging lines
            prewhiten(reference[0], lines, path, whitening)
            calibration = Calibration(_crop_slices(reference[0], keep), reference[1], reference[2])
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
    attrs = _attrs(header, path, lines, mask, frame, calibration)
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
        calibration=calibration,
    )
