"""Real brain anatomy for the realistic simulator: tissue maps of the MNI152 template, sliced anew.

The anatomy source is the ICBM 2009a symmetric MNI152 template as shipped inside the ``nilearn``
wheel (``nilearn/datasets/data/mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz``,
197 × 233 × 189 voxels of 1 mm): an average of 152 real T1 brains registered non-linearly, with
grey- and white-matter probability maps. Nothing is downloaded: the files are read from the
installed package (see docs/data.md for the licence). Cerebrospinal fluid is what remains of the
template's brain mask, ``csf = mask − gm − wm``.

:func:`sample_tissue_slice` cuts one 2-D plane out of the template, for every slice anew:

- an orientation (axial, coronal or sagittal) with a random oblique tilt and in-plane rotation;
- a random position along the slice normal, a random shift and an anisotropic scale (head size);
- a smooth random elastic deformation (a coarse displacement field interpolated to the grid);
- trilinear interpolation of the three probability maps onto the plane (partial volume of the
  1 mm template at the sampled pixel size).

Coordinates: the template's voxel axes are x (patient left → right), y (posterior → anterior) and
z (inferior → superior). Images are laid out radiologically: axial rows run anterior → posterior,
coronal and sagittal rows superior → inferior.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from mrirecon.errors import ConfigError

__all__ = [
    "ORIENTATIONS",
    "TemplateAnatomy",
    "TissueSlice",
    "linear_resampler",
    "load_template",
    "sample_tissue_slice",
    "smooth_noise_2d",
    "template_files",
]

#: Slice orientations and, per orientation, the voxel-axis directions of (rows, columns, normal).
ORIENTATIONS: dict[
    str, tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
] = {
    "axial": ((0.0, -1.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "coronal": ((0.0, 0.0, -1.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "sagittal": ((0.0, 0.0, -1.0), (0.0, -1.0, 0.0), (1.0, 0.0, 0.0)),
}

_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def template_files() -> dict[str, Path]:
    """The template's files inside the installed ``nilearn`` package (nothing is imported from it).

    Raises:
        ConfigError: if nilearn is not installed or its wheel lacks the files.
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "the realistic simulator needs the MNI152 template shipped in the 'nilearn' package",
            hint="pip install nilearn (installed with mrirecon), or use --anatomy phantom",
        )
    folder = Path(spec.origin).parent / "datasets" / "data"
    files = {name: folder / file for name, file in _FILES.items()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise ConfigError(
            f"the installed nilearn lacks the MNI152 template files {', '.join(missing)}",
            hint="reinstall nilearn from PyPI (its wheel ships them), or use --anatomy phantom",
        )
    return files


@dataclass(frozen=True)
class TemplateAnatomy:
    """Tissue probability maps of the template, float32 in [0, 1], padded by ``pad`` voxels.

    Attributes:
        tissues: ``(3, X, Y, Z)`` float32: grey matter, white matter, CSF.
        center: Voxel coordinates of the brain's centre of mass.
        extent: Half extents of the brain along x, y, z, in voxels (1 mm).
    """

    tissues: np.ndarray
    center: np.ndarray
    extent: np.ndarray


@functools.lru_cache(maxsize=1)  # one template per process, kept for its life (about 100 MB)
def load_template() -> TemplateAnatomy:
    """Read and prepare the template once per process (about 0.5 s; 100 MB of float32 maps)."""
    import nibabel  # installed with nilearn; lazy, few callers need it

    files = template_files()
    arrays = {
        name: np.asarray(nibabel.load(str(path)).dataobj, dtype=np.float32)  # type: ignore[attr-defined]
        for name, path in files.items()
    }
    mask = arrays["t1"] > 0
    gm = arrays["gm"] / 255.0
    wm = arrays["wm"] / 255.0
    csf = np.clip(mask.astype(np.float32) - gm - wm, 0.0, 1.0)
    pad = 24
    tissues = np.stack([np.pad(t, pad) for t in (gm, wm, csf)]).astype(np.float32)
    brain = np.argwhere(np.pad(mask, pad))
    center = brain.mean(axis=0)
    extent = (brain.max(axis=0) - brain.min(axis=0)) / 2.0
    return TemplateAnatomy(tissues=tissues, center=center, extent=extent)


@dataclass(frozen=True)
class TissueSlice:
    """Tissue fractions of one plane ``(H, W)`` float32 each, and how it was cut.

    Attributes:
        gm, wm, csf: Probability (partial-volume fraction) of each tissue per pixel.
        orientation: ``axial``, ``coronal`` or ``sagittal``.
        pixel_mm: Pixel size in mm (rows, columns).
        depth: Position of the plane along the normal, in [-1, 1] of the brain's half extent.
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    orientation: str
    pixel_mm: tuple[float, float]
    depth: float

    @property
    def brain(self) -> np.ndarray:
        """Total brain fraction (grey + white matter + CSF) ``(H, W)``."""
        return np.clip(self.gm + self.wm + self.csf, 0.0, 1.0)


def _rotation(rng: np.random.Generator, tilt_deg: float, inplane_deg: float) -> np.ndarray:
    """A random rotation: small tilts about the row and column axes, a rotation about the normal."""
    a, b = np.deg2rad(rng.uniform(-tilt_deg, tilt_deg, 2))
    c = np.deg2rad(rng.uniform(-inplane_deg, inplane_deg))
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _gaussian_basis(n: int, cells: int) -> np.ndarray:
    """``(n, cells + 3)`` Gaussian bumps, one per control point, spaced one cell apart over the axis."""
    positions = (np.arange(n, dtype=np.float32) + 0.5) / n
    centres = (np.arange(cells + 3, dtype=np.float32) - 1.0) / cells
    return np.exp(-0.5 * ((positions[:, None] - centres[None, :]) * cells) ** 2).astype(np.float32)


def smooth_noise_2d(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """A smooth random field ``shape`` float32 of unit standard deviation: white noise on a coarse
    grid of about ``cells`` control points across the larger side, spread by Gaussian bumps one
    cell wide (two small matrix products, whatever the size)."""
    scale = max(shape)
    cells_r = max(2, round(cells * shape[0] / scale))
    cells_c = max(2, round(cells * shape[1] / scale))
    coarse = rng.standard_normal((cells_r + 3, cells_c + 3)).astype(np.float32)
    field = _gaussian_basis(shape[0], cells_r) @ coarse @ _gaussian_basis(shape[1], cells_c).T
    field = field - field.mean()
    std = float(field.std())
    return (field / std if std > 0 else field).astype(np.float32)


def linear_resampler(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` matrix of linear interpolation between pixel centres of two grids spanning
    the same field of view (``A @ x @ B.T`` resamples an image)."""
    positions = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lower = np.floor(positions).astype(np.intp)
    upper = np.minimum(lower + 1, n_in - 1)
    weight = (positions - lower).astype(np.float32)
    matrix = np.zeros((n_out, n_in), dtype=np.float32)
    rows = np.arange(n_out)
    np.add.at(matrix, (rows, lower), 1 - weight)
    np.add.at(matrix, (rows, upper), weight)
    return matrix


def sample_tissue_slice(
    rng: np.random.Generator,
    shape: tuple[int, int],
    fov_mm: tuple[float, float],
    *,
    orientation: str,
    depth: float | None = None,
    tilt_deg: float = 12.0,
    inplane_deg: float = 12.0,
    scale: tuple[float, float] = (0.88, 1.12),
    shift_mm: float = 8.0,
    elastic_mm: float = 3.0,
    elastic_cells: int = 6,
    geometry_rng: np.random.Generator | None = None,
) -> TissueSlice:
    """Cut a randomly placed, rotated, scaled and deformed plane out of the template.

    Args:
        rng: Randomness of the slice position (and of the geometry without ``geometry_rng``).
        shape: ``(H, W)`` of the plane.
        fov_mm: Field of view ``(rows, columns)`` in mm.
        orientation: A key of :data:`ORIENTATIONS`.
        depth: Position along the normal in [-1, 1] of the brain's half extent (None: drawn
            uniformly in [-0.85, 0.85]).
        tilt_deg, inplane_deg: Largest oblique tilt and in-plane rotation, degrees.
        scale: Range of the head-size factor per in-plane axis.
        shift_mm: Largest in-plane shift of the head.
        elastic_mm: Standard deviation of the elastic displacement, mm.
        elastic_cells: Control points across the field of view of the displacement field.
        geometry_rng: Randomness of rotation, scale, shift and deformation; slices of one volume
            share it (give generators in the same state) and differ only in ``depth``.

    Returns:
        A :class:`TissueSlice`.
    """
    if orientation not in ORIENTATIONS:
        raise ConfigError(
            f"unknown orientation '{orientation}'", hint=f"choose one of {', '.join(ORIENTATIONS)}"
        )
    template = load_template()
    geo = geometry_rng if geometry_rng is not None else rng
    rows_dir, cols_dir, normal = (np.asarray(v) for v in ORIENTATIONS[orientation])
    rotation = _rotation(geo, tilt_deg, inplane_deg)
    rows_dir, cols_dir, normal = rotation @ rows_dir, rotation @ cols_dir, rotation @ normal
    zoom_r, zoom_c = geo.uniform(*scale, size=2)
    shift = geo.uniform(-shift_mm, shift_mm, size=2)
    height, width = shape
    pixel = (fov_mm[0] / height, fov_mm[1] / width)
    # the fields of this plane: elastic displacement in voxels along x, y, z
    displacement = [elastic_mm * smooth_noise_2d(geo, shape, elastic_cells) for _ in range(3)]
    if depth is None:
        depth = float(rng.uniform(-0.85, 0.85))
    reach = float(np.abs(normal) @ template.extent)
    origin = template.center + depth * reach * normal
    r = ((np.arange(height, dtype=np.float32) - height / 2 + 0.5) * pixel[0] / zoom_r + shift[0])[:, None]
    c = ((np.arange(width, dtype=np.float32) - width / 2 + 0.5) * pixel[1] / zoom_c + shift[1])[None, :]
    coords = np.empty((3, height, width), dtype=np.float32)
    for axis in range(3):
        coords[axis] = origin[axis] + r * rows_dir[axis] + c * cols_dir[axis] + displacement[axis]
    maps = [
        ndimage.map_coordinates(volume, coords, order=1, mode="constant", cval=0.0, prefilter=False)
        for volume in template.tissues
    ]
    return TissueSlice(
        gm=maps[0].astype(np.float32),
        wm=maps[1].astype(np.float32),
        csf=maps[2].astype(np.float32),
        orientation=orientation,
        pixel_mm=pixel,
        depth=float(depth),
    )
