"""The high-frequency error norm (HFEN) losses, as DIRECT defines them.

HFEN (Ravishankar and Bresler, IEEE TMI 2011) compares two images after a Laplacian-of-Gaussian
(LoG) filter, which keeps edges and fine detail and drops the smooth background: a loss that
weighs what blurring removes. DIRECT trains with four variants, which these reproduce:

- ``hfen_l1``: ``mean |LoG(pred) − LoG(target)|``;
- ``hfen_l2``: ``mean (LoG(pred) − LoG(target))²``;
- ``hfen_l1_norm``, ``hfen_l2_norm``: the same divided by ``mean |target|`` (``mean target²``):
  DIRECT divides by the norm of the unfiltered target, not of its LoG, and so do we.

The filter is DIRECT's: a 15 × 15 LoG with σ = 2.5 pixels,
``k(r) = exp(−r²/2σ²)·(r² − 2σ²) / (2πσ⁴)``, scaled so that its taps sum to −1, applied with zero
padding to keep the image size. Because the taps sum to −1 and not 0 (the window cuts the LoG's
positive tail), a flat error passes the filter too, negated: the norm is the error with its edges
weighted more, not the edges alone. DIRECT's values are reproduced to float32 precision
(tests/training/test_hfen.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

import torch

from mrirecon.shapes import check_shape

__all__ = ["HFEN_LOSSES", "hfen", "log_kernel"]

KERNEL_SIZE = 15
SIGMA = 2.5


@cache
def _kernel64(size: int, sigma: float) -> torch.Tensor:
    half = size // 2
    offsets = torch.arange(-half, half + 1, dtype=torch.float64)
    r2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
    kernel = torch.exp(-r2 / (2 * sigma**2)) * (r2 - 2 * sigma**2) / (2 * math.pi * sigma**4)
    return -kernel / kernel.sum()


def log_kernel(size: int = KERNEL_SIZE, sigma: float = SIGMA) -> torch.Tensor:
    """The ``(size, size)`` float64 LoG kernel of the module docstring (``size`` odd)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"the LoG kernel needs an odd size, got {size}")
    return _kernel64(size, float(sigma)).clone()


def _filtered(image: torch.Tensor) -> torch.Tensor:
    """``(B, h, w)`` → the same, LoG-filtered (zero padding)."""
    kernel = _kernel64(KERNEL_SIZE, SIGMA).to(device=image.device, dtype=image.dtype)
    out = torch.nn.functional.conv2d(image.unsqueeze(1), kernel[None, None], padding=KERNEL_SIZE // 2)
    return out.squeeze(1)


def hfen(pred: torch.Tensor, target: torch.Tensor, power: int, normalized: bool) -> torch.Tensor:
    """``mean |LoG(pred) − LoG(target)|^power``, divided by ``mean |target|^power`` when ``normalized``.

    Args:
        pred: ``(B, h, w)`` real magnitudes.
        target: ``(B, h, w)`` real reference magnitudes.
        power: 1 (DIRECT's ``hfen_l1``) or 2 (``hfen_l2``).
        normalized: DIRECT's ``*_norm`` variants (a target of zeros divides by 1e-12).

    Returns:
        A 0-d tensor.
    """
    dims = check_shape(target, "B h w", name="target")
    check_shape(pred, "B h w", name="pred", dims=dims)
    error = (_filtered(pred) - _filtered(target)).abs().pow(power).mean()
    if not normalized:
        return error
    return error / target.abs().pow(power).mean().clamp_min(1e-12)


Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | float], torch.Tensor]


def _term(power: int, normalized: bool) -> Loss:
    def loss(pred: torch.Tensor, target: torch.Tensor, _range: torch.Tensor | float = 1.0) -> torch.Tensor:
        return hfen(pred, target, power, normalized)

    loss.__name__ = f"hfen_l{power}{'_norm' if normalized else ''}"
    return loss


HFEN_LOSSES: dict[str, Loss] = {
    "hfen_l1": _term(1, False),
    "hfen_l2": _term(2, False),
    "hfen_l1_norm": _term(1, True),
    "hfen_l2_norm": _term(2, True),
}
"""Loss name → ``loss(pred, target, data_range)`` (the data range is not used)."""
