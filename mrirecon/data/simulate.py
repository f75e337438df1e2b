"""Synthetic multi-coil brain datasets in the fastMRI layout (``mrirecon simulate``).

Per volume (all randomness from ``numpy.random.SeedSequence([seed, volume])``, split into
independent streams for anatomy, coils, lesions and noise, so volume 3 is the same whether 4 or
40 are generated, and adding lesions changes nothing but the lesions):

1. a brain-like phantom (:mod:`mrirecon.data.phantom`) with its contrast, deformation and phase;
2. with lesions: white-matter lesions of the shared lesion model (:mod:`mrirecon.data.lesions`)
   placed in white matter away from its edges; their labels and parameters are stored;
3. birdcage coil maps (``sigpy.mri.birdcage_maps``; coil radius and the array's position vary
   between volumes), normalised so that Σ_c |S_c|² = 1;
4. complex Gaussian noise of standard deviation σ per coil image (σ²/2 per real and imaginary
   part; equivalently in k-space, which the unitary FFT maps white noise to unchanged);
5. k-space = the centred orthonormal FFT of the noisy coil images, and the reference
   ``reconstruction_rss`` = the RSS of those images (like fastMRI's, it contains the noise).

SNR. With maps normalised as above, the optimal (SENSE/Roemer) coil combination of noise has
standard deviation σ, so the SNR of the combined image is ``SNR = mean(|x| over brain tissue) / σ``
(white and grey matter, noiseless magnitude, before lesions). ``--snr`` sets σ from it; the attributes
``mrirecon_snr`` and ``mrirecon_noise_std`` record both.

Next to the volumes the simulator writes ``manifest.csv`` (splits drawn with the seed).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mrirecon.atomic import final_name
from mrirecon.data.fastmri_writer import write_volume
from mrirecon.data.header import build_ismrmrd_header
from mrirecon.data.lesions import Lesion, LesionDraw, apply_lesions, place_in_regions
from mrirecon.data.manifest import build_manifest
from mrirecon.data.phantom import CONTRASTS, TISSUES, BrainPhantom, brain_phantom
from mrirecon.data.realistic import RealisticOptions
from mrirecon.data.realistic_options import MOST_COILS
from mrirecon.errors import ConfigError, Notice
from mrirecon.physics import fft2c, normalize_coil_maps, rss

__all__ = [
    "FIELD_OF_VIEW_MM",
    "SLICE_THICKNESS_MM",
    "LesionOptions",
    "SimulatedVolume",
    "place_white_matter_lesions",
    "simulate_coil_maps",
    "simulate_dataset",
    "simulate_volume",
    "volume_name",
]

FIELD_OF_VIEW_MM = 220.0
SLICE_THICKNESS_MM = 5.0
MANIFEST_NAME = "manifest.csv"


@dataclass(frozen=True)
class LesionOptions:
    """White-matter lesions per volume.

    Attributes:
        count: ``(least, most)`` lesions per volume (drawn uniformly; fewer where the white
            matter has no room).
        radius_mm: ``(least, most)`` in-plane radius in mm.
        contrast: Intensity factor relative to the white matter; None takes the contrast's
            default (1.8 FLAIR, 0.6 T1, 1.7 T2).
        irregularity: ``(least, most)`` outline wobble.
    """

    count: tuple[int, int] = (2, 5)
    radius_mm: tuple[float, float] = (2.0, 5.0)
    contrast: float | None = None
    irregularity: tuple[float, float] = (0.1, 0.35)

    def __post_init__(self) -> None:
        if not 0 <= self.count[0] <= self.count[1]:
            raise ConfigError(f"lesion count must be 0 <= least <= most, got {self.count}")
        if not (0 < self.radius_mm[0] <= self.radius_mm[1] and math.isfinite(self.radius_mm[1])):
            raise ConfigError(f"lesion radius must be 0 < least <= most mm, got {self.radius_mm}")
        if self.contrast is not None and not (math.isfinite(self.contrast) and self.contrast > 0):
            raise ConfigError(f"lesion contrast must be a positive number, got {self.contrast}")


@dataclass(frozen=True)
class SimulatedVolume:
    """One simulated volume and what it was made of.

    Attributes:
        kspace: ``(S, C, H, W)`` complex64 fully sampled noisy k-space (centred FFT).
        target: ``(S, H, W)`` float32 RSS of the noisy coil images.
        image: ``(S, H, W)`` complex64 noiseless image (lesions included).
        coil_maps: ``(C, H, W)`` complex64, Σ_c |S_c|² = 1.
        noise_std: σ, per coil image pixel (complex).
        snr: The requested SNR.
        phantom: The phantom (tissue labels, contrast).
        lesions: The lesions (centres on the ``(S, H, W)`` grid).
        labels: ``(S, H, W)`` int16 lesion labels, or None without lesions.
        header_xml: The ISMRMRD header written with it.
        attrs: The file attributes written with it.
    """

    kspace: np.ndarray
    target: np.ndarray
    image: np.ndarray
    coil_maps: np.ndarray
    noise_std: float
    snr: float
    phantom: BrainPhantom
    lesions: tuple[Lesion, ...]
    labels: np.ndarray | None
    header_xml: str
    attrs: dict[str, object]


def volume_name(acquisition: str, seed: int, index: int) -> str:
    """The file name of simulated volume ``index``: ``sim_<acquisition>_s<seed>_v<index>.h5``."""
    return f"sim_{acquisition}_s{seed}_v{index:03d}.h5"


def is_volume_name(name: str, seed: int | None = None) -> bool:
    """Whether ``name`` is a :func:`volume_name` of seed ``seed`` (any seed: None), whatever its
    acquisition and index."""
    number = r"\d+" if seed is None else str(seed)
    return re.fullmatch(rf"sim_\w+_s{number}_v\d{{3}}\.h5", name) is not None


def simulate_coil_maps(coils: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Birdcage maps ``(C, H, W)`` complex64 (SigPy), normalised to Σ_c |S_c|² = 1.

    The coil radius (1.2–1.6 of the half field of view) and the array's position (up to 4 % of
    the field of view) vary with ``rng``.
    """
    import sigpy.mri  # lazy: numba start-up

    pad = max(1, int(0.04 * max(height, width)))
    radius = float(rng.uniform(1.2, 1.6))
    maps = sigpy.mri.birdcage_maps((coils, height + 2 * pad, width + 2 * pad), r=radius, dtype=np.complex64)
    dy, dx = rng.integers(0, 2 * pad + 1, size=2)
    maps = np.ascontiguousarray(maps[:, dy : dy + height, dx : dx + width])
    return normalize_coil_maps(torch.from_numpy(maps)[None])[0].numpy()


