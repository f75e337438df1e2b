"""The realistic simulator: real brain anatomy, randomised contrast, vendor-like arrays, correlated noise.

One slice (:func:`simulate_realistic_slice`) or a volume of neighbouring slices
(:func:`simulate_realistic_volume`) is made in these steps, every random choice drawn from a
``numpy.random.SeedSequence`` (the same seed, the same data, on every machine):

1. **Geometry.** A matrix ``H × W`` (160–384 rows by default, rectangular), a field of view
   (210–270 mm), an orientation (axial, coronal, sagittal) and a plane through the MNI152
   template with a random tilt, rotation, scale, shift and elastic deformation
   (:mod:`mrirecon.data.anatomy`), sampled on a grid ``oversampling`` (1.5) times finer than the
   matrix: the object has detail the acquisition cannot resolve.
2. **Anatomy.** Grey matter, white matter and CSF fractions, sharpened by a random power (the
   template is an average of 152 brains and blurrier than one brain), with fine sulci cut into the
   cortex along the zero lines of a random field; with probability ``skull`` a CSF rim, skull
   (cortical bone around marrow) and scalp of random, smoothly varying thickness around the brain
   (else the skull-stripped look of many research data sets).
3. **Contrast** (domain randomisation): tissue intensities drawn around T1-, T2-, PD- or
   FLAIR-weighted values (±15 %), or, for the ``random`` family, each tissue uniformly in
   [0.03, 1]; fine multiplicative texture (1–8 %); a smooth MRI bias field (MONAI's
   ``RandBiasField``, a degree-3 polynomial in the exponent).
4. **Lesions** of the shared lesion model (:mod:`mrirecon.data.lesions`), hyper- (×1.25–2.2) or
   hypointense (×0.35–0.8) in every contrast, 1.5–6 mm radius, mostly in white matter; labels on
   the matrix grid.
5. **Phase**: a smooth background phase (a constant, linear and quadratic terms and a smooth
   random field).
6. **Acquisition.** The fine complex image is Fourier transformed and its central ``H × W`` block
   kept (band-limited, with the Gibbs ringing of a real acquisition); coil maps of a birdcage or
   surface array of 4–32 coils (:mod:`mrirecon.data.coil_arrays`); complex noise with a coil
   covariance ``σ²·Ψ`` built from the coils' overlap; SNR (mean brain magnitude / σ) drawn
   log-uniformly in 10–50.
7. **Output**: k-space ``F(S_c·x + n_c)`` and, as in fastMRI, the reference = RSS of the noisy coil
   images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from mrirecon.data.anatomy import (
    ORIENTATIONS,
    TissueSlice,
    linear_resampler,
    load_template,
    sample_tissue_slice,
    smooth_noise_2d,
)
from mrirecon.data.coil_arrays import coil_noise, noise_covariance, simulate_array
from mrirecon.data.lesions import Lesion, LesionDraw, apply_lesions, lesion_fraction, place_in_regions
from mrirecon.data.realistic_options import CONTRAST_FAMILIES, RealisticOptions
from mrirecon.errors import ConfigError
from mrirecon.physics import fft2c, ifft2c, rss

__all__ = [
    "CONTRAST_FAMILIES",
    "RealisticOptions",
    "RealisticSlice",
    "acquire",
    "expected_target",
    "lesion_labels",
    "place_lesions",
    "simulate_realistic_slice",
    "simulate_realistic_volume",
    "smooth_phase",
]

_ACQUISITION = {"t1": "AXT1", "t2": "AXT2", "pd": "AXPD", "flair": "AXFLAIR", "random": "AXMIXED"}


@dataclass(frozen=True)
class RealisticSlice:
    """One simulated slice (or, stacked, a volume) and what it was made of.

    Attributes:
        kspace: ``(C, H, W)`` complex64 fully sampled noisy k-space (centred FFT).
        target: ``(H, W)`` float32 RSS of the noisy coil images (fastMRI's reference).
        image: ``(H, W)`` complex64 noiseless band-limited image (lesions included).
        coil_maps: ``(C, H, W)`` complex64, Σ_c |S_c|² = 1.
        noise_covariance: ``(C, C)`` complex128 covariance of the noise between coils, ``σ²·Ψ``.
        noise_std: σ.
        snr: The drawn SNR.
        labels: ``(H, W)`` int16 lesion labels (k for lesion k).
        lesions: The lesions (centre slice index 0, rows and columns on the matrix grid).
        brain: ``(H, W)`` float32 brain fraction on the matrix grid.
        params: What was drawn (orientation, contrast family and intensities, array, FOV ...).
    """

    kspace: np.ndarray
    target: np.ndarray
    image: np.ndarray
    coil_maps: np.ndarray
    noise_covariance: np.ndarray
    noise_std: float
    snr: float
    labels: np.ndarray
    lesions: tuple[Lesion, ...]
    brain: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _VolumeDraw:
    """What slices of one volume share."""

    shape: tuple[int, int]
    fine: tuple[int, int]
    fov_mm: tuple[float, float]
    orientation: str
    family: str
    intensities: dict[str, float]
    geometry_seed: int
    skull: bool
    sharpen: float
    texture: float
    sulci: float
    coil_kind: str
    coil_maps: np.ndarray
    covariance: np.ndarray
    snr: float
    phase_seed: int
    bias_seed: int


def _round(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def _draw_volume(options: RealisticOptions, rng: np.random.Generator) -> _VolumeDraw:
    rows = _round(rng.uniform(*options.rows), options.multiple)
    cols = _round(rows * rng.uniform(*options.aspect), options.multiple)
    fov_rows = float(rng.uniform(*options.fov_mm))
    fov = (fov_rows, fov_rows * cols / rows)
    fine = (_round(rows * options.oversampling, 2), _round(cols * options.oversampling, 2))
    weights = np.array([2.0 if o == "axial" else 1.0 for o in options.orientations])
    orientation = str(rng.choice(options.orientations, p=weights / weights.sum()))
    family = str(rng.choice(options.contrasts))
    names = ("gm", "wm", "csf", "bone", "marrow", "scalp")
    if family == "random":
        intensities = {n: float(rng.uniform(0.03, 1.0)) for n in names}
    else:
        base = CONTRAST_FAMILIES[family]
        intensities = {n: float(base[n] * np.clip(1 + 0.15 * rng.standard_normal(), 0.7, 1.3)) for n in names}
    coil_kind = str(rng.choice(options.coil_kinds))
    coils = int(rng.integers(options.coils[0], options.coils[1] + 1))
    maps, raw = simulate_array(coil_kind, coils, (rows, cols), fov, rng)
    covariance = noise_covariance(raw, rng)
    snr = float(np.exp(rng.uniform(np.log(options.snr[0]), np.log(options.snr[1]))))
    return _VolumeDraw(
        shape=(rows, cols),
        fine=fine,
        fov_mm=fov,
        orientation=orientation,
        family=family,
        intensities=intensities,
        geometry_seed=int(rng.integers(2**31)),
        skull=bool(rng.random() < options.skull),
        sharpen=float(rng.uniform(*options.sharpen)),
        texture=float(rng.uniform(*options.texture)),
        sulci=float(rng.uniform(*options.sulci)),
        coil_kind=coil_kind,
        coil_maps=maps,
        covariance=covariance,
        snr=snr,
        phase_seed=int(rng.integers(2**31)),
        bias_seed=int(rng.integers(2**31)),
    )


def _tissue_fractions(
    tissue: TissueSlice, draw: _VolumeDraw, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Sharpened tissue fractions with fine sulci, and the layers outside the brain."""
    gm, wm, csf = (np.clip(t, 0, 1) for t in (tissue.gm, tissue.wm, tissue.csf))
    brain = np.clip(gm + wm + csf, 0, 1)
    powered = [t**draw.sharpen for t in (gm, wm, csf)]
    total = np.maximum(powered[0] + powered[1] + powered[2], 1e-6)
    gm, wm, csf = (p / total * brain for p in powered)
    if draw.sulci > 0:  # thin CSF lines in the cortex where a random field crosses zero
        field_ = ndimage.gaussian_filter(rng.standard_normal(gm.shape).astype(np.float32), 3.0)
        gy, gx = np.gradient(field_)
        near = np.abs(field_) / np.maximum(np.hypot(gy, gx), 1e-6)
        cut = draw.sulci * np.clip(1.0 - near / 0.7, 0, 1) * gm
        gm, csf = gm - cut, csf + cut
    out = {"gm": gm, "wm": wm, "csf": csf}
    outside = 1.0 - brain
    names = ("rim", "bone", "marrow", "scalp")
    if not draw.skull:
        return out | {n: np.zeros_like(gm) for n in names}
    pixel = tissue.pixel_mm[0]
    # the skull follows a smoothed outline of the brain (it bridges the gaps between lobes)
    step = 4  # smoothed on a grid 4 times coarser: the outline is smooth anyway
    small = ndimage.gaussian_filter(brain[::step, ::step], 6.0 / (pixel * step))
    up_r = linear_resampler(brain.shape[0], small.shape[0])
    up_c = linear_resampler(brain.shape[1], small.shape[1])
    outline = (up_r @ small @ up_c.T) > 0.3
    distance = ndimage.distance_transform_edt(~(outline | (brain >= 0.5))) * pixel
    wobble = 1.0 + 0.25 * smooth_noise_2d(rng, gm.shape, 5)
    rim, bone, scalp = (rng.uniform(*r) * wobble for r in ((0.5, 3.0), (4.0, 9.0), (3.0, 9.0)))
    edges = np.cumsum([np.zeros_like(rim), rim, bone, scalp], axis=0)
    gap = outline & (brain < 0.5)  # between the brain and the outline: CSF
    layers = {
        "rim": gap | ((distance > 0) & (distance <= edges[1])),
        "bone": (distance > edges[1]) & (distance <= edges[2]),
        "scalp": (distance > edges[2]) & (distance <= edges[3]),
    }
    middle = np.abs(distance - (edges[1] + edges[2]) / 2) < 0.3 * bone
    layers["marrow"] = layers["bone"] & middle
    layers["bone"] &= ~middle
    for name in names:
        out[name] = ndimage.gaussian_filter(layers[name].astype(np.float32), 0.6) * outside
    return out


def place_lesions(
    regions: Sequence[np.ndarray],
    options: RealisticOptions,
    pixel_mm: float,
    rng: np.random.Generator,
    *,
    secondary: float = 0.25,
) -> list[Lesion]:
    """Lesions of the shared model on one slice's grid, clear of each other and of the region's edge.

    Args:
        regions: Bool ``(H, W)`` maps where lesions may lie: the first (white matter) is used for
            a share ``1 − secondary`` of the lesions, the second (any tissue), if given, for the rest.
        options: Count, radius, contrast and probability of lesions.
        pixel_mm: Pixel size, mm (the radius range is in mm).
        rng: Random generator.
        secondary: Share of lesions placed in the second region.

    Returns:
        Lesions with centres ``(0, row, column)``; none with probability ``1 − lesion_probability``.
        Placed by :func:`mrirecon.data.lesions.place_in_regions` (the outline and 1 pixel inside
        the region, lesions apart by their reaches).
    """
    if rng.random() >= options.lesion_probability:
        return []
    wanted = int(rng.integers(options.lesion_count[0], options.lesion_count[1] + 1))

    def draw(generator: np.random.Generator) -> LesionDraw:
        radius = max(1.0, float(generator.uniform(*options.lesion_radius_mm)) / pixel_mm)
        irregularity = float(generator.uniform(0.05, 0.35))
        hypo = generator.random() < options.hypo_fraction
        contrast = float(generator.uniform(*(options.hypointense if hypo else options.hyperintense)))
        return LesionDraw(radius, contrast, irregularity)

    weights = [1.0 - secondary, secondary][: len(regions)] if len(regions) > 1 else None
    return place_in_regions(
        [np.asarray(r, dtype=bool)[None] for r in regions], draw, wanted, rng, weights=weights
    )


def lesion_labels(lesions: Sequence[Lesion], shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` int16 labels (k for lesion k) of lesions placed by :func:`place_lesions`."""
    labels = np.zeros(shape, dtype=np.int16)
    for k, les in enumerate(lesions, start=1):
        labels[lesion_fraction(les, shape, 0) >= 0.5] = k
    return labels


def smooth_phase(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth background phase ``(H, W)`` float32: a constant, linear and quadratic terms and a
    smooth random field of up to 2 rad."""
    v = np.linspace(-1, 1, shape[0], dtype=np.float32)[:, None]
    u = np.linspace(-1, 1, shape[1], dtype=np.float32)[None, :]
    c = rng.normal(0, 1.0, 6)
    phase = c[0] * np.pi + c[1] * u + c[2] * v + 0.5 * (c[3] * u * u + c[4] * v * v + c[5] * u * v)
    return (phase + float(rng.uniform(0, 2)) * smooth_noise_2d(rng, shape, 4)).astype(np.float32)


def acquire(
    image: np.ndarray, coil_maps: np.ndarray, covariance: np.ndarray, sigma: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Fully sampled k-space ``(C, H, W)`` of ``S_c·x + n_c`` (noise covariance ``σ²·Ψ``) and the RSS
    ``(H, W)`` of the noisy coil images (fastMRI's reference)."""
    coil_images = coil_maps * image[None]
    if sigma > 0:
        coil_images = coil_images + coil_noise(covariance, image.shape, sigma, rng)
    tensor = torch.from_numpy(np.ascontiguousarray(coil_images, dtype=np.complex64))
    return fft2c(tensor).numpy(), rss(tensor, dim=0).numpy().astype(np.float32)


def expected_target(sim: RealisticSlice) -> np.ndarray:
    """The reference without its noise: ``sqrt(Σ_c |S_c·x|² + σ²·tr Ψ)``, ``(H, W)`` float32.

    ``E[RSS²]`` of the noisy coil images is the noiseless coil images' ``Σ|S_c·x|²`` plus the noise
    power ``σ²·tr Ψ`` of every pixel, so this image has fastMRI's reference's level everywhere
    (its noise floor in the background and dark tissue included) without its pixel-to-pixel noise.
    A training target that does not ask the network to predict noise.
    """
    clean = np.sum(np.abs(sim.coil_maps * sim.image[None]) ** 2, axis=0)
    floor = float(np.real(np.trace(sim.noise_covariance)))
    return np.sqrt(clean + floor).astype(np.float32)


def _bias(draw: _VolumeDraw, image: np.ndarray) -> np.ndarray:
    from monai.transforms import RandBiasField  # lazy: MONAI's import takes a second

    transform = RandBiasField(degree=3, coeff_range=(0.0, 0.25), prob=1.0)
    transform.set_random_state(seed=draw.bias_seed)
    return np.asarray(transform(image[None], randomize=True))[0].astype(np.float32)


def _render(
    draw: _VolumeDraw, options: RealisticOptions, depth: float | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[Lesion], np.ndarray, float]:
    """The noiseless band-limited complex image ``(H, W)``, lesion labels, lesions, brain fraction.

    A plane drawn at a random depth that cuts less than 3 % of the field of view through the brain
    (past the vertex, below the cerebellum, after a large tilt) is drawn again, closer to the
    centre each time: every slice shows anatomy.
    """
    for attempt in range(8):
        tissue = sample_tissue_slice(
            rng,
            draw.fine,
            draw.fov_mm,
            orientation=draw.orientation,
            depth=depth if depth is not None else float(rng.uniform(-0.85, 0.85)) * 0.8**attempt,
            geometry_rng=np.random.default_rng(draw.geometry_seed),
        )
        if depth is not None or float((tissue.brain > 0.5).mean()) >= 0.03:
            break
    fractions = _tissue_fractions(tissue, draw, rng)
    values = draw.intensities | {"rim": draw.intensities["csf"]}
    magnitude = sum(values[name] * fractions[name] for name in fractions)
    texture = ndimage.gaussian_filter(
        rng.standard_normal(draw.fine).astype(np.float32), rng.uniform(0.5, 1.5)
    )
    texture /= max(float(texture.std()), 1e-6)
    magnitude = np.clip(magnitude * (1 + draw.texture * texture), 0, None)
    magnitude = _bias(draw, magnitude.astype(np.float32))
    # lesions: placed on the matrix grid, drawn on the fine grid
    factor = draw.fine[0] / draw.shape[0], draw.fine[1] / draw.shape[1]
    down_r, down_c = (
        linear_resampler(draw.shape[0], draw.fine[0]),
        linear_resampler(draw.shape[1], draw.fine[1]),
    )
    coarse = lambda x: down_r @ x @ down_c.T  # noqa: E731
    brain = np.clip(coarse(tissue.brain), 0, 1)
    pixel_mm = draw.fov_mm[0] / draw.shape[0]
    lesions = place_lesions([coarse(fractions["wm"]) > 0.6, brain > 0.9], options, pixel_mm, rng)
    labels = lesion_labels(lesions, draw.shape)
    if lesions:
        fine = [
            Lesion(
                center=(
                    0.0,
                    (les.center[1] + 0.5) * factor[0] - 0.5,
                    (les.center[2] + 0.5) * factor[1] - 0.5,
                ),
                radius=les.radius * factor[0],
                contrast=les.contrast,
                irregularity=les.irregularity,
                seed=les.seed,
            )
            for les in lesions
        ]
        magnitude = apply_lesions(magnitude[None], fine)[0][0]
    image = torch.from_numpy(
        (magnitude * np.exp(1j * smooth_phase(np.random.default_rng(draw.phase_seed), draw.fine))).astype(
            np.complex64
        )
    )
    spectrum = fft2c(image)
    # the centred block around the zero frequency (index n // 2 of a centred spectrum of size n)
    top, left = draw.fine[0] // 2 - draw.shape[0] // 2, draw.fine[1] // 2 - draw.shape[1] // 2
    block = spectrum[top : top + draw.shape[0], left : left + draw.shape[1]]
    ratio = np.sqrt(draw.shape[0] * draw.shape[1] / (draw.fine[0] * draw.fine[1]))
    low = ifft2c(block * ratio).numpy()
    inside = brain > 0.5
    # the noise level follows the brain's mean magnitude; a plane without brain (a volume's end
    # slice) takes the mean of the brightest tissue, so it is never noise-free
    mean_brain = float(np.abs(low)[inside].mean()) if inside.sum() >= 16 else max(values.values()) * 0.5
    return low, labels, lesions, brain.astype(np.float32), mean_brain


def _params(draw: _VolumeDraw) -> dict[str, Any]:
    return {
        "orientation": draw.orientation,
        "contrast": draw.family,
        "acquisition": _ACQUISITION[draw.family],
        "intensities": draw.intensities,
        "coil_array": draw.coil_kind,
        "coils": int(draw.coil_maps.shape[0]),
        "fov_mm": draw.fov_mm,
        "skull": draw.skull,
        "snr": draw.snr,
    }


def _streams(seed: int | tuple[int, ...]) -> list[np.random.Generator]:
    entropy = list(seed) if isinstance(seed, tuple) else [int(seed)]
    return [np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(3)]


def simulate_realistic_volume(
    options: RealisticOptions, seed: int | tuple[int, ...], *, slices: int = 1, spacing_mm: float = 5.0
) -> list[RealisticSlice]:
    """Neighbouring slices through one simulated head (shared geometry, contrast, array and noise level).

    Args:
        options: What to randomise.
        seed: Seed (an int or a tuple of ints, e.g. ``(dataset seed, volume index)``).
        slices: Number of slices.
        spacing_mm: Distance between slice centres.

    Returns:
        One :class:`RealisticSlice` per slice, in order along the slice normal.
    """
    if slices < 1:
        raise ConfigError(f"slices must be at least 1, got {slices}")
    draw_rng, anatomy_rng, noise_rng = _streams(seed)
    draw = _draw_volume(options, draw_rng)
    normal = np.asarray(ORIENTATIONS[draw.orientation][2])
    reach = float(np.abs(normal) @ load_template().extent)
    span = (slices - 1) * spacing_mm / reach
    first = float(draw_rng.uniform(-0.8, 0.8 - span)) if span < 1.6 else -span / 2
    out = []
    for index in range(slices):
        depth = first + index * spacing_mm / reach
        out.append(_slice(draw, options, depth, anatomy_rng, noise_rng))
    return out


def simulate_realistic_slice(options: RealisticOptions, seed: int | tuple[int, ...]) -> RealisticSlice:
    """One independent slice (its own geometry, contrast, array and noise): :func:`simulate_realistic_volume`
    with one slice at a random depth."""
    draw_rng, anatomy_rng, noise_rng = _streams(seed)
    return _slice(_draw_volume(options, draw_rng), options, None, anatomy_rng, noise_rng)


def _slice(
    draw: _VolumeDraw,
    options: RealisticOptions,
    depth: float | None,
    anatomy_rng: np.random.Generator,
    noise_rng: np.random.Generator,
) -> RealisticSlice:
    image, labels, lesions, brain, mean_brain = _render(draw, options, depth, anatomy_rng)
    sigma = mean_brain / draw.snr
    kspace, target = acquire(image, draw.coil_maps, draw.covariance, sigma, noise_rng)
    params = _params(draw) if depth is None else _params(draw) | {"depth": depth}
    return RealisticSlice(
        kspace=kspace,
        target=target,
        image=image,
        coil_maps=draw.coil_maps,
        noise_covariance=draw.covariance * sigma**2,
        noise_std=float(sigma),
        snr=draw.snr,
        labels=labels,
        lesions=tuple(lesions),
        brain=brain,
        params=params,
    )
