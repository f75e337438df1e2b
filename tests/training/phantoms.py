"""In-memory multi-coil phantom slices as ReconSample tuples, built with mrirecon.physics and masks.

Each volume is a stack of smooth random phantoms (Gaussian blobs with a smooth phase) seen by
Gaussian coil sensitivities; the reference is the RSS of the fully sampled coil images. Training
items draw a fresh mask from torch's global generator (so :class:`SeededDataset` makes them
reproducible); validation items use fastMRI's per-volume seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from mrirecon.data.sample import ReconSample
from mrirecon.masks import create_mask_func, volume_seed
from mrirecon.physics import fft2c, ifft2c, normalize_coil_maps, rss


def _phantom(size: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    image = np.zeros((size, size))
    body = np.exp(-(((x / 0.75) ** 2 + (y / 0.85) ** 2) ** 4))  # a smooth-edged ellipse
    image += 0.4 * body
    for _ in range(5):
        cx, cy = rng.uniform(-0.45, 0.45, 2)
        sx, sy = rng.uniform(0.06, 0.2, 2)
        image += rng.uniform(0.2, 0.6) * np.exp(-(((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2)) * body
    phase = np.exp(1j * np.pi * (rng.uniform(-0.3, 0.3) * x + rng.uniform(-0.3, 0.3) * y))
    return (image * phase).astype(np.complex64)


def _coil_maps(size: int, coils: int) -> torch.Tensor:
    y, x = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    maps = []
    for c in range(coils):
        angle = 2 * math.pi * c / coils
        cx, cy = 1.3 * math.cos(angle), 1.3 * math.sin(angle)
        magnitude = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 1.5)
        maps.append(magnitude * np.exp(1j * (angle + 0.5 * x)))
    return normalize_coil_maps(torch.from_numpy(np.stack(maps).astype(np.complex64))[None])[0]


class PhantomSlices(Dataset):
    """``volumes × slices`` phantom slices.

    Args:
        volumes: Number of volumes.
        slices: Slices per volume.
        size: Image side.
        coils: Coils.
        acceleration: Acceleration of the line masks (8 % centre).
        train: Fresh random masks per item (else per-volume seeded masks).
        seed: Seed of the phantoms.
        prefix: File-name prefix of the volumes.
        noise: Relative noise level of the k-space.
    """

    def __init__(
        self,
        volumes: int = 4,
        slices: int = 2,
        size: int = 32,
        coils: int = 4,
        acceleration: float = 4.0,
        *,
        train: bool = True,
        seed: int = 0,
        prefix: str = "vol",
        noise: float = 0.01,
    ):
        rng = np.random.default_rng(seed)
        maps = _coil_maps(size, coils)
        self.items = []
        for v in range(volumes):
            images = torch.from_numpy(np.stack([_phantom(size, rng) for _ in range(slices)]))
            kspace = fft2c(maps[None] * images[:, None])  # (S, C, H, W)
            kspace = kspace + noise * float(kspace.abs().max()) / size * torch.complex(
                torch.from_numpy(rng.standard_normal(kspace.shape).astype(np.float32)),
                torch.from_numpy(rng.standard_normal(kspace.shape).astype(np.float32)),
            )
            target = rss(ifft2c(kspace)).float()
            vmax = float(target.max())
            for s in range(slices):
                self.items.append((f"{prefix}{v:03d}.h5", s, kspace[s], target[s], vmax))
        self.maps = maps
        self.train = train
        self.mask_func = create_mask_func(
            "random" if train else "equispaced_fraction", [0.08], [acceleration]
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> ReconSample:
        fname, slice_num, kspace, target, vmax = self.items[index]
        seed = int(torch.randint(0, 2**31 - 1, (1,))) if self.train else volume_seed(fname)
        mask, num_low = self.mask_func(kspace.shape, seed=seed)
        masked = kspace * mask + 0.0
        scale = float(rss(ifft2c(masked[None]))[0].max())
        return ReconSample(
            masked_kspace=masked / scale,
            mask=mask.reshape(1, 1, -1).float(),
            coil_maps=self.maps,
            target=target / scale,
            fname=fname,
            slice_num=slice_num,
            max_value=vmax / scale,
            crop_size=(target.shape[-2], target.shape[-1]),
            scale=scale,
            num_low_frequencies=num_low,
            acceleration=float(mask.numel() / mask.sum()),
            lesion_labels=torch.zeros(0, 0, dtype=torch.int16),
        )
