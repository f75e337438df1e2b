"""The one writer of the fastMRI HDF5 layout of docs/interfaces.md §1 (the reader is
:mod:`mrirecon.data.fastmri`).

:func:`write_volume` is atomic (a temporary name, renamed when complete) and is what
``mrirecon simulate`` and ``mrirecon convert`` use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mrirecon._version import __version__
from mrirecon.atomic import atomic_file
from mrirecon.data.geometry_values import GEOMETRY_VECTORS
from mrirecon.data.lesions import Lesion
from mrirecon.data.raw import Calibration, normalize_mask
from mrirecon.errors import DataError

__all__ = ["lesion_table_text", "write_volume"]


def lesion_table_text(table: str | Sequence[Lesion]) -> str:
    """The ``lesion_table`` attribute: a JSON list of :class:`~mrirecon.data.lesions.Lesion` fields."""
    if isinstance(table, str):
        return table
    return json.dumps([asdict(lesion) for lesion in table])


def _check_write(
    path: Path,
    kspace: np.ndarray,
    reconstruction_rss: np.ndarray | None,
    mask: np.ndarray | None,
    lesion_labels: np.ndarray | None,
    geometry: Mapping[str, Any] | None,
) -> np.ndarray | None:
    if not np.iscomplexobj(kspace) or kspace.ndim not in (3, 4):
        raise DataError(
            f"k-space to write must be complex (slices, coils, H, W) or (slices, H, W), "
            f"got {kspace.dtype} {kspace.shape}",
            path=path,
        )
    slices, height, width = kspace.shape[0], kspace.shape[-2], kspace.shape[-1]
    if reconstruction_rss is not None and (
        reconstruction_rss.ndim != 3 or reconstruction_rss.shape[0] != slices
    ):
        raise DataError(
            f"reconstruction_rss must be ({slices}, h, w), got {reconstruction_rss.shape}", path=path
        )
    if lesion_labels is not None:
        expected = reconstruction_rss.shape if reconstruction_rss is not None else None
        if (
            lesion_labels.ndim != 3
            or lesion_labels.shape[0] != slices
            or (expected is not None and lesion_labels.shape != expected)
        ):
            raise DataError(
                f"lesion_labels {lesion_labels.shape} must match reconstruction_rss {expected}", path=path
            )
    if geometry is not None:
        for name in GEOMETRY_VECTORS:
            value = geometry.get(name)
            if value is not None and np.shape(value) != (slices, 3):
                raise DataError(f"geometry {name} must be ({slices}, 3), got {np.shape(value)}", path=path)
    return None if mask is None else normalize_mask(mask, height, width, path)


def write_volume(
    path: str | Path,
    *,
    kspace: np.ndarray,
    header_xml: str,
    reconstruction_rss: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    lesion_labels: np.ndarray | None = None,
    lesion_table: str | Sequence[Lesion] | None = None,
    geometry: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    centered: bool = True,
    source: str = "",
    calibration: Calibration | None = None,
) -> Path:
    """Write one volume in the fastMRI layout of docs/interfaces.md §1, atomically.

    Args:
        path: The output ``.h5``; written as ``.NAME.partial`` and renamed when complete.
        kspace: ``(S, C, H, W)`` (or single-coil ``(S, H, W)``) complex k-space; stored complex64.
            Undersampled k-space has exact zeros where not sampled and comes with ``mask``.
        header_xml: The ISMRMRD header (stored as the bytes scalar ``ismrmrd_header``).
        reconstruction_rss: ``(S, h, w)`` fully sampled reference; sets the ``max`` and ``norm``
            attributes unless ``attrs`` gives them.
        mask: bool ``(W,)`` or ``(H, W)`` sampling mask of undersampled k-space.
        lesion_labels: ``(S, h, w)`` int16 labels on the reference's grid.
        lesion_table: The lesions (or their JSON text), stored as the ``lesion_table`` attribute.
        geometry: ``position``, ``read_dir``, ``phase_dir``, ``slice_dir``, optional
            ``patient_table_position`` (each ``(S, 3)``, LPS mm) and the attributes
            ``field_of_view_mm`` (3,) and ``slice_thickness_mm``: the ``geometry/`` group.
        attrs: File attributes: ``acquisition``, ``patient_id``, ``acceleration``,
            ``num_low_frequency``... (str, numbers).
        centered: FFT convention of ``kspace`` (attribute ``mrirecon_fft_centered``).
        source: What the volume was made from (attribute ``mrirecon_source``).
        calibration: The lines of a separate calibration scan (coil maps): the ``calibration/``
            group (``kspace`` ``(S, C, H, L)``, ``columns`` ``(L,)``, ``measured`` ``(S, L)``).

    Returns:
        ``path``.

    Raises:
        DataError: for arrays of inconsistent shapes; ExportError if the disk refuses the write.
    """
    path = Path(path)
    kspace = np.asarray(kspace)
    stored_mask = _check_write(path, kspace, reconstruction_rss, mask, lesion_labels, geometry)
    file_attrs: dict[str, Any] = {}
    if reconstruction_rss is not None:
        reconstruction_rss = np.asarray(reconstruction_rss, dtype=np.float32)
        file_attrs["max"] = float(reconstruction_rss.max())
        file_attrs["norm"] = float(np.linalg.norm(reconstruction_rss))
    file_attrs.update(attrs or {})
    file_attrs["mrirecon_version"] = __version__
    file_attrs["mrirecon_fft_centered"] = bool(centered)
    if source:
        file_attrs["mrirecon_source"] = source
    if lesion_table is not None:
        file_attrs["lesion_table"] = lesion_table_text(lesion_table)
    with atomic_file(path, what="fastMRI HDF5 volume") as temporary, h5py.File(temporary, "w") as f:
        f.create_dataset("kspace", data=kspace.astype(np.complex64, copy=False))
        f.create_dataset("ismrmrd_header", data=np.bytes_(header_xml.encode("utf-8")))
        if reconstruction_rss is not None:
            f.create_dataset("reconstruction_rss", data=reconstruction_rss)
        if stored_mask is not None:
            f.create_dataset("mask", data=stored_mask)
        if lesion_labels is not None:
            f.create_dataset("lesion_labels", data=np.asarray(lesion_labels, dtype=np.int16))
        if geometry is not None:
            group = f.create_group("geometry")
            for name in GEOMETRY_VECTORS:
                if geometry.get(name) is not None:
                    group.create_dataset(name, data=np.asarray(geometry[name], dtype=np.float32))
            if geometry.get("field_of_view_mm") is not None:
                group.attrs["field_of_view_mm"] = np.asarray(geometry["field_of_view_mm"], dtype=np.float64)
            if geometry.get("slice_thickness_mm") is not None:
                group.attrs["slice_thickness_mm"] = float(geometry["slice_thickness_mm"])
        if calibration is not None:
            group = f.create_group("calibration")
            group.create_dataset("kspace", data=np.asarray(calibration.kspace, dtype=np.complex64))
            group.create_dataset("columns", data=np.asarray(calibration.columns, dtype=np.int64))
            group.create_dataset("measured", data=np.asarray(calibration.measured, dtype=bool))
        for name, value in file_attrs.items():
            f.attrs[name] = value
    return path
