"""Simulated receive arrays and their noise: coil sensitivities of varied geometry, correlated noise.

Two kinds of array, chosen per slice or volume by the realistic simulator:

- ``birdcage``: SigPy's birdcage model (``sigpy.mri.birdcage_maps``: coils on a circle, magnitude
  ``1/distance``), the coil radius (1.1–1.7 of the half field of view), the array's rotation and
  centre and a constant phase per coil varying;
- ``surface``: loops on an ellipse around the head (a head or head-neck array), each a circular
  loop of radius ``a`` whose sensitivity in the slice falls off as the on-axis field of a loop,
  ``(a² / (a² + d²))^{3/2}`` with ``d`` the 3-D distance to the loop's centre (loops sit above or
  below the slice plane too), and whose phase turns with the direction from the loop (the
  circularly polarised receive field) plus a constant phase per coil.

Maps are normalised so that Σ_c |S_c|² = 1 (:func:`mrirecon.physics.normalize_coil_maps`).

Noise. Receiver noise is complex Gaussian with a coil covariance Ψ. Coils that see the same tissue
pick up correlated body noise, so Ψ is built from the overlap of the unnormalised sensitivities,
``R_ij = ⟨S_i, S_j⟩ / (‖S_i‖ ‖S_j‖)``, blended with the identity, ``(1 − β)·I + β·R``, and scaled by
per-coil noise gains ``g``: ``Ψ = diag(√g) · ((1 − β)·I + β·R) · diag(√g)``, then normalised to a
mean diagonal of 1. ``β`` (0.1–0.5) and ``g`` (log-normal, 0.6–1.8) are drawn per array; they were
chosen to match the noise readout of a real 14-channel Siemens head scan (mean |correlation| 0.11,
largest 0.39, noise variances 0.6–1.8 × their mean, condition number 5.7; docs/data.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mrirecon.errors import ConfigError
from mrirecon.physics import normalize_coil_maps

__all__ = ["COIL_KINDS", "coil_noise", "noise_covariance", "simulate_array"]

COIL_KINDS = ("birdcage", "surface")


def _polar(magnitude: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """``magnitude · exp(i·phase)`` as complex64, computed in float32."""
    out = np.empty(np.broadcast_shapes(magnitude.shape, phase.shape), dtype=np.complex64)
    np.multiply(magnitude, np.cos(phase, dtype=np.float32), out=out.real)
    np.multiply(magnitude, np.sin(phase, dtype=np.float32), out=out.imag)
    return out


def _birdcage(coils: int, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """SigPy's birdcage model (coils on a circle of radius ``r`` half-FOVs, ``1/distance`` magnitude,
    phase turning with the direction), with a random radius, rotation, centre and phase per coil."""
    height, width = shape
    y = ((np.arange(height, dtype=np.float32) - height / 2) / (height / 2))[None, :, None]
    x = ((np.arange(width, dtype=np.float32) - width / 2) / (width / 2))[None, None, :]
    radius = float(rng.uniform(1.1, 1.7))
    angles = (rng.uniform(0, 2 * np.pi) + np.arange(coils) * 2 * np.pi / coils).astype(np.float32)
    shift = rng.uniform(-0.08, 0.08, 2).astype(np.float32)
    dx = x - (radius * np.cos(angles) + shift[1])[:, None, None]
    dy = y - (radius * np.sin(angles) + shift[0])[:, None, None]
    phase = np.arctan2(dx, -dy) - np.arange(coils, dtype=np.float32)[:, None, None] * 2 * np.pi / coils
    phase = phase + rng.uniform(0, 2 * np.pi, (coils, 1, 1)).astype(np.float32)
    return _polar(1.0 / np.hypot(dx, dy), phase)


def _surface(
    coils: int, shape: tuple[int, int], fov_mm: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """Loops on an ellipse around the head, in one or two rings above and below the slice."""
    height, width = shape
    y = ((np.arange(height, dtype=np.float32) - height / 2 + 0.5) * fov_mm[0] / height)[None, :, None]
    x = ((np.arange(width, dtype=np.float32) - width / 2 + 0.5) * fov_mm[1] / width)[None, None, :]
    semi = (rng.uniform(0.36, 0.5) * fov_mm[0], rng.uniform(0.36, 0.5) * fov_mm[1])
    rings = 1 if coils < 8 else int(rng.integers(1, 3))
    per_ring = -(-coils // rings)
    ring, slot = np.divmod(np.arange(coils), per_ring)
    angle = (
        rng.uniform(0, 2 * np.pi) + 2 * np.pi * (slot + 0.5 * ring) / per_ring + rng.normal(0, 0.08, coils)
    )
    cy = (semi[0] * np.cos(angle)).astype(np.float32)[:, None, None]
    cx = (semi[1] * np.sin(angle)).astype(np.float32)[:, None, None]
    height_mm = (ring - (rings - 1) / 2) * rng.uniform(30, 60) + rng.normal(0, 10, coils)  # above/below
    loop = rng.uniform(35, 60, coils)  # loop radius, mm
    d2 = (y - cy) ** 2 + (x - cx) ** 2 + (height_mm**2).astype(np.float32)[:, None, None]
    magnitude = (
        (loop**2).astype(np.float32)[:, None, None] / ((loop**2).astype(np.float32)[:, None, None] + d2)
    ) ** 1.5
    phase = np.arctan2(y - cy, x - cx) + rng.uniform(0, 2 * np.pi, (coils, 1, 1)).astype(np.float32)
    return _polar(magnitude, phase)


def simulate_array(
    kind: str,
    coils: int,
    shape: tuple[int, int],
    fov_mm: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Coil maps of one array.

    Args:
        kind: ``birdcage`` or ``surface``.
        coils: ``C``.
        shape: ``(H, W)``.
        fov_mm: Field of view ``(rows, columns)`` in mm.
        rng: Random generator.

    Returns:
        ``(maps, raw)``: ``(C, H, W)`` complex64 maps normalised to Σ_c |S_c|² = 1, and the
        unnormalised sensitivities (for the noise correlation).
    """
    if coils < 1:
        raise ConfigError(f"coils must be at least 1, got {coils}")
    if kind == "birdcage":
        raw = _birdcage(coils, shape, rng)
    elif kind == "surface":
        raw = _surface(coils, shape, fov_mm, rng)
    else:
        raise ConfigError(f"unknown coil array '{kind}'", hint=f"choose one of {', '.join(COIL_KINDS)}")
    maps = normalize_coil_maps(torch.from_numpy(raw)[None])[0].numpy()
    return np.ascontiguousarray(maps, dtype=np.complex64), raw


