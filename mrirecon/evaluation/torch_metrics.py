"""Batched, differentiable torch versions of the fastMRI metrics (validation on GPU, SSIM loss).

:func:`ssim_torch` computes the same SSIM as :func:`mrirecon.evaluation.metrics.ssim_slice` (and
scikit-image's ``structural_similarity`` with its defaults) for a batch of slices at once: a 7×7
uniform window, K1 = 0.01, K2 = 0.03, the sample covariance factor NP/(NP − 1) with NP = 49, and a
data range per sample. The local statistics are *valid* 7×7 box means (a separable average pool, no
padding), which yields exactly the pixels that scikit-image keeps after cropping ``(7 − 1) // 2``
pixels from each border, so the mean over that output equals scikit-image's value.

It is differentiable, so ``1 − ssim_torch(pred, target, data_range)`` is the training SSIM loss
(fastMRI's ``SSIMLoss``, with ``data_range`` the volume maximum ``attrs["max"]`` of each sample).

For a whole volume with fastMRI's protocol use :func:`volume_metrics_torch`: slices are the batch,
``data_range`` the volume's maximum, then the mean over slices; PSNR and NMSE over the volume.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["nmse_torch", "psnr_torch", "ssim_torch", "volume_metrics_torch"]

_WIN = 7
_K1 = 0.01
_K2 = 0.03


def _as_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    """``(B, H, W)`` or ``(B, 1, H, W)`` real → ``(B, 1, H, W)``."""
    if x.is_complex():
        raise TypeError(f"{name} must be a real (magnitude) tensor, got dtype {x.dtype}: pass x.abs()")
    if x.ndim == 3:
        return x.unsqueeze(1)
    if x.ndim == 4 and x.shape[1] == 1:
        return x
    raise ValueError(f"{name} must have shape (B, H, W) or (B, 1, H, W), got {tuple(x.shape)}")


def _per_sample(value: float | torch.Tensor, batch: int, like: torch.Tensor, name: str) -> torch.Tensor:
    """A scalar or ``(B,)`` tensor as a ``(B,)`` tensor on ``like``'s device and dtype."""
    out = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if out.ndim == 0:
        return out.expand(batch)
    out = out.reshape(-1)
    if out.numel() != batch:
        raise ValueError(f"{name} must be a scalar or have one value per sample ({batch}), got {out.numel()}")
    return out


def ssim_torch(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float | torch.Tensor,
    *,
    win_size: int = _WIN,
    k1: float = _K1,
    k2: float = _K2,
) -> torch.Tensor:
    """Mean SSIM of each sample, as scikit-image / fastMRI compute it for one slice.

    Args:
        pred: Reconstructed magnitudes ``(B, H, W)`` or ``(B, 1, H, W)``, real.
        target: Reference magnitudes, same shape.
        data_range: ``R`` in C1 = (K1·R)², C2 = (K2·R)²: a number, or a ``(B,)`` tensor with one range
            per sample (fastMRI: the maximum of the sample's reference volume).
        win_size: Side of the uniform window (odd).
        k1: SSIM constant K1.
        k2: SSIM constant K2.

    Returns:
        ``(B,)`` SSIM per sample, differentiable with respect to ``pred`` (and ``target``).
        ``1 − ssim_torch(...)`` is the SSIM loss; reduce it with ``.mean()``.
    """
    x = _as_batch(target, "target")
    y = _as_batch(pred, "pred")
    if x.shape != y.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if win_size % 2 != 1 or min(x.shape[-2:]) < win_size:
        raise ValueError(f"need an odd window no larger than the image, got {win_size} for {tuple(x.shape)}")
    if not x.is_floating_point():
        x, y = x.float(), y.float()
    batch = x.shape[0]
    rng = _per_sample(data_range, batch, x, "data_range").view(batch, 1, 1, 1)
    n = win_size * win_size
    cov_norm = n / (n - 1)
    # the five local means (x, y, x², y², xy) in one pass: a separable valid box mean
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=0)
    means = F.avg_pool2d(F.avg_pool2d(stack, (1, win_size), stride=1), (win_size, 1), stride=1)
    ux, uy, uxx, uyy, uxy = means.split(batch, dim=0)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (k1 * rng) ** 2
    c2 = (k2 * rng) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def psnr_torch(pred: torch.Tensor, target: torch.Tensor, data_range: float | torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each sample: ``10·log10(R² / MSE)``, the MSE over all of a sample's pixels.

    Args:
        pred: ``(B, ...)`` real.
        target: Same shape.
        data_range: A number or ``(B,)``: the peak (fastMRI: the reference volume's maximum).

    Returns:
        ``(B,)``.
    """
    if pred.shape != target.shape or pred.ndim < 2:
        raise ValueError(
            f"expected two (B, ...) tensors of one shape, got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
    mse = (pred - target).pow(2).flatten(1).mean(dim=1)
    rng = _per_sample(data_range, pred.shape[0], mse, "data_range")
    return 10 * torch.log10(rng**2 / mse)


def nmse_torch(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖target − pred‖² / ‖target‖² of each sample.

    Args:
        pred: ``(B, ...)`` real or complex.
        target: Same shape.

    Returns:
        ``(B,)`` real.
    """
    if pred.shape != target.shape or pred.ndim < 2:
        raise ValueError(
            f"expected two (B, ...) tensors of one shape, got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
    err = (target - pred).abs().pow(2).flatten(1).sum(dim=1)
    return err / target.abs().pow(2).flatten(1).sum(dim=1)


def volume_metrics_torch(target: torch.Tensor, pred: torch.Tensor) -> dict[str, torch.Tensor]:
    """fastMRI's per-volume SSIM, PSNR and NMSE of one magnitude volume, on any device.

    Args:
        target: Reference volume ``(slices, H, W)``, real.
        pred: Reconstruction, same shape.

    Returns:
        ``{"ssim", "psnr", "nmse"}`` as 0-d tensors (the same numbers as
        :func:`mrirecon.evaluation.metrics.volume_metrics` to about 1e-6 in float32).
    """
    if target.ndim != 3 or target.shape != pred.shape:
        raise ValueError(
            f"expected two volumes (slices, H, W) of one shape, got {tuple(target.shape)} and "
            f"{tuple(pred.shape)}"
        )
    peak = target.max()
    return {
        "ssim": ssim_torch(pred, target, peak).mean(),
        "psnr": psnr_torch(pred[None], target[None], peak)[0],
        "nmse": nmse_torch(pred[None], target[None])[0],
    }