def place_white_matter_lesions(
    phantom: BrainPhantom, options: LesionOptions, rng: np.random.Generator, pixel_mm: float
) -> list[Lesion]:
    """Lesions centred in white matter, clear of its edges and of each other
    (:func:`mrirecon.data.lesions.place_in_regions`, margin 1 pixel)."""
    wanted = int(rng.integers(options.count[0], options.count[1] + 1))
    contrast = options.contrast if options.contrast is not None else phantom.contrast.lesion_contrast

    def draw(generator: np.random.Generator) -> LesionDraw:
        radius = max(1.5, float(generator.uniform(*options.radius_mm)) / pixel_mm)
        irregularity = float(generator.uniform(*options.irregularity))
        depth = max(0.5, radius * pixel_mm / SLICE_THICKNESS_MM)
        return LesionDraw(radius, float(contrast), irregularity, depth)

    placed = place_in_regions([phantom.tissue == TISSUES["wm"]], draw, wanted, rng, tries=30)
    if len(placed) < wanted:  # (0 of 4 with a 30-40 mm radius: no lesion, and no word of it)
        warnings.warn(
            Notice(
                f"{len(placed)} of the {wanted} lesions drawn fit in the white matter (radius "
                f"{options.radius_mm[0]:g}-{options.radius_mm[1]:g} mm): the others are left out"
            ),
            stacklevel=2,
        )
    return placed


def _brain_mean(phantom: BrainPhantom, image: np.ndarray) -> float:
    brain = phantom.brain
    return float(np.abs(image[brain]).mean()) if brain.any() else float(np.abs(image).mean())


