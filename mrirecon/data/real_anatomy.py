"""A real-anatomy evaluation set: real MR brain images from another source than the training anatomy.

The training simulator (:mod:`mrirecon.data.realistic`) draws its anatomy from the MNI152 template
(an average of 152 brains, shipped in nilearn). The evaluation images here are single real
subjects shipped in the ``dipy`` wheel (``dipy/data/files``), so a model is scored on anatomy it
never saw:

- ``t1_coronal_slice.npy``: a real T1-weighted coronal brain slice, 256 × 256 (skull-stripped);
- ``S0_10slices.nii.gz``: ten real axial b0 (T2-weighted echo-planar) slices, 128 × 128 at 2 mm;
  the slices through the cerebrum (3–8) are used.

Each image is a magnitude image with its own (real) texture and noise. The acquisition is
simulated as for the training data: a smooth background phase, hypo- and hyperintense lesions of
the shared lesion model placed in tissue (labels kept; the T1 slice only), coil maps of a
birdcage or surface array, correlated coil noise, the fully sampled k-space and the RSS reference.
The T1 slice is used ``repeats`` (8) times with different arrays, noise and lesions.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from mrirecon.data.coil_arrays import noise_covariance, simulate_array
from mrirecon.data.lesions import apply_lesions
from mrirecon.data.realistic import (
    RealisticOptions,
    RealisticSlice,
    acquire,
    lesion_labels,
    place_lesions,
    smooth_phase,
)
from mrirecon.errors import ConfigError

__all__ = ["RealImage", "real_images", "simulate_real_anatomy"]

#: Lesions of the evaluation set: every slice has 3–6, hypo- and hyperintense, 2–5 pixels in radius
#: (2–5 mm on the 1 mm T1 slice, 4–10 mm on the 2 mm b0 slices).
EVALUATION_LESIONS = RealisticOptions(
    lesion_probability=1.0,
    lesion_count=(3, 6),
    lesion_radius_mm=(2.0, 5.0),
    hyperintense=(1.3, 2.0),
    hypointense=(0.4, 0.75),
)


@dataclass(frozen=True)
class RealImage:
    """One real magnitude image.

    Attributes:
        name: Short name (file names are made from it).
        image: ``(H, W)`` float32, maximum 1.
        pixel_mm: Pixel size, mm.
        contrast: ``t1`` or ``t2``.
    """

    name: str
    image: np.ndarray
    pixel_mm: float
    contrast: str


def _dipy_folder() -> Path:
    spec = importlib.util.find_spec("dipy")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "the real-anatomy evaluation set needs the images shipped in the 'dipy' package",
            hint="pip install dipy (part of mrirecon's dev and benchmark extras)",
        )
    folder = Path(spec.origin).parent / "data" / "files"
    for name in ("t1_coronal_slice.npy", "S0_10slices.nii.gz"):
        if not (folder / name).is_file():
            raise ConfigError(f"the installed dipy lacks {folder / name}", hint="reinstall dipy from PyPI")
    return folder


def real_images() -> list[RealImage]:
    """The real images of the set (module docstring), in a fixed order."""
    import nibabel  # installed with nilearn and dipy

    folder = _dipy_folder()
    t1 = np.load(folder / "t1_coronal_slice.npy").astype(np.float32)
    out = [RealImage("dipy_t1_coronal", t1 / float(t1.max()), 1.0, "t1")]
    image = nibabel.load(str(folder / "S0_10slices.nii.gz"))
    volume = np.asarray(image.dataobj, dtype=np.float32)[..., 0]  # type: ignore[attr-defined]
    peak = float(volume.max())
    for index in range(3, 9):
        # NIfTI (x right→left... , y posterior→anterior): rows anterior → posterior for display
        plane = np.ascontiguousarray(np.rot90(volume[:, :, index]))
        out.append(RealImage(f"dipy_b0_axial_{index}", plane / peak, 2.0, "t2"))
    return out


def _tissue(image: np.ndarray) -> np.ndarray:
    """Bool ``(H, W)``: the head's tissue (above half the mean of the non-background pixels, holes
    filled, largest component)."""
    foreground = image[image > 0.05 * float(image.max())]
    level = 0.5 * float(foreground.mean()) if foreground.size else 0.15 * float(image.max())
    mask = ndimage.binary_fill_holes(ndimage.binary_opening(image > level, iterations=1))
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum(mask, labels, range(1, count + 1))
        mask = labels == (int(np.argmax(sizes)) + 1)
    return mask


def simulate_real_anatomy(
    real: RealImage,
    seed: int | tuple[int, ...],
    *,
    coils: tuple[int, int] = (8, 16),
    snr: tuple[float, float] = (20.0, 40.0),
    lesions: RealisticOptions = EVALUATION_LESIONS,
    array_seed: int | tuple[int, ...] | None = None,
) -> RealisticSlice:
    """Acquire one real image with simulated phase, lesions, coils and correlated noise.

    Args:
        real: The image.
        seed: Seed of everything drawn.
        coils: Range of the coil count.
        snr: Range of the SNR (mean tissue magnitude / noise σ), drawn log-uniformly.
        lesions: Lesion options (placement region: the tissue, eroded).
        array_seed: Seed of the coil array, its noise covariance and the SNR (slices of one
            volume share it); default ``seed``.

    Returns:
        A :class:`~mrirecon.data.realistic.RealisticSlice` (``image`` holds the lesions).
    """
    entropy = list(seed) if isinstance(seed, tuple) else [int(seed)]
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    shape = real.image.shape
    tissue = _tissue(real.image)
    # lesion sizes are in pixels of a 1 mm grid (2-5 px): on coarser images (the 2 mm b0 slices) they
    # grow with the pixel, so that every lesion covers enough pixels to be measured against its ring
    placed = place_lesions([ndimage.binary_erosion(tissue, iterations=3)], lesions, 1.0, rng)
    magnitude = real.image
    if placed:
        magnitude = apply_lesions(magnitude[None], placed)[0][0]
    image = (magnitude * np.exp(1j * smooth_phase(rng, shape))).astype(np.complex64)
    fov = (shape[0] * real.pixel_mm, shape[1] * real.pixel_mm)
    array_entropy = (
        entropy
        if array_seed is None
        else (list(array_seed) if isinstance(array_seed, tuple) else [int(array_seed)])
    )
    array_rng = np.random.default_rng(np.random.SeedSequence([*array_entropy, 1]))
    kind = str(array_rng.choice(["birdcage", "surface"]))
    count = int(array_rng.integers(coils[0], coils[1] + 1))
    maps, raw = simulate_array(kind, count, shape, fov, array_rng)
    covariance = noise_covariance(raw, array_rng)
    drawn_snr = float(np.exp(array_rng.uniform(np.log(snr[0]), np.log(snr[1]))))
    sigma = float(real.image[tissue].mean()) / drawn_snr
    kspace, target = acquire(image, maps, covariance, sigma, rng)
    return RealisticSlice(
        kspace=kspace,
        target=target,
        image=image,
        coil_maps=maps,
        noise_covariance=covariance * sigma**2,
        noise_std=sigma,
        snr=drawn_snr,
        labels=lesion_labels(placed, shape),
        lesions=tuple(placed),
        brain=tissue.astype(np.float32),
        params={
            "anatomy": real.name,
            "contrast": real.contrast,
            "acquisition": "AXT1" if real.contrast == "t1" else "AXT2",
            "coil_array": kind,
            "coils": count,
            "fov_mm": fov,
            "snr": drawn_snr,
        },
    )


def real_anatomy_volumes(seed: int = 0, repeats: int = 8) -> list[tuple[str, list[RealisticSlice]]]:
    """The evaluation volumes: the T1 slice ``repeats`` times (one-slice volumes, different
    acquisitions and lesions) and the b0 slices as one volume, without lesions: their tissue is
    too noisy for a lesion's contrast to be measured within 10 % even in the noiseless image (a
    perfect reconstruction kept 19 of 29 lesions there)."""
    images = real_images()
    volumes: list[tuple[str, list[RealisticSlice]]] = []
    t1 = images[0]
    for k in range(repeats):
        volumes.append((f"{t1.name}_{k}", [simulate_real_anatomy(t1, (seed, 0, k))]))
    no_lesions = dataclasses.replace(EVALUATION_LESIONS, lesion_probability=0.0)
    b0 = [
        simulate_real_anatomy(img, (seed, 1, k), array_seed=(seed, 1), lesions=no_lesions)
        for k, img in enumerate(images[1:])
    ]
    volumes.append(("dipy_b0_axial", b0))
    return volumes
