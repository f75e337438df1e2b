"""Small, seeded multi-coil acquisitions of a smooth phantom for the model tests."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mrirecon.physics import fft2c, normalize_coil_maps, sense_expand


@dataclass
class Acquisition:
    """What a reconstructor is given, and the truth it should find.

    Attributes:
        masked_kspace: ``(B, C, H, W)`` complex64, zero where not sampled.
        mask: ``(B, 1, 1, W)`` float32 line mask (or ``(B, 1, H, W)``).
        coil_maps: ``(B, C, H, W)`` complex64 with Σ_c |S_c|² = 1 everywhere.
        truth: ``(B, H, W)`` complex64 image with ``masked_kspace = M·F·S·truth``.
    """

    masked_kspace: torch.Tensor
    mask: torch.Tensor
    coil_maps: torch.Tensor
    truth: torch.Tensor

    def to(self, device: torch.device | str) -> Acquisition:
        return Acquisition(
            *(t.to(device) for t in (self.masked_kspace, self.mask, self.coil_maps, self.truth))
        )

    @property
    def inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.masked_kspace, self.mask, self.coil_maps


def phantom(batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """Smooth complex images: a few Gaussian blobs with a slowly varying phase, ``(B, H, W)``."""
    yy = torch.linspace(-1, 1, height).view(-1, 1)
    xx = torch.linspace(-1, 1, width).view(1, -1)
    images = []
    for _ in range(batch):
        magnitude = torch.zeros(height, width)
        for _ in range(3):
            cy, cx = (torch.rand(2, generator=generator) - 0.5).tolist()
            r = 0.2 + 0.3 * float(torch.rand(1, generator=generator))
            magnitude += torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        phase = math.pi / 4 * (yy + 0.5 * xx)
        images.append(torch.polar(magnitude, phase.expand(height, width)))
    return torch.stack(images).to(torch.complex64)


def coil_maps(batch: int, coils: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """Smooth maps from coils around the image, normalised to Σ_c |S_c|² = 1 everywhere."""
    if coils == 1:
        return torch.ones(batch, 1, height, width, dtype=torch.complex64)
    yy = torch.linspace(-1, 1, height).view(-1, 1)
    xx = torch.linspace(-1, 1, width).view(1, -1)
    maps = []
    for _ in range(batch):
        per_coil = []
        for c in range(coils):
            angle = 2 * math.pi * c / coils + 0.3 * float(torch.rand(1, generator=generator))
            cy, cx = 1.5 * math.sin(angle), 1.5 * math.cos(angle)
            magnitude = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0)
            per_coil.append(torch.polar(magnitude, (angle + 0.5 * yy * xx).expand(height, width)))
        maps.append(torch.stack(per_coil))
    return normalize_coil_maps(torch.stack(maps).to(torch.complex64))


def line_mask(batch: int, width: int, acceleration: int, centre: int = 4) -> torch.Tensor:
    """Every ``acceleration``-th column plus ``centre`` centre columns, ``(B, 1, 1, W)``."""
    mask = torch.zeros(batch, 1, 1, width)
    mask[..., ::acceleration] = 1
    mid = width // 2
    mask[..., max(mid - centre // 2, 0) : mid + (centre + 1) // 2] = 1
    return mask


def acquisition(
    batch: int = 2,
    coils: int = 3,
    height: int = 16,
    width: int = 12,
    acceleration: int = 3,
    *,
    seed: int = 0,
    two_d_mask: bool = False,
) -> Acquisition:
    """A seeded acquisition; ``acceleration=1`` samples every line (full mask)."""
    g = torch.Generator().manual_seed(seed)
    truth = phantom(batch, height, width, g)
    maps = coil_maps(batch, coils, height, width, g)
    if two_d_mask:
        mask = (torch.rand(batch, 1, height, width, generator=g) < 1.0 / acceleration).float()
        mask[..., height // 2 - 1 : height // 2 + 1, width // 2 - 1 : width // 2 + 1] = 1
    else:
        mask = line_mask(batch, width, acceleration)
    kspace = fft2c(sense_expand(truth, maps)) * mask
    return Acquisition(kspace, mask, maps, truth)
