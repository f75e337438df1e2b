"""fastMRI's U-Net (Ronneberger et al. 2015, as configured by Zbontar et al. 2018) and the U-Net
baseline reconstructor built on it.

:class:`UNet` is the network on real channels, layer for layer as in fastMRI: per level two 3×3
convolutions without bias, each followed by instance normalisation, LeakyReLU(0.2) and 2-D
dropout; 2×2 average pooling down; 2×2 stride-2 transposed convolution (+ instance norm, LeakyReLU)
up; skip connections by concatenation; a final 1×1 convolution. The defaults (32 channels, 4
pooling layers, dropout 0) are fastMRI's U-Net baseline.

:class:`NormUNet` wraps it for complex images: real and imaginary parts become two channels
(:func:`mrirecon.physics.complex_to_channels`), each part is normalised by its mean and standard
deviation over the sample, the image is zero-padded to a multiple of 16 as fastMRI's NormUnet
(of ``2**pools`` for more than 4 pools; odd sizes work) and the output is cropped, de-normalised
and turned back into complex numbers. E2E-VarNet uses it too (:mod:`mrirecon.models.baselines.varnet`).

:class:`UNetRecon`: the baseline reconstructor. fastMRI's U-Net baseline maps the magnitude of
the zero-filled RSS image to the target magnitude; ours takes the zero-filled complex image
``Aᴴy`` (SENSE-combined with the given coil maps) as two real channels and returns a complex image,
by default as a residual on its input (``x = Aᴴy + U(Aᴴy)``), which keeps the phase and trains
faster from the zero-filled start.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mrirecon.errors import ModelError
from mrirecon.models.base import ReconOutput, Reconstructor
from mrirecon.models.baselines.zero_filled import zero_filled_image
from mrirecon.physics import channels_to_complex, complex_to_channels
from mrirecon.shapes import check_complex, check_shape

__all__ = ["NormUNet", "UNet", "UNetConfig", "UNetRecon"]


def _conv_block(in_chans: int, out_chans: int, drop_prob: float) -> nn.Sequential:
    """Two (3×3 conv without bias → instance norm → LeakyReLU(0.2) → 2-D dropout)."""
    layers: list[nn.Module] = []
    for cin in (in_chans, out_chans):
        layers += [
            nn.Conv2d(cin, out_chans, kernel_size=3, padding=1, bias=False),
            nn.InstanceNorm2d(out_chans),
            nn.LeakyReLU(negative_slope=0.2, inplace=True),
            nn.Dropout2d(drop_prob),
        ]
    return nn.Sequential(*layers)


def _up_block(in_chans: int, out_chans: int) -> nn.Sequential:
    """2×2 stride-2 transposed conv without bias → instance norm → LeakyReLU(0.2)."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_chans, out_chans, kernel_size=2, stride=2, bias=False),
        nn.InstanceNorm2d(out_chans),
        nn.LeakyReLU(negative_slope=0.2, inplace=True),
    )