def simulate_volume(
    *,
    slices: int,
    coils: int,
    size: tuple[int, int],
    seed: int,
    index: int = 0,
    snr: float = 30.0,
    contrast: str = "flair",
    lesions: LesionOptions | None = None,
) -> SimulatedVolume:
    """Simulate one volume (see the module docstring); nothing is written.

    Args:
        slices: ``S``.
        coils: ``C``.
        size: ``(H, W)``.
        seed: Dataset seed.
        index: Volume number within the dataset.
        snr: Requested SNR (module docstring); ``inf`` for no noise.
        contrast: ``"flair"``, ``"t1"`` or ``"t2"``.
        lesions: Lesion options, or None for none.
    """
    _check(slices, coils, size, snr, contrast, seed)
    height, width = size
    streams = np.random.SeedSequence([int(seed), int(index)]).spawn(4)
    anatomy, coil_rng, lesion_rng, noise_rng = (np.random.default_rng(s) for s in streams)
    phantom = brain_phantom((slices, height, width), anatomy, contrast=contrast)
    image = phantom.image
    placed: list[Lesion] = []
    labels = None
    pixel_mm = FIELD_OF_VIEW_MM / height
    if lesions is not None:
        placed = place_white_matter_lesions(phantom, lesions, lesion_rng, pixel_mm)
        image, labels = apply_lesions(image, placed)
    maps = simulate_coil_maps(coils, height, width, coil_rng)
    sigma = _brain_mean(phantom, phantom.image) / snr if np.isfinite(snr) else 0.0
    coil_images = torch.from_numpy(maps[None] * image[:, None])
    if sigma > 0:
        shape = coil_images.shape
        noise = noise_rng.standard_normal((2, *shape), dtype=np.float32)
        coil_images += torch.complex(torch.from_numpy(noise[0]), torch.from_numpy(noise[1])) * (
            sigma / np.sqrt(2.0)
        )
    kspace = fft2c(coil_images).numpy()
    target = rss(coil_images, dim=1).numpy().astype(np.float32)
    acquisition = phantom.contrast.acquisition
    patient_id = f"SIM{seed}-{index:03d}"
    header_xml = build_ismrmrd_header(
        encoded_matrix=(height, width, 1),
        encoded_fov_mm=(FIELD_OF_VIEW_MM, FIELD_OF_VIEW_MM * width / height, SLICE_THICKNESS_MM),
        protocol_name=acquisition,
        patient_id=patient_id,
        tr_ms=phantom.contrast.tr_ms,
        te_ms=phantom.contrast.te_ms,
        sequence_type=phantom.contrast.sequence_type,
        receiver_channels=coils,
    )
    attrs: dict[str, object] = {
        "acquisition": acquisition,
        "patient_id": patient_id,
        "mrirecon_snr": float(snr),
        "mrirecon_noise_std": float(sigma),
        "mrirecon_seed": int(seed),
        "mrirecon_volume_index": int(index),
    }
    return SimulatedVolume(
        kspace=kspace,
        target=target,
        image=image,
        coil_maps=maps,
        noise_std=float(sigma),
        snr=float(snr),
        phantom=phantom,
        lesions=tuple(placed),
        labels=labels,
        header_xml=header_xml,
        attrs=attrs,
    )


def _check_seed(seed: int) -> None:
    if seed < 0:  # (NumPy's SeedSequence refuses it with a ValueError)
        raise ConfigError(f"the seed must be at least 0, got {seed}")


def _check(slices: int, coils: int, size: tuple[int, int], snr: float, contrast: str, seed: int = 0) -> None:
    if slices < 1 or not 1 <= coils <= MOST_COILS:
        raise ConfigError(
            f"slices must be at least 1 and coils from 1 to {MOST_COILS}, got {slices} and {coils}"
        )
    if len(size) != 2 or min(size) < 16 or max(size) > 1024:
        raise ConfigError(f"size must be two numbers from 16 to 1024 (H W), got {tuple(size)}")
    _check_seed(seed)
    if not snr > 0:
        raise ConfigError(f"snr must be positive, got {snr}")
    if contrast not in CONTRASTS:
        raise ConfigError(f"unknown contrast '{contrast}'", hint=f"choose one of {', '.join(CONTRASTS)}")


def check_empty_output(folder: Path, overwrite: bool) -> None:
    """Refuse to simulate into a folder that holds a dataset (its manifest would be replaced and its
    files orphaned or mixed with the new ones) unless ``overwrite``; with ``overwrite``, remove the
    dataset there: its manifest and the files it lists in the folder (a smaller new dataset would
    otherwise leave old volumes beside the new ones, for a folder-wide batch run to pick up).

    Raises:
        ConfigError: naming the folder and the fix.
        DataError: ``overwrite`` and an unreadable manifest in the folder.
    """
    if not folder.is_dir():
        return
    if overwrite:
        _remove_dataset(folder)
        return
    held = [p.name for p in folder.iterdir() if p.suffix in (".h5", ".csv")]
    if held:
        raise ConfigError(
            f"this folder already holds a dataset ({len(held)} file(s): {', '.join(sorted(held)[:3])}"
            f"{' ...' if len(held) > 3 else ''})",
            path=folder,
            hint="choose an empty folder, or pass --overwrite to replace it",
        )


