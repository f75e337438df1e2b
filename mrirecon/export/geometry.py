"""Slice geometry: the ``geometry/`` HDF5 group and the DICOM image planes derived from it.

Array layout. A reconstruction is ``(slices, h, w)`` as fastMRI stores it: the rows of a slice
(index ``h``) run along the readout (ISMRMRD x, ``read_dir``), the columns (index ``w``) along the
phase encode (ISMRMRD y, ``phase_dir``). With a centred FFT the isocentre of the field of view
(the slice ``position`` of the acquisition headers) is the pixel ``(h // 2, w // 2)``.

DICOM. ``ImageOrientationPatient`` holds two unit vectors in the patient's LPS frame: the
direction in which the *column index* grows along a row (here ``phase_dir``) and the direction in
which the *row index* grows down a column (here ``read_dir``). ``PixelSpacing`` is ``[spacing
between rows, spacing between columns]`` = ``[Δ readout, Δ phase]``. ``ImagePositionPatient`` is
the centre of the first voxel (row 0, column 0)::

    IPP = position − (w // 2)·Δc·phase_dir − (h // 2)·Δr·read_dir

The DICOM slice normal ``row × column = phase_dir × read_dir`` is ``−slice_dir`` for ISMRMRD's
right-handed (read, phase, slice) triad; that is how the stored array is laid out, and viewers
that honour the orientation place it correctly.

Without a ``geometry/`` group (fastMRI files) the planes are *synthetic*: axial, row direction
``+x`` (patient left), column direction ``+y`` (posterior), slices stacked along ``+z`` by the slice
spacing and centred on the origin. :attr:`ImagePlanes.synthetic` says so and the DICOM export
writes it into the series description.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from mrirecon.data.header import AcquisitionHeader
from mrirecon.errors import DataError

__all__ = ["DEFAULT_SPACING_MM", "ImagePlanes", "SliceGeometry", "image_planes"]

#: Pixel spacing and slice thickness used when neither the header nor the geometry gives them.
DEFAULT_SPACING_MM = 1.0

_VECTORS = ("position", "read_dir", "phase_dir", "slice_dir")


@dataclass(frozen=True, eq=False)
class SliceGeometry:
    """Per-slice position and orientation from ISMRMRD acquisition headers (patient LPS frame, mm).

    Attributes:
        position: ``(S, 3)`` centre of each slice's field of view.
        read_dir, phase_dir, slice_dir: ``(S, 3)`` unit vectors of the readout, phase-encode and
            slice directions.
        patient_table_position: ``(S, 3)`` or None; kept for provenance, not used for DICOM
            positions (ISMRMRD positions are already in the patient frame).
        field_of_view_mm: the reconstructed field of view ``(x, y, z)``, if known.
        slice_thickness_mm: the slice thickness, if known.
    """

    position: np.ndarray
    read_dir: np.ndarray
    phase_dir: np.ndarray
    slice_dir: np.ndarray
    patient_table_position: np.ndarray | None = None
    field_of_view_mm: tuple[float, float, float] | None = None
    slice_thickness_mm: float | None = None

    def __post_init__(self) -> None:
        shape = np.shape(self.position)
        if len(shape) != 2 or shape[1] != 3:
            raise DataError(f"geometry: position must have shape (slices, 3), got {shape}")
        for name in (*_VECTORS, "patient_table_position"):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=np.float64)
            if value.shape != shape:
                raise DataError(f"geometry: {name} must have shape {shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise DataError(f"geometry: {name} holds non-finite values")
            object.__setattr__(self, name, value)

    @property
    def num_slices(self) -> int:
        """Number of slices ``S``."""
        return int(self.position.shape[0])

    @classmethod
    def read(cls, group: h5py.Group) -> SliceGeometry:
        """Read a ``geometry/`` group (docs/interfaces.md §1).

        Raises:
            DataError: if a dataset is missing or has the wrong shape.
        """
        missing = [name for name in _VECTORS if name not in group]
        if missing:
            raise DataError(f"the geometry group lacks {', '.join(missing)}", path=group.file.filename)
        arrays = {name: np.asarray(group[name][()], dtype=np.float64) for name in _VECTORS}
        table = group.get("patient_table_position")
        fov_attr = group.attrs.get("field_of_view_mm")
        fov: tuple[float, float, float] | None = None
        if fov_attr is not None and np.size(fov_attr) == 3:
            x, y, z = (float(v) for v in np.ravel(fov_attr))
            fov = (x, y, z)
        thickness = group.attrs.get("slice_thickness_mm")
        try:
            return cls(
                **arrays,
                patient_table_position=None if table is None else np.asarray(table[()], dtype=np.float64),
                field_of_view_mm=fov,
                slice_thickness_mm=None if thickness is None else float(thickness),
            )
        except DataError as error:
            raise DataError(error.message, path=group.file.filename) from error

    def write(self, group: h5py.Group) -> None:
        """Write the datasets (float32) and attributes into ``group``."""
        for name in (*_VECTORS, "patient_table_position"):
            value = getattr(self, name)
            if value is not None:
                group.create_dataset(name, data=np.asarray(value, dtype=np.float32))
        if self.field_of_view_mm is not None:
            group.attrs["field_of_view_mm"] = np.asarray(self.field_of_view_mm, dtype=np.float64)
        if self.slice_thickness_mm is not None:
            group.attrs["slice_thickness_mm"] = float(self.slice_thickness_mm)


@dataclass(frozen=True, eq=False)
class ImagePlanes:
    """What the DICOM Image Plane module needs, for every slice of a ``(S, h, w)`` volume.

    Attributes:
        pixel_spacing: ``(Δr, Δc)``: spacing between rows (readout) and between columns (phase), mm.
        slice_thickness: mm.
        spacing_between_slices: centre-to-centre distance of neighbouring slices, mm.
        orientation: ``(S, 6)``: row direction (column index grows) then column direction (row
            index grows), unit vectors in LPS.
        position: ``(S, 3)``: centre of the first voxel of each slice, LPS mm.
        synthetic: True when the positions and orientations are the documented default, not the
            scanner's.
        notes: Which values came from defaults, in words (for the derivation description).
    """

    pixel_spacing: tuple[float, float]
    slice_thickness: float
    spacing_between_slices: float
    orientation: np.ndarray
    position: np.ndarray
    synthetic: bool
    notes: tuple[str, ...] = ()

    @property
    def normal(self) -> np.ndarray:
        """``(S, 3)`` unit normals ``row direction × column direction``."""
        return np.cross(self.orientation[:, :3], self.orientation[:, 3:])

    @property
    def slice_location(self) -> np.ndarray:
        """``(S,)`` position of each plane along its normal (DICOM SliceLocation), mm."""
        return np.einsum("si,si->s", self.position, self.normal)


def _unit(vectors: np.ndarray, name: str, source: str | Path | None) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    if np.any(np.abs(norms - 1.0) > 1e-3):
        raise DataError(
            f"geometry: {name} holds vectors that are not unit length",
            path=source,
            hint="re-convert the raw data; the direction cosines of the acquisition headers are corrupt",
        )
    return vectors / norms


def _pixel_spacing(
    shape: tuple[int, int, int], header: AcquisitionHeader | None, geometry: SliceGeometry | None
) -> tuple[tuple[float, float], str | None]:
    _, h, w = shape
    if header is not None:
        # the image is the inverse FFT of the encoded grid, cropped: its pixel is the encoded FOV over
        # the encoded matrix (readout oversampling counts in both); reconSpace says the same when the
        # scanner's reconstruction is a crop of that grid, and otherwise describes an interpolated
        # image mrirecon does not make (e.g. a phase resolution below the reconstruction matrix)
        for fov, matrix in (
            (header.encoded_fov_mm, header.encoded_matrix),
            (header.recon_fov_mm, header.recon_matrix),
        ):
            if fov[0] > 0 and fov[1] > 0 and matrix[0] > 0 and matrix[1] > 0:
                return (fov[0] / matrix[0], fov[1] / matrix[1]), None
    if geometry is not None and geometry.field_of_view_mm is not None:
        fov3 = geometry.field_of_view_mm
        if fov3[0] > 0 and fov3[1] > 0:
            return (fov3[0] / h, fov3[1] / w), None
    note = f"pixel spacing unknown, {DEFAULT_SPACING_MM:g} mm assumed"
    return (DEFAULT_SPACING_MM, DEFAULT_SPACING_MM), note


def _slice_thickness(
    header: AcquisitionHeader | None, geometry: SliceGeometry | None
) -> tuple[float, str | None]:
    if geometry is not None and geometry.slice_thickness_mm and geometry.slice_thickness_mm > 0:
        return float(geometry.slice_thickness_mm), None
    if header is not None:
        for fov, matrix in (
            (header.recon_fov_mm, header.recon_matrix),
            (header.encoded_fov_mm, header.encoded_matrix),
        ):
            if fov[2] > 0 and matrix[2] > 0:
                return fov[2] / matrix[2], None
    return DEFAULT_SPACING_MM, f"slice thickness unknown, {DEFAULT_SPACING_MM:g} mm assumed"


def image_planes(
    shape: tuple[int, int, int],
    header: AcquisitionHeader | None = None,
    geometry: SliceGeometry | None = None,
    *,
    source: str | Path | None = None,
) -> ImagePlanes:
    """The DICOM image planes of a ``(S, h, w)`` reconstruction.

    Args:
        shape: ``(S, h, w)`` of the reconstruction (rows along the readout, columns along phase).
        header: The parsed ISMRMRD header (pixel spacing from encodedSpace FOV / matrix, slice
            thickness from the z field of view), if any.
        geometry: The ``geometry/`` group of the input, if any; without it the planes are synthetic.
        source: The file the geometry came from, for error messages.

    Returns:
        :class:`ImagePlanes`.

    Raises:
        DataError: if the geometry has another number of slices than the volume, or its direction
            vectors are not orthonormal.
    """
    num_slices, h, w = shape
    (dr, dc), spacing_note = _pixel_spacing(shape, header, geometry)
    thickness, thickness_note = _slice_thickness(header, geometry)
    notes = [note for note in (spacing_note, thickness_note) if note]
    if geometry is not None:
        if geometry.num_slices != num_slices:
            raise DataError(
                f"the geometry group describes {geometry.num_slices} slices but the reconstruction has "
                f"{num_slices}",
                path=source,
                hint="write the input's geometry for exactly the reconstructed slices",
            )
        row_dir = _unit(geometry.phase_dir, "phase_dir", source)
        col_dir = _unit(geometry.read_dir, "read_dir", source)
        if np.any(np.abs(np.einsum("si,si->s", row_dir, col_dir)) > 1e-3):
            raise DataError("geometry: read_dir and phase_dir are not orthogonal", path=source)
        centres = geometry.position
        synthetic = False
        normal = np.cross(row_dir, col_dir)
        if num_slices > 1:  # along the normal, in spatial order (slice indices need not follow it)
            steps = np.diff(np.sort(centres @ normal[0]))
            spacing = float(np.median(steps)) if np.median(steps) > 1e-6 else thickness
        else:
            spacing = thickness
    else:
        row_dir = np.tile([1.0, 0.0, 0.0], (num_slices, 1))
        col_dir = np.tile([0.0, 1.0, 0.0], (num_slices, 1))
        spacing = thickness
        offsets = (np.arange(num_slices) - (num_slices - 1) / 2.0) * spacing
        centres = np.stack([np.zeros(num_slices), np.zeros(num_slices), offsets], axis=1)
        synthetic = True
        notes.append(
            "synthetic geometry: the input has no slice positions; axial planes centred on the origin, "
            "slices stacked by the slice thickness"
        )
    position = centres - (w // 2) * dc * row_dir - (h // 2) * dr * col_dir
    return ImagePlanes(
        pixel_spacing=(float(dr), float(dc)),
        slice_thickness=float(thickness),
        spacing_between_slices=float(spacing),
        orientation=np.concatenate([row_dir, col_dir], axis=1),
        position=position,
        synthetic=synthetic,
        notes=tuple(notes),
    )
