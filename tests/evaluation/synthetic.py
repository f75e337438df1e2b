"""Tiny synthetic fastMRI-layout target files with lesions, and reconstruction folders, for tests.

A brain-like phantom (skull, grey matter, white matter, ventricles, smooth texture) → smooth complex
coil maps → fully sampled k-space on a grid larger than the reference (so the crop offsets matter)
→ lesions inserted in k-space with :func:`mrirecon.evaluation.lesion.insert_lesions` → targets
written like ``mrirecon simulate --lesions`` writes them (docs/interfaces.md §1); reconstruction
folders as ``mrirecon infer`` writes them (§5): a faithful one ("good", target plus a little noise),
one that blurs ("blurred"), and the zero-filled baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from scipy import ndimage

from mrirecon.data.header import build_ismrmrd_header
from mrirecon.evaluation.lesion import insert_lesions, lesion_table_json, place_lesions
from mrirecon.masks import create_mask_func
from mrirecon.physics import fft2c, ifft2c, rss

KSPACE_SHAPE = (112, 104)  # the grid of the k-space (H, W)
CROP = (96, 96)  # reconstruction_rss grid, centred in it (offsets 8 and 4)


def phantom(slices: int, height: int, width: int, seed: int) -> np.ndarray:
    """A brain-like magnitude volume ``(slices, height, width)`` float32, maximum about 1."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    y = (yy - height / 2) / (height / 2)
    x = (xx - width / 2) / (width / 2)
    vol = np.zeros((slices, height, width), dtype=np.float32)
    for s in range(slices):
        shrink = 1 - 0.04 * abs(s - slices / 2)
        r = (x / (0.78 * shrink)) ** 2 + (y / (0.86 * shrink)) ** 2
        image = np.where(r <= 1, 1.0, 0.0) * 0.35  # skull/scalp
        image = np.where(r <= 0.85, 0.75, image)  # grey matter
        image = np.where((x / 0.55) ** 2 + (y / 0.66) ** 2 <= 1, 0.55, image)  # white matter
        for cx in (-0.15, 0.15):  # ventricles
            image = np.where(((x - cx) / 0.07) ** 2 + (y / 0.25) ** 2 <= 1, 0.15, image)
        texture = ndimage.gaussian_filter(rng.standard_normal((height, width)), 2.0)
        vol[s] = ndimage.gaussian_filter(image, 0.7) * (1 + 0.6 * texture / (texture.std() + 1e-9) * 0.05)
    return vol


def coil_maps(coils: int, height: int, width: int) -> np.ndarray:
    """Smooth complex coil sensitivities ``(coils, height, width)`` around the field of view."""
    yy, xx = np.mgrid[0:height, 0:width]
    maps = []
    for c in range(coils):
        angle = 2 * np.pi * c / coils
        cy, cx = height / 2 + 0.7 * height * np.sin(angle), width / 2 + 0.7 * width * np.cos(angle)
        magnitude = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.6 * height) ** 2))
        maps.append(magnitude * np.exp(1j * (angle + 0.01 * xx)))
    out = np.stack(maps)
    return (out / np.sqrt((np.abs(out) ** 2).sum(0, keepdims=True))).astype(np.complex64)


@dataclass(frozen=True)
class Dataset:
    targets: Path
    good: Path
    blurred: Path
    zero_filled: Path
    names: list[str]


def write_target(
    path: Path, kspace: np.ndarray, target: np.ndarray, labels: np.ndarray | None, table: str
) -> None:
    """A target file in the fastMRI layout mrirecon writes."""
    header = build_ismrmrd_header(
        encoded_matrix=(kspace.shape[-2], kspace.shape[-1], 1),
        recon_matrix=(target.shape[-2], target.shape[-1], 1),
        receiver_channels=kspace.shape[1],
    )
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=kspace)
        f.create_dataset("reconstruction_rss", data=target)
        f.create_dataset("ismrmrd_header", data=header)
        if labels is not None:
            f.create_dataset("lesion_labels", data=labels)
            f.attrs["lesion_table"] = table
        f.attrs["acquisition"] = "AXFLAIR"
        f.attrs["max"] = float(target.max())
        f.attrs["norm"] = float(np.linalg.norm(target))
        f.attrs["patient_id"] = "synthetic"


def write_recon(
    path: Path, image: np.ndarray, zero_filled: np.ndarray | None, model: str, acceleration: float = 4.0
) -> None:
    """A reconstruction file as docs/interfaces.md §5 describes it."""
    with h5py.File(path, "w") as f:
        f.create_dataset("reconstruction", data=image.astype(np.float32))
        if zero_filled is not None:
            f.create_dataset("zero_filled", data=zero_filled.astype(np.float32))
        f.attrs["model"] = model
        f.attrs["acceleration"] = acceleration
        f.attrs["mask_type"] = "equispaced_fraction"
        f.attrs["undersampling"] = "retrospective"
        f.attrs["acquisition"] = "AXFLAIR"
        if model != "zero-filled":
            f.attrs["checkpoint_sha256"] = "0" * 64


def make_volume(seed: int, slices: int = 3, coils: int = 4, lesions: int = 3):
    """Fully sampled k-space with lesions, its target and labels, and the zero-filled input."""
    height, width = KSPACE_SHAPE
    image = phantom(slices, height, width, seed)
    maps = coil_maps(coils, height, width)
    coil_images = torch.from_numpy(image[:, None] * maps[None])
    kspace = fft2c(coil_images).numpy()
    r0, c0 = (height - CROP[0]) // 2, (width - CROP[1]) // 2
    clean_target = rss(coil_images, dim=1).numpy()[:, r0 : r0 + CROP[0], c0 : c0 + CROP[1]]
    placed = place_lesions(clean_target, lesions, radius=3.5, contrast=1.7, seed=seed, tissue_fraction=0.45)
    inserted = insert_lesions(kspace, placed, crop_size=CROP)
    mask, _ = create_mask_func("equispaced_fraction", [0.16], [4], seed=seed)(inserted.kspace.shape)
    masked = torch.from_numpy(inserted.kspace) * mask
    zero_filled = rss(ifft2c(masked), dim=1).numpy()[:, r0 : r0 + CROP[0], c0 : c0 + CROP[1]]
    return inserted, zero_filled


def make_dataset(root: Path, volumes: int = 2) -> Dataset:
    """Targets with lesions and three reconstruction folders under ``root``."""
    folders = {name: root / name for name in ("targets", "good", "blurred", "zero_filled")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    names = []
    rng = np.random.default_rng(0)
    for v in range(volumes):
        name = f"file_brain_AXFLAIR_{v:03d}.h5"
        names.append(name)
        inserted, zero_filled = make_volume(seed=v + 1)
        target = inserted.target
        write_target(
            folders["targets"] / name,
            inserted.kspace,
            target,
            inserted.labels,
            lesion_table_json(inserted.lesions),
        )
        noise = 0.005 * float(target.max()) * rng.standard_normal(target.shape)
        write_recon(folders["good"] / name, target + noise, zero_filled, "cirim")
        blurred = ndimage.gaussian_filter(target, (0, 1.5, 1.5))
        write_recon(folders["blurred"] / name, blurred, zero_filled, "blurry-net")
        write_recon(folders["zero_filled"] / name, zero_filled, zero_filled, "zero-filled")
    return Dataset(folders["targets"], folders["good"], folders["blurred"], folders["zero_filled"], names)
