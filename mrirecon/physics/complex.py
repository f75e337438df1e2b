"""Complex tensors to real channels and back: used only at the boundary of a CNN.

``(B, F, H, W)`` complex ↔ ``(B, 2F, H, W)`` real with channels ordered
``[Re x₀, Im x₀, Re x₁, Im x₁, …]``. Everything else in mrirecon stays native complex.
"""

from __future__ import annotations

import torch

from mrirecon.shapes import check_complex

__all__ = ["channels_to_complex", "complex_to_channels"]


def complex_to_channels(x: torch.Tensor) -> torch.Tensor:
    """Complex ``(B, F, *spatial)`` → real ``(B, 2F, *spatial)``.

    An image without a feature axis, ``(B, H, W)``, must be given as ``x.unsqueeze(1)``.
    """
    check_complex(x, name="x")
    if x.ndim < 3:
        raise ValueError(f"expected (B, F, *spatial), got {tuple(x.shape)}")
    b, f, *spatial = x.shape
    r = torch.view_as_real(x)  # (B, F, *spatial, 2)
    r = r.movedim(-1, 2)  # (B, F, 2, *spatial)
    return r.reshape(b, 2 * f, *spatial)


def channels_to_complex(x: torch.Tensor) -> torch.Tensor:
    """Real ``(B, 2F, *spatial)`` → complex ``(B, F, *spatial)``, inverting :func:`complex_to_channels`."""
    if x.is_complex():
        raise TypeError("channels_to_complex expects a real tensor")
    if x.ndim < 3 or x.shape[1] % 2:
        raise ValueError(f"expected (B, 2F, *spatial) with an even channel count, got {tuple(x.shape)}")
    b, c, *spatial = x.shape
    if x.dtype in (torch.float16, torch.bfloat16):
        # Under mixed precision the CNN may return half precision; physics stays in complex64.
        x = x.float()
    pairs = x.reshape(b, c // 2, 2, *spatial)
    return torch.complex(pairs[:, :, 0], pairs[:, :, 1])