def noise_covariance(
    raw_maps: np.ndarray,
    rng: np.random.Generator,
    *,
    blend: Sequence[float] = (0.1, 0.5),
    gain_sd: float = 0.3,
) -> np.ndarray:
    """A coil noise covariance Ψ ``(C, C)`` complex128 from the sensitivities' overlap (module docstring).

    Args:
        raw_maps: ``(C, H, W)`` unnormalised sensitivities.
        rng: Random generator.
        blend: Range of β, the weight of the overlap correlation against the identity.
        gain_sd: Standard deviation of the log noise gains (clipped to 0.6–1.8).

    Returns:
        Hermitian positive-definite Ψ with mean diagonal 1.
    """
    coils = raw_maps.shape[0]
    flat = raw_maps.reshape(coils, -1).astype(np.complex128)
    gram = flat.conj() @ flat.T
    norms = np.sqrt(np.real(np.diag(gram)))
    overlap = gram / np.maximum(np.outer(norms, norms), 1e-30)
    beta = float(rng.uniform(blend[0], blend[1]))
    correlation = (1 - beta) * np.eye(coils) + beta * overlap
    gains = np.clip(np.exp(gain_sd * rng.standard_normal(coils)), 0.6, 1.8)
    covariance = np.sqrt(gains)[:, None] * correlation * np.sqrt(gains)[None, :]
    covariance = 0.5 * (covariance + covariance.conj().T)
    return covariance / float(np.real(np.trace(covariance)) / coils)


def coil_noise(
    covariance: np.ndarray, shape: tuple[int, ...], sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Complex Gaussian noise ``(C, *shape)`` complex64 with covariance ``σ²·Ψ`` between coils.

    Each sample is ``σ · L · n`` with ``Ψ = L Lᴴ`` (Cholesky) and ``n`` standard complex normal
    (variance 1, ½ per real and imaginary part).
    """
    coils = covariance.shape[0]
    lower = np.linalg.cholesky(covariance).astype(np.complex64)
    size = int(np.prod(shape))
    white = rng.standard_normal((2, coils, size), dtype=np.float32)
    noise = (white[0] + 1j * white[1]).astype(np.complex64) * np.float32(sigma / np.sqrt(2.0))
    return (lower @ noise).reshape(coils, *shape)
