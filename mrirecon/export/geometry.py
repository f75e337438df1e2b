"""Slice geometry: the ``geometry/`` HDF5 group and the DICOM image planes derived from it.

Array layout. A reconstruction is ``(slices, h, w)`` as fastMRI stores it: the rows of a slice
(index ``h``) run along the readout (ISMRMRD x, ``read_dir``), the columns (index ``w``) along the
phase encode (ISMRMRD y, ``phase_dir``). With a centred FFT the centre of the field of view (the
slice ``position`` of the acquisition headers) is the pixel ``(H // 2, W // 2)`` of the
reconstructed ``H × W`` grid; fastMRI's centre crop to ``h × w`` starts at ``((H − h) // 2,
(W − w) // 2)``, so in the crop the centre is the pixel

    (r0, c0) = (H // 2 − (H − h) // 2,  W // 2 − (W − w) // 2)

which is ``(h // 2, w // 2)`` except along an axis where ``H`` is even and ``h`` odd (then one
more). :func:`centre_index` computes it.

DICOM. ``ImageOrientationPatient`` holds two unit vectors in the patient's LPS frame: the
direction in which the *column index* grows along a row (here ``phase_dir``) and the direction in
which the *row index* grows down a column (here ``read_dir``). ``PixelSpacing`` is ``[spacing
between rows, spacing between columns]`` = ``[Δ readout, Δ phase]``. ``ImagePositionPatient`` is
the centre of the first voxel (row 0, column 0)::

    IPP = position − c0·Δc·phase_dir − r0·Δr·read_dir

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

from mrirecon.data.geometry_values import GEOMETRY_DIRECTIONS as _VECTORS
from mrirecon.data.geometry_values import field_of_view, real_numbers, slice_thickness
from mrirecon.data.hdf5_inputs import stored_dataset
from mrirecon.data.header import AcquisitionHeader
from mrirecon.errors import DataError

__all__ = [
    "DEFAULT_SPACING_MM",
    "ImagePlanes",
    "SliceGeometry",
    "centre_index",
    "field_of_view",
    "image_planes",
    "real_numbers",
    "slice_thickness",
]

#: Pixel spacing and slice thickness used when neither the header nor the geometry gives them.
DEFAULT_SPACING_MM = 1.0


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
            value = real_numbers(value, name)
            if value.shape != shape:
                raise DataError(f"geometry: {name} must have shape {shape}, got {value.shape}")
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
        source = group.file.filename
        missing = [name for name in _VECTORS if not isinstance(group.get(name), h5py.Dataset)]
        if missing:
            raise DataError(f"the geometry group lacks {', '.join(missing)}", path=source)
        where = Path(source)
        try:
            # each vector stored in the file itself (not a link, a virtual dataset or external storage)
            arrays = {name: real_numbers(stored_dataset(group, name, where)[()], name) for name in _VECTORS}
            table = group.get("patient_table_position")
            if table is not None and not isinstance(table, h5py.Dataset):
                raise DataError("geometry: patient_table_position is not a dataset")
            table_array = (
                None
                if table is None
                else real_numbers(
                    stored_dataset(group, "patient_table_position", where)[()], "patient_table_position"
                )
            )
            fov_attr = group.attrs.get("field_of_view_mm")
            thickness = group.attrs.get("slice_thickness_mm")
            return cls(
                **arrays,
                patient_table_position=table_array,
                field_of_view_mm=None if fov_attr is None else field_of_view(fov_attr),
                slice_thickness_mm=None if thickness is None else slice_thickness(thickness),
            )
        except DataError as error:
            raise DataError(error.message, path=source, hint=error.hint) from error

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


def centre_index(size: int, grid: int | None) -> int:
    """Index of the field of view's centre in a centre crop of ``size`` from a ``grid``-point
    image whose centre is ``grid // 2`` (the centred FFT); ``size // 2`` without the grid."""
    if grid is None or grid < size:
        return size // 2
    return grid // 2 - (grid - size) // 2


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
    def parallel(self) -> bool:
        """Whether every plane has the first one's orientation (a stack); a multi-plane series
        (a 3-plane localizer) has no order along one normal and no spacing between slices."""
        return _one_orientation(self.normal)

    @property
    def slice_location(self) -> np.ndarray:
        """``(S,)`` position of each plane along its normal (DICOM SliceLocation), mm."""
        return np.einsum("si,si->s", self.position, self.normal)


def _one_orientation(normal: np.ndarray) -> bool:
    """Whether the ``(S, 3)`` unit normals are all parallel to the first (a stack of planes)."""
    return bool(np.all(np.abs(normal @ normal[0]) > 1 - 1e-6))


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
    kspace_matrix: tuple[int, int] | None = None,
) -> ImagePlanes:
    """The DICOM image planes of a ``(S, h, w)`` reconstruction.

    Args:
        shape: ``(S, h, w)`` of the reconstruction (rows along the readout, columns along phase).
        header: The parsed ISMRMRD header (pixel spacing from encodedSpace FOV / matrix, slice
            thickness from the z field of view), if any.
        geometry: The ``geometry/`` group of the input, if any; without it the planes are synthetic.
        source: The file the geometry came from, for error messages.
        kspace_matrix: ``(H, W)`` of the grid the reconstruction was centre-cropped from (the
            k-space's; the field of view's centre is its pixel ``(H // 2, W // 2)``). Without it,
            the header's encodedSpace matrix (x, y) (the k-space grid of every input mrirecon
            reads); along an axis where that is unknown or smaller than the image, the centre is
            the pixel ``h // 2`` (``w // 2``).

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
        # a stack: spacing along the normal, in spatial order (slice indices need not follow it);
        # planes of several orientations have none
        if num_slices > 1 and _one_orientation(normal):
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
    if kspace_matrix is not None:
        grid: tuple[int | None, int | None] = kspace_matrix
    elif header is not None:  # a reconstruction that does not record it: the encoded grid, mrirecon's
        grid = (header.encoded_matrix[0] or None, header.encoded_matrix[1] or None)
    else:
        grid = (None, None)
    r0, c0 = centre_index(h, grid[0]), centre_index(w, grid[1])
    position = centres - c0 * dc * row_dir - r0 * dr * col_dir
    return ImagePlanes(
        pixel_spacing=(float(dr), float(dc)),
        slice_thickness=float(thickness),
        spacing_between_slices=float(spacing),
        orientation=np.concatenate([row_dir, col_dir], axis=1),
        position=position,
        synthetic=synthetic,
        notes=tuple(notes),
    )
