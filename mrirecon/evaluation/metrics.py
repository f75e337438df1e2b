"""SSIM, PSNR and NMSE exactly as fastMRI's ``evaluate.py`` computes them.

The protocol (what makes a number comparable with the literature's):

- inputs are **magnitude volumes** ``(slices, H, W)``, reference and reconstruction;
- **NMSE** = ‖gt − pred‖² / ‖gt‖² over the whole volume;
- **PSNR** = 10·log10(max(gt)² / MSE) over the whole volume, ``max(gt)`` the reference volume's maximum;
- **SSIM** per slice with a 7×7 uniform window, K1 = 0.01, K2 = 0.03, sample covariance
  (scikit-image's defaults), ``data_range = max(gt)`` of the **volume** (not the slice), then the
  mean over slices;
- per-volume values are then averaged over volumes by the caller (fastMRI prints mean ± 2·SD;
  see :mod:`mrirecon.evaluation.aggregate`).

Other conventions are separate functions with their own names, never a flag on these: the
Calgary-Campinas challenge's per-slice normalised SSIM and PSNR are :func:`calgary_campinas_ssim` and
:func:`calgary_campinas_psnr`; ATOMMIC's (each image divided by its own slice maximum) are
:func:`atommic_metrics`. A batched, differentiable torch version of the fastMRI SSIM lives in
:mod:`mrirecon.evaluation.torch_metrics`.

The arithmetic follows scikit-image step by step (same filters, same float precision: float32
volumes are computed in float32), so the values agree with ``skimage.metrics`` to rounding.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import uniform_filter

__all__ = [
    "atommic_metrics",
    "calgary_campinas_psnr",
    "calgary_campinas_ssim",
    "head_mask",
    "masked_metrics",
    "mse",
    "nmse",
    "psnr",
    "ssim",
    "ssim_map",
    "ssim_slice",
    "volume_metrics",
]

_WIN = 7
_K1 = 0.01
_K2 = 0.03


def _float_type(dtype: np.dtype) -> type[np.floating]:
    """scikit-image's precision rule: float16/float32 stay float32, everything else float64."""
    return np.float32 if np.dtype(dtype).char in ("e", "f") else np.float64


def _check_volumes(gt: np.ndarray, pred: np.ndarray) -> None:
    if gt.ndim != 3:
        raise ValueError(f"expected a magnitude volume (slices, H, W), got shape {gt.shape}")
    if gt.shape != pred.shape:
        raise ValueError(f"reference {gt.shape} and reconstruction {pred.shape} differ in shape")
    if np.iscomplexobj(gt) or np.iscomplexobj(pred):
        raise ValueError("metrics are computed on magnitude images: pass np.abs(volume)")


def ssim_map(gt: np.ndarray, pred: np.ndarray, data_range: float) -> np.ndarray:
    """The SSIM map of one 2-D slice with a 7×7 uniform window (scikit-image's defaults), the
    ``(W − 1) / 2`` border where the window leaves the image removed: ``(H − 6, W − 6)``."""
    if gt.shape != pred.shape or gt.ndim != 2:
        raise ValueError(f"expected two slices (H, W) of one shape, got {gt.shape} and {pred.shape}")
    if min(gt.shape) < _WIN:
        raise ValueError(f"slices must be at least {_WIN}×{_WIN} for SSIM, got {gt.shape}")
    float_type = _float_type(gt.dtype)
    x = gt.astype(float_type, copy=False)
    y = pred.astype(float_type, copy=False)
    cov_norm = _WIN * _WIN / (_WIN * _WIN - 1)
    ux = uniform_filter(x, size=_WIN)
    uy = uniform_filter(y, size=_WIN)
    uxx = uniform_filter(x * x, size=_WIN)
    uyy = uniform_filter(y * y, size=_WIN)
    uxy = uniform_filter(x * y, size=_WIN)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    a1 = 2 * ux * uy + c1
    a2 = 2 * vxy + c2
    b1 = ux**2 + uy**2 + c1
    b2 = vx + vy + c2
    s = (a1 * a2) / (b1 * b2)
    pad = (_WIN - 1) // 2
    return s[pad:-pad, pad:-pad]


def ssim_slice(gt: np.ndarray, pred: np.ndarray, data_range: float) -> float:
    """SSIM of one 2-D slice with a 7×7 uniform window (scikit-image's defaults).

    Args:
        gt: Reference slice ``(H, W)``, real.
        pred: Reconstructed slice ``(H, W)``, real.
        data_range: The dynamic range ``R`` in C1 = (K1·R)², C2 = (K2·R)².

    Returns:
        The mean SSIM over the valid (uncropped) part of the slice.
    """
    return float(ssim_map(gt, pred, data_range).mean(dtype=np.float64))


