"""Coil sensitivity maps: normalisation, estimation from the fully sampled centre (ACS), ESPIRiT.

Every estimator returns maps ``(B, C, [S,] H, W)`` complex64 normalised so that Σ_c |S_c|² = 1
wherever there is signal (and 0 where the estimator found none).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mrirecon.physics.fft import fftnc, ifftnc
from mrirecon.physics.sense import rss
from mrirecon.shapes import check_complex

__all__ = [
    "espirit_calibration_width",
    "espirit_kernel_width",
    "estimate_coil_maps_acs",
    "estimate_coil_maps_espirit",
    "normalize_coil_maps",
]


def normalize_coil_maps(coil_maps: torch.Tensor, *, eps: float = 1e-12) -> torch.Tensor:
    """Scale maps to unit sum of squares over coils; pixels with (near) zero energy stay zero.

    Args:
        coil_maps: ``(B, C, [S,] H, W)`` complex.
        eps: Pixels whose root-sum-of-squares √(Σ|S|²) is at most ``eps`` are set to 0.

    Returns:
        Maps of the same shape with Σ_c |S_c|² ∈ {0, 1}.
    """
    check_complex(coil_maps, name="coil_maps")
    norm = rss(coil_maps, dim=1).unsqueeze(1)
    kept = norm > eps
    # A real reciprocal times the complex maps: 9× faster than a complex division on the CPU.
    # Zero-energy pixels take the reciprocal of 1, then 0: no 1/0 anywhere.
    one = torch.ones((), dtype=norm.dtype, device=norm.device)
    safe = torch.where(kept, norm, one)
    return coil_maps * torch.where(kept, safe.reciprocal(), torch.zeros_like(one))


def _acs_window(acs: torch.Tensor, ndim: int) -> torch.Tensor:
    """A separable Hann taper over the extent of the ACS region, same shape as ``acs`` (float)."""
    window = acs.to(torch.float32).clone()
    for axis in range(acs.ndim - ndim, acs.ndim):
        if acs.shape[axis] == 1:
            continue
        other = tuple(a for a in range(acs.ndim) if a != axis)
        support = acs.any(dim=other) if other else acs
        idx = torch.nonzero(support).flatten()
        if idx.numel() < 3:
            continue
        lo, hi = int(idx[0]), int(idx[-1])
        n = hi - lo + 1
        taper = torch.ones(acs.shape[axis], dtype=torch.float32, device=acs.device)
        taper[lo : hi + 1] = torch.hann_window(n + 2, periodic=False, device=acs.device)[1:-1]
        shape = [1] * acs.ndim
        shape[axis] = acs.shape[axis]
        window = window * taper.reshape(shape)
    return window


def estimate_coil_maps_acs(
    kspace: torch.Tensor,
    acs_mask: torch.Tensor,
    *,
    ndim: int = 2,
    centered: bool = True,
    taper: bool = True,
    threshold: float = 0.0,
) -> torch.Tensor:
    """Coil maps from the fully sampled k-space centre: low-resolution coil images divided by their RSS.

    Args:
        kspace: ``(B, C, [S,] H, W)`` complex, measured (masked) k-space.
        acs_mask: Boolean or 0/1 tensor broadcastable to the k-space that marks the fully sampled
            calibration region, e.g. ``(B, 1, 1, W)`` with the centre lines set.
        ndim: Spatial axes.
        centered: FFT convention of the k-space.
        taper: Apply a Hann taper over the ACS region (fewer ringing artefacts in the maps).
        threshold: Pixels whose low-resolution RSS is below ``threshold × max`` (per sample) get
            zero maps; 0 keeps every pixel.

    Returns:
        ``(B, C, [S,] H, W)`` complex maps with Σ_c |S_c|² = 1 where kept.
    """
    check_complex(kspace, name="kspace")
    if acs_mask.ndim != kspace.ndim:
        raise ValueError(
            f"acs_mask {tuple(acs_mask.shape)} must have the rank of kspace {tuple(kspace.shape)}"
        )
    acs = acs_mask != 0
    if not bool(acs.any()):
        raise ValueError("the ACS mask is empty: no fully sampled centre to estimate coil maps from")
    if taper:
        # the window spans the ACS block in the centred view (uncentred, the block wraps the edges)
        spatial = tuple(range(-ndim, 0))
        view = acs if centered else torch.fft.fftshift(acs, dim=spatial)
        weights = (
            torch.stack([_acs_window(a.unsqueeze(0), ndim)[0] for a in view])
            if view.shape[0] > 1
            else (_acs_window(view, ndim))
        )
        if not centered:
            weights = torch.fft.ifftshift(weights, dim=spatial)
    else:
        weights = acs.to(torch.float32)
    images = ifftnc(kspace * weights.to(kspace.device), ndim, centered=centered)
    maps = normalize_coil_maps(images)
    if threshold > 0:
        energy = rss(images, dim=1)
        peak = energy.flatten(1).amax(dim=1).reshape(-1, *([1] * (energy.ndim - 1)))
        maps = maps * (energy > threshold * peak).unsqueeze(1)
    return maps.to(torch.complex64)


def _centred_width(lo: int, hi: int, size: int, limit: int) -> int:
    """Largest width ≤ ``limit`` whose block centred as SigPy centres it lies inside ``[lo, hi)``."""
    for width in range(min(limit, hi - lo), 0, -1):
        start = size // 2 - width // 2  # sigpy.resize crops from size // 2 − width // 2
        if lo <= start and start + width <= hi:
            return width
    return 0


def espirit_calibration_width(acs: Sequence[slice], shape: tuple[int, int], limit: int = 24) -> int:
    """The ESPIRiT calibration width that fits a mask's fully sampled centre.

    SigPy's ``EspiritCalib`` takes a centred ``width × width`` block starting at
    ``size // 2 − width // 2`` along each axis; this is the largest ``width ≤ limit`` whose block
    lies inside the fully sampled region, so the calibration uses measured samples only.

    Args:
        acs: The fully sampled centre (``MaskInfo.acs_slices``): ``(columns,)`` for line masks
            (every row is sampled), ``(rows, columns)`` for 2-D masks.
        shape: ``(H, W)`` of the k-space.
        limit: The largest width wanted (SigPy's default 24).

    Returns:
        The width, 0 when no centred block fits (no fully sampled centre).
    """
    height, width = shape
    columns = acs[-1]
    size = _centred_width(int(columns.start), int(columns.stop), width, limit)
    rows = acs[0] if len(acs) == 2 else slice(0, height)
    return _centred_width(int(rows.start), int(rows.stop), height, size)


def espirit_kernel_width(calib_width: int, limit: int = 6) -> int:
    """The ESPIRiT kernel width for a calibration width: ``min(limit, calib_width // 2)``.

    A kernel needs several positions inside the calibration block to fill the calibration matrix;
    with half the block, a narrow 7-line centre (fastMRI's 8× mask of a 180-column scan) still
    calibrates (kernel 3). Returns 0 below 4 (no usable kernel).
    """
    kernel = min(int(limit), int(calib_width) // 2)
    return kernel if kernel >= 2 else 0


def estimate_coil_maps_espirit(
    kspace: torch.Tensor,
    *,
    calib_width: int = 24,
    threshold: float = 0.02,
    kernel_width: int = 6,
    crop: float = 0.95,
    max_iter: int = 100,
    centered: bool = True,
) -> torch.Tensor:
    """ESPIRiT coil maps (Uecker et al. 2014) through SigPy, slice by slice on the CPU.

    Args:
        kspace: ``(B, C, H, W)`` complex, measured k-space with a fully sampled centre of at least
            ``calib_width`` lines in both directions (for 1-D line masks, choose ``calib_width`` no
            larger than the number of centre lines).
        calib_width: Width of the calibration region.
        threshold: Singular-value threshold of the calibration matrix.
        kernel_width: Kernel width.
        crop: Eigenvalue threshold below which the maps are set to zero (background).
        max_iter: Power iterations.
        centered: FFT convention of the k-space.

    Returns:
        ``(B, C, H, W)`` complex64 maps on the input's device, Σ_c |S_c|² = 1 inside the support.
    """
    check_complex(kspace, name="kspace")
    if kspace.ndim != 4:
        raise ValueError(f"ESPIRiT here takes 2-D multi-coil k-space (B, C, H, W), got {tuple(kspace.shape)}")
    from sigpy.mri.app import EspiritCalib  # lazy: numba start-up costs about a second

    if not centered:
        kspace = fftnc(ifftnc(kspace, 2, centered=False), 2, centered=True)
    maps = []
    for ksp in kspace.detach().cpu().numpy():
        mps = EspiritCalib(
            ksp.astype(np.complex64),
            calib_width=calib_width,
            thresh=threshold,
            kernel_width=kernel_width,
            crop=crop,
            max_iter=max_iter,
            show_pbar=False,
        ).run()
        maps.append(np.asarray(mps, dtype=np.complex64))
    out = torch.from_numpy(np.stack(maps)).to(kspace.device)
    return normalize_coil_maps(out)
