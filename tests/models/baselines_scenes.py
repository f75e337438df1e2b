"""Seeded scenes with a known truth for the baseline tests: phantoms, birdcage coil maps, masks."""

from __future__ import annotations

import numpy as np
import torch

from mrirecon.masks import create_mask_func
from mrirecon.physics import fft2c, normalize_coil_maps, sense_expand


def birdcage_maps(coils: int, height: int, width: int) -> torch.Tensor:
    """``(1, C, H, W)`` complex64 birdcage maps (SigPy) with Σ|S|² = 1."""
    import sigpy.mri

    maps = sigpy.mri.birdcage_maps((coils, height, width), r=1.3, dtype=np.complex64)
    return normalize_coil_maps(torch.from_numpy(maps)[None])


def smooth_phantom(height: int, width: int) -> torch.Tensor:
    """``(1, H, W)`` complex64: a smooth blob with a smooth phase (no edges)."""
    y, x = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    magnitude = np.exp(-(((x / 0.55) ** 2 + (y / 0.7) ** 2) ** 2)) * (1 + 0.3 * x)
    phase = np.exp(1j * 0.8 * (x + 0.5 * y))
    return torch.from_numpy((magnitude * phase).astype(np.complex64))[None]


def sparse_phantom(height: int, width: int) -> torch.Tensor:
    """``(1, H, W)`` complex64: piecewise-constant rectangles (sparse under a wavelet transform)."""
    image = np.zeros((height, width), dtype=np.complex64)
    image[height // 6 : 5 * height // 6, width // 5 : 4 * width // 5] = 0.6
    image[height // 3 : height // 2, width // 3 : width // 2] = 1.0
    image[3 * height // 5 : 3 * height // 4, width // 2 : 2 * width // 3] = 0.3
    image[height // 4 : height // 3, 3 * width // 5 : 3 * width // 4] = 0.9
    return torch.from_numpy(image)[None]


def project_mask(
    kind: str, height: int, width: int, acceleration: float, center_fraction: float
) -> torch.Tensor:
    """``(1, 1, 1|H, W)`` float32 mask from mrirecon's mask functions (seeded)."""
    mask, _ = create_mask_func(kind, [center_fraction], [acceleration], seed=0)((1, 1, height, width))
    return mask.to(torch.float32)


def measure(image: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
    """Masked k-space ``(1, C, H, W)`` of ``image`` with complex Gaussian noise of std ``noise``."""
    kspace = fft2c(sense_expand(image, maps))
    if noise:
        generator = torch.Generator().manual_seed(1)
        kspace = kspace + noise * torch.complex(
            torch.randn(kspace.shape, generator=generator), torch.randn(kspace.shape, generator=generator)
        ) / np.sqrt(2)
    return kspace * mask


def nrmse(estimate: torch.Tensor, truth: torch.Tensor, support: torch.Tensor | None = None) -> float:
    """‖x − t‖ / ‖t‖, over ``support`` when given."""
    diff, ref = estimate - truth, truth
    if support is not None:
        diff, ref = diff * support, ref * support
    return float(torch.linalg.vector_norm(diff) / torch.linalg.vector_norm(ref))
