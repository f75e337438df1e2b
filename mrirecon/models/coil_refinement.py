"""Learned refinement of coil sensitivity maps (DIRECT's "sensitivity model"), all coils at once.

A small U-Net (fastMRI's layout: two 3×3 convolutions with instance norm and LeakyReLU(0.2) per
level, average pooling down, 2×2 transposed convolutions up, a 1×1 output convolution) maps each
coil's map, as two real channels, to a new map; the coils are folded into the batch axis, so the
network runs once for all of them. The result is renormalised to Σ_c |S_c|² = 1 with
:func:`mrirecon.physics.normalize_coil_maps`, as DIRECT does. Trained end to end with the model.
As in DIRECT, an upsampled map one pixel short of its skip connection (odd sizes) is padded by
reflection, and single-coil maps are only normalised (the U-Net runs on multi-coil data).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mrirecon.physics import channels_to_complex, complex_to_channels, normalize_coil_maps

__all__ = ["CoilMapRefinement"]


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.InstanceNorm2d(out_channels),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.InstanceNorm2d(out_channels),
        nn.LeakyReLU(0.2, inplace=True),
    )


def _up_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=False),
        nn.InstanceNorm2d(out_channels),
        nn.LeakyReLU(0.2, inplace=True),
    )


class CoilMapRefinement(nn.Module):
    """U-Net refinement of coil maps, batched over coils.

    Args:
        channels: Features of the first level (doubled at each pooling); DIRECT uses 8.
        pools: Number of pooling levels; DIRECT uses 4.

    Shapes:
        ``coil_maps (B, C, H, W)`` complex → ``(B, C, H, W)`` complex64 with Σ_c |S_c|² = 1.
        Any H, W ≥ 1 (levels smaller than 2 pixels skip pooling; odd sizes are padded back).
        One coil: the map is normalised only.
    """

    def __init__(self, channels: int = 8, pools: int = 4):
        super().__init__()
        if channels < 1 or pools < 0:
            raise ValueError(f"channels must be ≥ 1 and pools ≥ 0, got {channels}, {pools}")
        self.down = nn.ModuleList([_conv_block(2, channels)])
        features = channels
        for _ in range(pools - 1):
            self.down.append(_conv_block(features, features * 2))
            features *= 2
        self.bottom = _conv_block(features, features * 2)
        self.up_convs = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for _ in range(pools - 1):
            self.up_convs.append(_up_block(features * 2, features))
            self.up_blocks.append(_conv_block(features * 2, features))
            features //= 2
        self.up_convs.append(_up_block(features * 2, features))
        self.up_blocks.append(_conv_block(features * 2, features))
        self.output = nn.Conv2d(features, 2, 1)
        self.pools = pools

    def unet(self, x: torch.Tensor) -> torch.Tensor:
        """The U-Net on real ``(N, 2, H, W)`` input."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.avg_pool2d(x, 2) if min(x.shape[-2:]) >= 2 else x
        x = self.bottom(x)
        for up, block in zip(self.up_convs, self.up_blocks):
            skip = skips.pop()
            x = up(x)[..., : skip.shape[-2], : skip.shape[-1]]
            dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
            if dh or dw:  # odd sizes: pad the upsampled map back to the skip's size by reflection (DIRECT)
                x = F.pad(x, (0, dw, 0, dh), mode="reflect")
            x = block(torch.cat([x, skip], dim=1))
        return self.output(x)

    def forward(self, coil_maps: torch.Tensor) -> torch.Tensor:
        """Refined, renormalised coil maps (see the class docstring)."""
        b, c, h, w = coil_maps.shape
        if c == 1:  # DIRECT refines multi-coil maps only; one coil's map is just normalised
            return normalize_coil_maps(coil_maps)
        x = complex_to_channels(coil_maps.reshape(b * c, 1, h, w))
        refined = channels_to_complex(self.unet(x)).reshape(b, c, h, w)
        return normalize_coil_maps(refined)