def _remove_dataset(folder: Path) -> None:
    """Remove ``folder``'s manifest and the volumes it lists inside ``folder``, and the volumes
    (and partial files) of a simulation that stopped before writing its manifest."""
    from mrirecon.data.manifest import read_manifest

    manifest = folder / "manifest.csv"
    if manifest.is_file():
        inside = folder.resolve()
        for entry in read_manifest(manifest):
            path = Path(entry.path).resolve()
            if path.parent == inside and path.suffix == ".h5":
                path.unlink(missing_ok=True)
        manifest.unlink()
    for path in folder.iterdir():  # an interrupted run's: no manifest lists them
        if is_volume_name(final_name(path).name) and path.is_file():
            path.unlink()


def simulate_dataset(
    output_dir: str | Path,
    *,
    volumes: int,
    slices: int,
    coils: int,
    size: tuple[int, int] = (256, 256),
    seed: int = 0,
    lesions: bool | LesionOptions = False,
    snr: float = 30.0,
    contrast: str = "flair",
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    progress: bool = True,
    echo: Callable[[str], object] | None = None,
    anatomy: str = "phantom",
    realistic: RealisticOptions | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write a synthetic dataset: ``volumes`` fastMRI files and ``manifest.csv`` in ``output_dir``.

    ``anatomy`` chooses the source: ``phantom`` (the procedural phantom of this module, the fast
    option), ``mni`` (the realistic simulator on the MNI152 template, options in ``realistic``;
    ``size``, ``coils``, ``snr``, ``contrast`` and ``lesions`` are the phantom's) or ``dipy``
    (the real-anatomy evaluation set; ``volumes`` acquisitions of its T1 slice);
    see :mod:`mrirecon.data.realistic_dataset`.

    Args:
        output_dir: The folder (created if needed); it must not hold a dataset unless ``overwrite``.
        volumes: Number of volumes.
        slices: Slices per volume.
        coils: Coils.
        size: ``(H, W)``.
        seed: Seed; the same seed gives the same data.
        lesions: True (default lesion options) or :class:`LesionOptions` to add white-matter lesions.
        snr: SNR as defined in the module docstring.
        contrast: ``"flair"``, ``"t1"``, ``"t2"`` or ``"mixed"`` (cycling through the three).
        split: ``(train, val, test)`` fractions of the manifest.
        progress: Show a progress bar.
        echo: Where to report what was written (None: silent).
        anatomy: ``phantom``, ``mni`` or ``dipy`` (above).
        realistic: Options of the ``mni`` simulator.
        overwrite: Write into a folder that already holds a dataset (refused otherwise).

    Returns:
        The volume files, in order.

    Raises:
        ConfigError: for invalid arguments.
    """
    _check_seed(seed)
    check_empty_output(Path(output_dir), overwrite)
    if anatomy != "phantom":
        from mrirecon.data.realistic_dataset import simulate_realistic_dataset

        return simulate_realistic_dataset(
            output_dir,
            anatomy=anatomy,
            volumes=volumes,
            slices=slices,
            seed=seed,
            options=realistic,
            split=split,
            progress=progress,
            echo=echo,
        )
    if volumes < 1:
        raise ConfigError(f"volumes must be at least 1, got {volumes}")
    if contrast != "mixed" and contrast not in CONTRASTS:
        raise ConfigError(
            f"unknown contrast '{contrast}' for the phantom",
            hint=f"choose one of {', '.join(CONTRASTS)} or mixed (--anatomy mni has pd and random too)",
        )
    kinds = list(CONTRASTS) if contrast == "mixed" else [contrast]
    for kind in kinds:
        _check(slices, coils, size, snr, kind)
    options = LesionOptions() if lesions is True else (lesions or None)
    folder = Path(output_dir)
    paths = []
    for index in tqdm(range(volumes), desc="simulate", unit="volume", disable=not progress):
        kind = kinds[index % len(kinds)]
        sim = simulate_volume(
            slices=slices,
            coils=coils,
            size=size,
            seed=seed,
            index=index,
            snr=snr,
            contrast=kind,
            lesions=options,
        )
        path = folder / volume_name(sim.phantom.contrast.acquisition, seed, index)
        write_volume(
            path,
            kspace=sim.kspace,
            header_xml=sim.header_xml,
            reconstruction_rss=sim.target,
            lesion_labels=sim.labels,
            lesion_table=list(sim.lesions) if options is not None else None,
            attrs=sim.attrs,
            source=f"mrirecon simulate --seed {seed} (volume {index}, {kind}, SNR {snr:g})",
        )
        paths.append(path)
    manifest = folder / MANIFEST_NAME
    build_manifest(paths, manifest, fractions=split, seed=seed, progress=False)
    if echo is not None:
        echo(f"wrote {len(paths)} volumes and {manifest}")
    return paths
