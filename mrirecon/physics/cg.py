"""Conjugate gradient for the Hermitian positive (semi-)definite systems of MRI, batched per sample.

Solves ``(AᴴA + λI)·x = b`` for every batch element independently; used by the SENSE baseline and
the demo.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["conjugate_gradient"]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ⟨a, b⟩ = Σ conj(a)·b over every axis but the first; shape (B, 1, ..., 1)."""
    dims = tuple(range(1, a.ndim))
    return torch.sum(a.conj() * b, dim=dims, keepdim=True)


def conjugate_gradient(
    normal: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    *,
    x0: torch.Tensor | None = None,
    damping: float = 0.0,
    max_iter: int = 10,
    tol: float = 1e-6,
) -> torch.Tensor:
    """Batched conjugate gradient for ``(N + λI)·x = b`` with N Hermitian positive semi-definite.

    Args:
        normal: The map ``x ↦ N·x`` (e.g. ``MultiCoilOperator.normal``), batched over axis 0.
        rhs: ``b``, shape ``(B, ...)``.
        x0: Starting point (zeros if omitted).
        damping: Tikhonov weight λ ≥ 0.
        max_iter: Maximum iterations.
        tol: Stop when every sample's residual norm is below ``tol`` times its initial norm.

    Returns:
        The solution, shape of ``rhs``.
    """
    if damping < 0:
        raise ValueError(f"damping must be non-negative, got {damping}")

    def apply(v: torch.Tensor) -> torch.Tensor:
        out = normal(v)
        return out + damping * v if damping else out

    x = torch.zeros_like(rhs) if x0 is None else x0.clone()
    r = rhs - apply(x) if x0 is not None else rhs.clone()
    p = r.clone()
    rr = _dot(r, r).real
    stop = (tol * tol) * rr.clamp_min(torch.finfo(rr.dtype).tiny)
    for _ in range(max_iter):
        if bool((rr <= stop).all()):
            break
        ap = apply(p)
        pap = _dot(p, ap).real
        alpha = torch.where(pap > 0, rr / pap.clamp_min(torch.finfo(pap.dtype).tiny), torch.zeros_like(rr))
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = _dot(r, r).real
        beta = torch.where(rr > 0, rr_new / rr.clamp_min(torch.finfo(rr.dtype).tiny), torch.zeros_like(rr))
        p = r + beta * p
        rr = rr_new
    return x
