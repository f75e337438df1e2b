"""Reusable property checks and seeded test data."""

from __future__ import annotations

import torch
from threadpoolctl import threadpool_info

from mrirecon.physics.operators import LinearOperator


def complex_randn(
    *shape: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.complex64,
) -> torch.Tensor:
    """Seeded standard complex Gaussian noise."""
    real_dtype = torch.float64 if dtype == torch.complex128 else torch.float32
    re = torch.randn(*shape, generator=generator, dtype=real_dtype)
    im = torch.randn(*shape, generator=generator, dtype=real_dtype)
    return torch.complex(re, im).to(device)


def inner(a: torch.Tensor, b: torch.Tensor) -> complex:
    """⟨a, b⟩ = Σ conj(a)·b in double precision."""
    return complex(torch.sum(a.to(torch.complex128).conj() * b.to(torch.complex128)).item())


def assert_adjoint(op: LinearOperator, x: torch.Tensor, y: torch.Tensor, rtol: float = 1e-5) -> None:
    """⟨A x, y⟩ == ⟨x, Aᴴ y⟩, with the shapes checked (a flattened dot product would hide them)."""
    ax = op.forward(x)
    ahy = op.adjoint(y)
    assert ax.shape == y.shape, f"A x has shape {tuple(ax.shape)}, expected {tuple(y.shape)}"
    assert ahy.shape == x.shape, f"Aᴴ y has shape {tuple(ahy.shape)}, expected {tuple(x.shape)}"
    lhs = inner(ax, y)
    rhs = inner(x, ahy)
    scale = max(abs(lhs), abs(rhs), 1e-12)
    assert abs(lhs - rhs) <= rtol * scale, f"⟨Ax, y⟩ = {lhs} but ⟨x, Aᴴy⟩ = {rhs}"


def blas_threads() -> list[int]:
    """The thread count of each BLAS library threadpoolctl sees in this process."""
    return [int(pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"]