def head_mask(reference: np.ndarray, fraction: float = 0.1, dilation: int = 3, border: int = 4) -> np.ndarray:
    """Where the head is in a magnitude reference ``(S, H, W)``: bool, same shape.

    Per slice: the smoothed reference (Gaussian, σ 2 px) above ``fraction`` of the volume's maximum
    and at least 1.5 times the background floor, holes filled, the largest connected part, dilated
    by ``dilation`` pixels (so the head's edge counts). The floor is the 10th percentile of the
    smoothed volume's outer ``border`` pixels: the noise floor of a root-sum-of-squares image is not
    zero (it grows with the coil count and falls with the SNR), and at 16 coils and low SNR it
    passes 10 % of the maximum, where ``fraction`` × maximum alone took in the whole image. Where
    the floor is below two thirds of that level (most scans), the level is ``fraction`` × maximum.
    """
    from scipy import ndimage

    if reference.ndim != 3:
        raise ValueError(f"expected a reference volume (S, H, W), got shape {reference.shape}")
    smooth = np.stack([ndimage.gaussian_filter(image.astype(np.float64), 2.0) for image in reference])
    frame = np.ones(smooth.shape[1:], dtype=bool)
    frame[border:-border, border:-border] = False
    floor = max(float(np.percentile(smooth[:, frame], 10)), 0.0) if frame.any() else 0.0
    level = max(fraction * float(reference.max()), 1.5 * floor)
    out = np.zeros(reference.shape, dtype=bool)
    for s, image in enumerate(smooth):
        mask = ndimage.binary_fill_holes(image > level)
        labels, count = ndimage.label(mask)
        if count > 1:
            sizes = ndimage.sum(mask, labels, range(1, count + 1))
            mask = labels == (int(np.argmax(sizes)) + 1)
        out[s] = ndimage.binary_dilation(mask, iterations=dilation) if dilation > 0 else mask
    return out