class UNet(nn.Module):
    """fastMRI's U-Net on real channels.

    Args:
        in_chans: Input channels.
        out_chans: Output channels.
        chans: Channels of the first level (doubled at every level down).
        num_pool_layers: Pooling (and up-sampling) layers.
        drop_prob: Dropout probability.

    Shapes:
        ``(N, in_chans, H, W)`` → ``(N, out_chans, H, W)``, any ``H, W`` ≥ ``2**num_pool_layers``
        (odd sizes are reflect-padded by one after up-sampling, as fastMRI does).
    """

    def __init__(
        self, in_chans: int, out_chans: int, chans: int = 32, num_pool_layers: int = 4, drop_prob: float = 0.0
    ):
        super().__init__()
        self.down = nn.ModuleList([_conv_block(in_chans, chans, drop_prob)])
        ch = chans
        for _ in range(num_pool_layers - 1):
            self.down.append(_conv_block(ch, 2 * ch, drop_prob))
            ch *= 2
        self.bottom = _conv_block(ch, 2 * ch, drop_prob)
        self.up_transpose = nn.ModuleList()
        self.up = nn.ModuleList()
        for _ in range(num_pool_layers):
            self.up_transpose.append(_up_block(2 * ch, ch))
            self.up.append(_conv_block(2 * ch, ch, drop_prob))
            ch //= 2
        self.head = nn.Conv2d(chans, out_chans, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the network (shapes in the class docstring)."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.avg_pool2d(x, kernel_size=2, stride=2)
        x = self.bottom(x)
        for transpose, block in zip(self.up_transpose, self.up):
            skip = skips.pop()
            x = transpose(x)
            pad_w = skip.shape[-1] - x.shape[-1]
            pad_h = skip.shape[-2] - x.shape[-2]
            if pad_w or pad_h:
                x = F.pad(x, [0, pad_w, 0, pad_h], mode="reflect")
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def _pad_sizes(size: int, multiple: int) -> tuple[int, int]:
    total = -size % multiple
    return total // 2, total - total // 2


class NormUNet(nn.Module):
    """:class:`UNet` on complex feature maps, with fastMRI's normalisation and padding.

    Args:
        features: Complex channels ``F`` in and out.
        chans: Channels of the U-Net's first level.
        num_pools: Pooling layers.
        drop_prob: Dropout probability.

    Shapes:
        ``(N, F, H, W)`` complex → ``(N, F, H, W)`` complex64, any ``H, W`` ≥ 1.
    """

    def __init__(self, features: int = 1, chans: int = 18, num_pools: int = 4, drop_prob: float = 0.0):
        super().__init__()
        self.unet = UNet(2 * features, 2 * features, chans, num_pools, drop_prob)
        # fastMRI pads to a multiple of 16 whatever the pools; more pools need 2**pools (its
        # bottleneck would otherwise be a pixel or less for some sizes)
        self.multiple = max(16, 2**num_pools)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise, pad, apply the U-Net, crop, de-normalise (shapes in the class docstring)."""
        check_complex(x, name="x")
        check_shape(x, "N F H W", name="x")
        dims = (1, 2, 3)
        parts = torch.view_as_real(x)  # (N, F, H, W, 2)
        mean = parts.mean(dim=dims, keepdim=True)
        std = parts.std(dim=dims, keepdim=True).clamp_min(1e-12)
        normed = torch.view_as_complex(((parts - mean) / std).contiguous())
        h, w = x.shape[-2:]
        ph, pw = _pad_sizes(h, self.multiple), _pad_sizes(w, self.multiple)
        channels = F.pad(complex_to_channels(normed), [*pw, *ph])
        out = self.unet(channels)[..., ph[0] : ph[0] + h, pw[0] : pw[0] + w]
        out_parts = torch.view_as_real(channels_to_complex(out))
        return torch.view_as_complex((out_parts * std + mean).contiguous())


@dataclass(frozen=True)
class UNetConfig:
    """Settings of :class:`UNetRecon` (fastMRI's U-Net baseline defaults).

    Attributes:
        chans: Channels of the first level.
        num_pool_layers: Pooling layers.
        drop_prob: Dropout probability.
        residual: Return ``Aᴴy + U(Aᴴy)`` (True) or ``U(Aᴴy)``.
    """

    chans: int = 32
    num_pool_layers: int = 4
    drop_prob: float = 0.0
    residual: bool = True

    def __post_init__(self) -> None:
        if self.chans < 1 or self.num_pool_layers < 1:
            raise ValueError(
                f"chans and num_pool_layers must be at least 1, got {self.chans}, {self.num_pool_layers}"
            )
        if not 0 <= self.drop_prob < 1:
            raise ValueError(f"drop_prob must be in [0, 1), got {self.drop_prob}")


class UNetRecon(Reconstructor):
    """U-Net on the zero-filled complex image (trainable).

    Shapes: as :class:`~mrirecon.models.base.Reconstructor`; returns ``(B, H, W)`` complex64 and
    ``steps = [[image]]``.
    """

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        self.config = config or UNetConfig()
        cfg = self.config
        self.net = NormUNet(1, cfg.chans, cfg.num_pool_layers, cfg.drop_prob)

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        """``Aᴴy`` through the U-Net."""
        # the U-Net pads to a multiple of 2^pools (at least 16); its bottleneck needs more than one pixel
        # (instance norm of one value is undefined)
        limit = 2**self.config.num_pool_layers
        height, width = masked_kspace.shape[-2:]
        if min(height, width) <= limit:
            raise ModelError(
                f"the U-Net's {self.config.num_pool_layers} pooling layers need images larger than "
                f"{limit} × {limit}, got {height} × {width}",
                hint="use a model without pooling (a recurrent model or a classical baseline)",
            )
        start = zero_filled_image(masked_kspace, mask, coil_maps)
        image = self.net(start.unsqueeze(1)).squeeze(1)
        if self.config.residual:
            image = image + start
        return ReconOutput(image, [[image]])
