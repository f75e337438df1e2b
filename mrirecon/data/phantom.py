"""A brain-like numerical phantom for the simulator: tissue classes, folding, deformation, texture.

The head is built in normalised coordinates (``u`` left→right, ``v`` anterior→posterior, the
in-plane unit being half the smaller image side; ``z`` from the skull base towards the vertex,
1 = the top of the head), so that a 64×64 and a 320×320 phantom show the same anatomy:

- scalp (fat), skull (cortical bone tables around fatty marrow), a thin outer CSF layer;
- a cortex of grey matter with sulci: CSF along the zero crossings of a smooth random field
  (meandering lines that reach from the surface into the brain) and a ribbon of constant
  thickness that follows the surface and the sulci (a distance transform); the
  interhemispheric fissure;
- white matter inside, lateral ventricles (size varies, as with age), a third ventricle, deep
  grey matter (basal ganglia and thalami).

Between volumes: head size, aspect, rotation and position, a smooth random deformation, the
folding pattern, ventricle size, tissue intensities (±8 %) and a smooth intensity bias (±10 %).
Within tissue: a fine texture (3–5 %). Edges get partial-volume blurring. Intensities of each
contrast (FLAIR, T1, T2) put tissue between 0 and about 1; the image gets a smooth background
phase. Random fields are Gaussian-filtered white noise (FFT), correlated across slices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["CONTRASTS", "TISSUES", "BrainPhantom", "TissueContrast", "brain_phantom"]

#: Tissue labels of :attr:`BrainPhantom.tissue`.
TISSUES = {
    "background": 0,
    "scalp": 1,
    "bone": 2,
    "marrow": 3,
    "csf": 4,
    "gm": 5,
    "wm": 6,
    "deep_gm": 7,
}


@dataclass(frozen=True)
class TissueContrast:
    """Mean intensities of the tissues for one kind of scan, and its header fields.

    Attributes:
        acquisition: The ``acquisition`` attribute (fastMRI's names).
        wm, gm, deep_gm, csf, scalp, bone, marrow: Tissue intensities.
        lesion_contrast: Default intensity factor of white-matter lesions (> 1 hyperintense).
        tr_ms, te_ms, sequence_type: Header fields.
    """

    acquisition: str
    wm: float
    gm: float
    deep_gm: float
    csf: float
    scalp: float
    bone: float
    marrow: float
    lesion_contrast: float
    tr_ms: float
    te_ms: float
    sequence_type: str


CONTRASTS = {
    "flair": TissueContrast("AXFLAIR", 0.55, 0.75, 0.70, 0.06, 0.85, 0.03, 0.50, 1.8, 9000.0, 120.0, "FLAIR"),
    "t1": TissueContrast("AXT1", 0.80, 0.55, 0.62, 0.12, 1.00, 0.03, 0.85, 0.6, 600.0, 10.0, "SE"),
    "t2": TissueContrast("AXT2", 0.40, 0.60, 0.52, 1.00, 0.70, 0.03, 0.55, 1.7, 5000.0, 100.0, "TSE"),
}


@dataclass(frozen=True)
class BrainPhantom:
    """One phantom volume.

    Attributes:
        image: ``(S, H, W)`` complex64 image (magnitude about 0..1, smooth phase).
        tissue: ``(S, H, W)`` uint8 labels (:data:`TISSUES`), before partial-volume blurring.
        contrast: The intensities used (after this volume's random variation).
    """

    image: np.ndarray
    tissue: np.ndarray
    contrast: TissueContrast

    @property
    def brain(self) -> np.ndarray:
        """bool ``(S, H, W)``: white, grey and deep grey matter."""
        return np.isin(self.tissue, (TISSUES["wm"], TISSUES["gm"], TISSUES["deep_gm"]))


def smooth_field(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    sigma: tuple[float, float, float],
    *,
    wrap: bool = False,
) -> np.ndarray:
    """Gaussian-filtered white noise ``shape`` (float32, zero mean, unit std), filtered in Fourier space.

    Args:
        rng: Random generator.
        shape: ``(S, H, W)``.
        sigma: Filter widths in voxels per axis.
        wrap: Keep the last axis periodic (an angle); otherwise every axis but the first is
            generated on a grid twice as large and cropped, and the slice axis is padded, so the
            field does not wrap around.

    Smooth fields are generated on a coarser grid (a quarter of the filter width per cell) and
    interpolated linearly, which keeps large fields cheap.
    """
    step = [max(1, int(s / 4)) for s in sigma]
    if wrap:
        step[2] = 1  # keep the period exact
    coarse = [max(2, -(-n // k) + 1) for n, k in zip(shape, step)]
    low_sigma = [s / k for s, k in zip(sigma, step)]
    pad = [min(int(np.ceil(3 * low_sigma[0])), 16) if shape[0] > 1 else 0, 0, 0]
    if not wrap:
        pad[1] = pad[2] = 0
        coarse[1], coarse[2] = (
            coarse[1] + int(np.ceil(3 * low_sigma[1])),
            coarse[2] + int(np.ceil(3 * low_sigma[2])),
        )
    full = (coarse[0] + 2 * pad[0], coarse[1], coarse[2])
    spectrum = np.fft.rfftn(rng.standard_normal(full, dtype=np.float32))
    for axis, (n, s) in enumerate(zip(full, low_sigma)):
        freq = np.fft.rfftfreq(n) if axis == 2 else np.fft.fftfreq(n)
        window = np.exp(-2.0 * (np.pi * s * freq) ** 2).astype(np.float32)
        view = [1, 1, 1]
        view[axis] = window.size
        spectrum *= window.reshape(view)
    low = np.fft.irfftn(spectrum, s=full, axes=(0, 1, 2)).astype(np.float32)[pad[0] : pad[0] + coarse[0]]
    if step != [1, 1, 1]:
        grid = [np.arange(n, dtype=np.float32) / k for n, k in zip(shape, step)]
        if wrap:
            grid[2] = grid[2] % low.shape[2]
        field = low
        for axis, positions in enumerate(grid):
            if step[axis] == 1:
                continue
            lo = np.floor(positions).astype(np.intp)
            frac = (positions - lo).reshape([-1 if a == axis else 1 for a in range(3)])
            hi = (
                (lo + 1) % field.shape[axis]
                if (wrap and axis == 2)
                else np.minimum(lo + 1, field.shape[axis] - 1)
            )
            field = np.take(field, lo, axis=axis) * (1 - frac) + np.take(field, hi, axis=axis) * frac
    else:
        field = low
    field = np.ascontiguousarray(field[: shape[0], : shape[1], : shape[2]])
    field -= field.mean()
    std = float(field.std())
    return field / std if std > 0 else field


def _varied(contrast: TissueContrast, rng: np.random.Generator, spread: float) -> TissueContrast:
    def vary(value: float) -> float:
        return float(value * np.clip(1 + spread * rng.standard_normal(), 0.75, 1.25))

    return TissueContrast(
        contrast.acquisition,
        vary(contrast.wm),
        vary(contrast.gm),
        vary(contrast.deep_gm),
        vary(contrast.csf),
        vary(contrast.scalp),
        contrast.bone,
        vary(contrast.marrow),
        contrast.lesion_contrast,
        contrast.tr_ms,
        contrast.te_ms,
        contrast.sequence_type,
    )


def _ellipsoid(
    u: np.ndarray,
    v: np.ndarray,
    z: np.ndarray,
    center: tuple[float, float, float],
    axes: tuple[float, float, float],
    angle: float = 0.0,
) -> np.ndarray:
    """bool ``(S, H, W)``: inside a (rotated in-plane) ellipsoid; only the slices it reaches are computed."""
    out = np.zeros(u.shape, dtype=bool)
    cu, cv, cz = center
    reach = np.flatnonzero(np.abs(z[:, 0, 0] - cz) < axes[2])
    if reach.size == 0:
        return out
    part = slice(int(reach[0]), int(reach[-1]) + 1)
    cos, sin = np.cos(angle), np.sin(angle)
    du, dv = u[part] - cu, v[part] - cv
    ru, rv = cos * du + sin * dv, -sin * du + cos * dv
    out[part] = (ru / axes[0]) ** 2 + (rv / axes[1]) ** 2 + ((z[part] - cz) / axes[2]) ** 2 <= 1.0
    return out


def _folding_field(
    rng: np.random.Generator,
    u: np.ndarray,
    v: np.ndarray,
    rho: np.ndarray,
    slices: int,
    half: float,
    dz: float,
) -> np.ndarray:
    """A random field that varies fast around the head and slowly along the radius, so that its
    zero crossings (the sulci) run mostly inwards from the surface."""
    radii, angles = max(16, int(0.3 * half)), max(64, int(2 * np.pi * 0.85 * half / 2))
    arc = 2 * np.pi * 0.85 / angles  # normalised arc length per angle step
    sigma = (0.05 / dz if slices > 1 else 0.0, 0.07 / (0.6 / radii), 0.045 / arc)
    polar = smooth_field(rng, (slices, radii, angles), sigma, wrap=True)
    theta = np.arctan2(v, u)
    coords = np.stack(
        np.broadcast_arrays(
            np.arange(slices, dtype=np.float32)[:, None, None],
            (np.clip(rho, 0.4, 1.0) - 0.4) / 0.6 * (radii - 1),
            (theta + np.pi) / (2 * np.pi) * angles,
        )
    )
    return ndimage.map_coordinates(polar, coords, order=1, mode="grid-wrap").astype(np.float32)


def brain_phantom(
    shape: tuple[int, int, int],
    rng: np.random.Generator,
    *,
    contrast: str = "flair",
    variation: float = 0.08,
) -> BrainPhantom:
    """A random brain-like volume (see the module docstring).

    Args:
        shape: ``(S, H, W)``.
        rng: Random generator (the volume is a deterministic function of its state).
        contrast: ``"flair"``, ``"t1"`` or ``"t2"``.
        variation: Relative spread of the tissue intensities between volumes.

    Returns:
        A :class:`BrainPhantom`.
    """
    slices, height, width = shape
    base = CONTRASTS[contrast]
    tissue_contrast = _varied(base, rng, variation)
    half = min(height, width) / 2.0
    px = 1.0 / half  # one pixel in normalised units

    # slice positions: skull base to vertex, or one slice through the ventricles
    if slices == 1:
        zs = np.array([0.08 + 0.05 * rng.standard_normal()])
    else:
        lo, hi = -0.42 + 0.04 * rng.standard_normal(), 0.62 + 0.04 * rng.standard_normal()
        zs = lo + (np.arange(slices) + 0.5) * (hi - lo) / slices
    dz = float(zs[1] - zs[0]) if slices > 1 else 1.0
    sigma = lambda length: (length / dz if slices > 1 else 0.0, length * half, length * half)  # noqa: E731

    z = zs.astype(np.float32)[:, None, None]
    v0 = ((np.arange(height, dtype=np.float32) - height / 2 + 0.5) * px)[None, :, None]
    u0 = ((np.arange(width, dtype=np.float32) - width / 2 + 0.5) * px)[None, None, :]
    angle = np.deg2rad(6.0) * rng.standard_normal()
    shift_u, shift_v = 0.03 * rng.standard_normal(2)
    u = np.cos(angle) * (u0 - shift_u) + np.sin(angle) * (v0 - shift_v)
    v = -np.sin(angle) * (u0 - shift_u) + np.cos(angle) * (v0 - shift_v)
    u = u + 0.025 * smooth_field(rng, shape, sigma(0.35))  # smooth deformation
    v = v + 0.025 * smooth_field(rng, shape, sigma(0.35))
    z = np.broadcast_to(z, shape)

    axis_u = 0.74 * (1 + 0.04 * rng.standard_normal())
    axis_v = 0.90 * (1 + 0.03 * rng.standard_normal())
    section = np.sqrt(np.clip(1.0 - z**2, 0.05, None))  # the head narrows towards the vertex
    rho = np.sqrt((u / axis_u) ** 2 + (v / axis_v) ** 2) / section

    folding = _folding_field(rng, u, v, rho, slices, half, dz)
    surface = 0.855 + 0.012 * smooth_field(rng, shape, sigma(0.15))
    tissue = np.zeros(shape, dtype=np.uint8)
    tissue[rho < 1.0] = TISSUES["scalp"]
    tissue[rho < 0.955] = TISSUES["bone"]
    tissue[rho < 0.93] = TISSUES["marrow"]
    tissue[rho < 0.905] = TISSUES["bone"]
    tissue[rho < 0.885] = TISSUES["csf"]
    brain = rho < surface
    # sulci: where the folding field crosses zero (distance to the crossing < 0.7 px), deep enough
    grad_v, grad_u = np.gradient(folding, axis=(1, 2))
    distance = np.abs(folding) / np.maximum(np.hypot(grad_u, grad_v), 1e-6)
    depth = 0.64 + 0.05 * smooth_field(rng, shape, sigma(0.2))
    csf = brain & (distance < 0.7) & (rho > depth)
    # interhemispheric fissure (the corpus callosum joins the hemispheres in the middle)
    fissure = (np.abs(u) < 0.8 * px) & ((v < -0.3 * axis_v) | (v > 0.38 * axis_v) | (z > 0.35))
    csf |= brain & fissure
    ventricles = np.zeros(shape, dtype=bool)
    size = float(np.clip(1 + 0.25 * rng.standard_normal(), 0.6, 1.6))
    for side in (-1.0, 1.0):
        ventricles |= _ellipsoid(
            u, v, z, (0.09 * side, -0.04, 0.06), (0.055 * size, 0.30, 0.24), -side * 0.18
        )
    ventricles |= _ellipsoid(u, v, z, (0.0, 0.06, -0.18), (0.012 * size + px, 0.11, 0.12))
    deep = np.zeros(shape, dtype=bool)
    for side in (-1.0, 1.0):
        deep |= _ellipsoid(u, v, z, (0.21 * side, -0.02, -0.16), (0.09, 0.16, 0.15), side * 0.3)
        deep |= _ellipsoid(u, v, z, (0.08 * side, 0.14, -0.12), (0.07, 0.09, 0.12))
    # cortex: a ribbon of constant thickness along the outer surface and the sulci
    thickness = 0.045 * half
    grey = np.zeros(shape, dtype=bool)
    for s in range(slices):
        inside = brain[s] & ~csf[s]
        if inside.any():
            grey[s] = inside & (ndimage.distance_transform_edt(inside) < thickness)
    csf |= brain & ventricles
    deep &= brain & ~csf
    tissue[brain] = TISSUES["wm"]
    tissue[grey] = TISSUES["gm"]
    tissue[deep] = TISSUES["deep_gm"]
    tissue[brain & csf] = TISSUES["csf"]

    values = np.zeros(len(TISSUES), dtype=np.float32)
    for name, label in TISSUES.items():
        if name != "background":
            values[label] = getattr(tissue_contrast, name)
    texture_amplitude = np.zeros(len(TISSUES), dtype=np.float32)
    texture_amplitude[[TISSUES["wm"], TISSUES["deep_gm"]]] = 0.03
    texture_amplitude[[TISSUES["gm"], TISSUES["scalp"], TISSUES["marrow"]]] = 0.05
    magnitude = values[tissue]
    fine = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), (0, 0.8, 0.8))
    fine /= max(float(fine.std()), 1e-6)
    magnitude *= 1 + texture_amplitude[tissue] * fine
    magnitude = ndimage.gaussian_filter(magnitude, (0, 0.6, 0.6))  # partial volume at edges
    magnitude *= 1 + 0.10 * smooth_field(rng, shape, sigma(0.5))  # intensity bias
    magnitude = np.clip(magnitude, 0, None)

    coefficients = rng.normal(0.0, 0.6, 4)
    phase = coefficients[0] * np.pi + coefficients[1] * u0 + coefficients[2] * v0 + coefficients[3] * u0 * v0
    phase = phase + 0.8 * smooth_field(rng, shape, sigma(0.4))
    image = (magnitude * np.exp(1j * phase)).astype(np.complex64)
    return BrainPhantom(image=image, tissue=tissue, contrast=tissue_contrast)