def masked_metrics(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """SSIM and PSNR of a volume inside a region (``mask`` bool ``(S, H, W)``), fastMRI's data range.

    ``ssim``: the mean of the per-slice SSIM maps (7×7 window, data range = the reference volume's
    maximum) over the region's pixels; ``psnr``: ``10·log10(max² / MSE)`` with the MSE over the
    region's pixels; ``nmse``: over the region.
    """
    _check_volumes(gt, pred)
    if mask.shape != gt.shape:
        raise ValueError(f"mask {mask.shape} and volumes {gt.shape} differ in shape")
    data_range = float(gt.max())
    pad = (_WIN - 1) // 2
    values = [ssim_map(g, p, data_range)[m[pad:-pad, pad:-pad]] for g, p, m in zip(gt, pred, mask)]
    pooled = np.concatenate(values) if values else np.zeros(0)
    a, b = gt[mask].astype(np.float64), pred[mask].astype(np.float64)
    err = float(np.mean((a - b) ** 2)) if a.size else float("nan")
    return {
        "ssim": float(pooled.mean()) if pooled.size else float("nan"),
        # an empty mask scores nothing (NaN), not a perfect PSNR
        "psnr": float("nan")
        if not a.size
        else float(10 * np.log10(data_range**2 / err))
        if err > 0
        else float("inf"),
        "nmse": float(np.sum((a - b) ** 2) / np.sum(a**2)) if a.size else float("nan"),
    }


def ssim(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """Mean over slices of the per-slice SSIM, with ``data_range`` the volume's maximum.

    Args:
        gt: Reference magnitude volume ``(slices, H, W)``.
        pred: Reconstruction, same shape.
        maxval: Override of the data range (default: ``gt.max()``).
    """
    _check_volumes(gt, pred)
    data_range = gt.max() if maxval is None else maxval
    total = 0.0
    for ref, rec in zip(gt, pred):
        total += ssim_slice(ref, rec, data_range)
    return total / gt.shape[0]


def mse(gt: np.ndarray, pred: np.ndarray) -> float:
    """Mean squared error over the volume."""
    _check_volumes(gt, pred)
    return float(np.mean((gt - pred) ** 2))


def nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    """Normalised MSE ‖gt − pred‖² / ‖gt‖² over the whole volume."""
    _check_volumes(gt, pred)
    return float(np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2)


def psnr(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """PSNR in dB over the whole volume, peak = the reference volume's maximum."""
    _check_volumes(gt, pred)
    data_range = float(gt.max() if maxval is None else maxval)
    float_type = np.result_type(_float_type(gt.dtype), _float_type(pred.dtype))
    a = np.asarray(gt, dtype=float_type)
    b = np.asarray(pred, dtype=float_type)
    err = np.mean((a - b) ** 2, dtype=np.float64)
    if err == 0:  # a reconstruction equal to its reference (no division warning for the user)
        return math.inf
    return float(10 * np.log10((data_range**2) / err))


def volume_metrics(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """All fastMRI metrics of one volume: ``{"ssim", "psnr", "nmse", "mse"}``."""
    return {"ssim": ssim(gt, pred), "psnr": psnr(gt, pred), "nmse": nmse(gt, pred), "mse": mse(gt, pred)}


def _calgary_campinas_slices(gt: np.ndarray, pred: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Each slice divided by the reference slice's maximum, with its range max(both) − min(both)."""
    _check_volumes(gt, pred)
    out = []
    for ref, rec in zip(gt, pred):
        peak = ref.max()
        if peak <= 0:
            raise ValueError(
                "a reference slice is all zero: Calgary-Campinas metrics normalise by its maximum"
            )
        a, b = ref / peak, rec / peak
        out.append((a, b, float(max(a.max(), b.max()) - min(a.min(), b.min()))))
    return out


def calgary_campinas_ssim(gt: np.ndarray, pred: np.ndarray) -> float:
    """SSIM as the Calgary-Campinas multi-coil challenge computes it (a different convention!).

    Per slice: both slices are divided by the reference slice's maximum, ``data_range`` is
    ``max(gt, pred) − min(gt, pred)`` of that slice pair, SSIM with the same 7×7 uniform window;
    then the mean over slices. Not comparable with :func:`ssim` (fastMRI's volume data range).

    Args:
        gt: Reference magnitude volume ``(slices, H, W)``.
        pred: Reconstruction, same shape.
    """
    slices = _calgary_campinas_slices(gt, pred)
    return float(np.mean([ssim_slice(a, b, r) for a, b, r in slices]))


def calgary_campinas_psnr(gt: np.ndarray, pred: np.ndarray) -> float:
    """PSNR per slice with the Calgary-Campinas normalisation (see :func:`calgary_campinas_ssim`), averaged.

    Args:
        gt: Reference magnitude volume ``(slices, H, W)``.
        pred: Reconstruction, same shape.
    """
    values = []
    for a, b, r in _calgary_campinas_slices(gt, pred):
        float_type = np.result_type(_float_type(a.dtype), _float_type(b.dtype))
        err = np.mean((a.astype(float_type) - b.astype(float_type)) ** 2, dtype=np.float64)
        values.append(10 * np.log10(r**2 / err))
    return float(np.mean(values))


def atommic_metrics(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """SSIM, PSNR and NMSE as ATOMMIC reports them (``metric_computation_mode: per_slice``).

    Per slice: the reference and the reconstruction are each divided by their *own* maximum (ATOMMIC's
    ``|x / max|x||``), ``r = max(both) − min(both)`` of the normalised pair; SSIM with data range
    ``max(r, 1)`` (that is 1) and the 7×7 uniform window, PSNR ``10·log10(r² / MSE)``, NMSE
    ``‖gt − pred‖² / ‖gt‖²``; then the mean of each over the slices. (ATOMMIC also raises ``r`` to a
    dataset's stored maximum where its files carry one; mrirecon's do not.) Not comparable with
    fastMRI's :func:`volume_metrics`: a reconstruction that is right up to a global scale scores
    perfectly here.

    Args:
        gt: Reference magnitude volume ``(slices, H, W)``.
        pred: Reconstruction, same shape.

    Returns:
        ``{"ssim_atommic", "psnr_atommic", "nmse_atommic"}``.
    """
    _check_volumes(gt, pred)
    ssims, psnrs, nmses = [], [], []
    for ref, rec in zip(gt, pred):
        float_type = np.result_type(_float_type(ref.dtype), _float_type(rec.dtype))
        ref, rec = np.abs(ref).astype(float_type), np.abs(rec).astype(float_type)
        if ref.max() <= 0 or rec.max() <= 0:
            raise ValueError("a slice is all zero: ATOMMIC's metrics divide each image by its maximum")
        a, b = ref / ref.max(), rec / rec.max()
        r = float(max(a.max(), b.max()) - min(a.min(), b.min()))
        err = np.mean((a - b) ** 2, dtype=np.float64)
        ssims.append(ssim_slice(a, b, max(r, 1.0)))
        psnrs.append(10 * np.log10(r**2 / err) if err > 0 else np.inf)
        nmses.append(float(np.sum((a - b) ** 2, dtype=np.float64) / np.sum(a**2, dtype=np.float64)))
    return {
        "ssim_atommic": float(np.mean(ssims)),
        "psnr_atommic": float(np.mean(psnrs)),
        "nmse_atommic": float(np.mean(nmses)),
    }
