"""Convolution building blocks shared by the recurrent models.

- :class:`ReplicationConv2d`: a 2-D convolution whose input is padded by replicating its edge
  pixels (the padding every RIM, CIRIM and RecurrentVarNet layer uses), so the output has the
  input's height and width for any odd kernel and dilation.
- :func:`to_channels_last` / :func:`image_channels`: the complex ↔ real-channel boundary of the
  CNNs, in the channels-last memory layout the CPU convolutions run fastest in.

Shapes: feature maps are ``(B, F, H, W)`` real tensors; images ``(B, H, W)`` complex64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mrirecon.physics import channels_to_complex, complex_to_channels

__all__ = ["ReplicationConv2d", "channels_image", "image_channels"]


class ReplicationConv2d(nn.Conv2d):
    """``Conv2d`` with replication ("edge") padding that keeps the spatial size.

    Args:
        in_channels: Input features.
        out_channels: Output features.
        kernel_size: Odd kernel size.
        dilation: Dilation; the padding is ``dilation·(kernel_size − 1)/2`` on every side.
        bias: Whether the convolution has a bias.

    Shapes:
        ``(B, in_channels, H, W)`` → ``(B, out_channels, H, W)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1, bias: bool = True
    ):
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias, padding=0)
        self.replication = dilation * (kernel_size - 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad by edge replication, then convolve without padding."""
        p = self.replication
        if p:
            x = F.pad(x, (p, p, p, p), mode="replicate")
        return self._conv_forward(x, self.weight, self.bias)


def image_channels(*images: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """Complex images as the real input channels of a CNN.

    Args:
        images: One or more complex ``(B, H, W)`` images.
        channels_last: Return the tensor in ``torch.channels_last`` memory layout.

    Returns:
        ``(B, 2·len(images), H, W)`` real: ``[Re x₀, Im x₀, Re x₁, Im x₁, …]``.
    """
    stacked = torch.stack(images, dim=1) if len(images) > 1 else images[0].unsqueeze(1)
    x = complex_to_channels(stacked)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def channels_image(x: torch.Tensor) -> torch.Tensor:
    """The two real output channels ``(B, 2, H, W)`` of a CNN as a complex ``(B, H, W)`` image."""
    if x.shape[1] != 2:
        raise ValueError(f"expected two channels (real, imaginary), got shape {tuple(x.shape)}")
    return channels_to_complex(x)[:, 0]
