"""Complex↔channel round trip, and the batched conjugate-gradient solver (SENSE)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrirecon.physics import (
    MultiCoilOperator,
    channels_to_complex,
    complex_to_channels,
    conjugate_gradient,
)
from tests.helpers import complex_randn


def test_channels_round_trip_and_order() -> None:
    x = complex_randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    ch = complex_to_channels(x)
    assert ch.shape == (2, 6, 4, 5) and not ch.is_complex()
    assert torch.equal(ch[:, 0], x[:, 0].real) and torch.equal(ch[:, 1], x[:, 0].imag)
    assert torch.equal(ch[:, 4], x[:, 2].real) and torch.equal(ch[:, 5], x[:, 2].imag)
    assert torch.equal(channels_to_complex(ch), x)


def test_half_precision_channels_become_complex64() -> None:
    x = torch.randn(1, 4, 3, 3, dtype=torch.bfloat16)
    out = channels_to_complex(x)
    assert out.dtype == torch.complex64
    assert torch.equal(out.real, x[:, 0::2].float()) and torch.equal(out.imag, x[:, 1::2].float())


def test_channels_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="even"):
        channels_to_complex(torch.zeros(1, 3, 4, 4))
    with pytest.raises(TypeError):
        complex_to_channels(torch.zeros(1, 2, 4, 4))


def test_cg_solves_fully_sampled_sense_exactly() -> None:
    g = torch.Generator().manual_seed(1)
    maps = complex_randn(2, 4, 8, 9, generator=g).to(torch.complex128)
    op = MultiCoilOperator(maps, torch.ones(2, 1, 1, 9))
    x = complex_randn(2, 8, 9, generator=g).to(torch.complex128)
    sol = conjugate_gradient(op.normal, op.adjoint(op(x)), max_iter=200, tol=1e-12)
    assert torch.allclose(sol, x, atol=1e-8)


def test_cg_reduces_residual_per_sample_with_damping() -> None:
    g = torch.Generator().manual_seed(2)
    maps = complex_randn(3, 4, 10, 12, generator=g)
    mask = (torch.rand(3, 1, 1, 12, generator=g) > 0.4).float()
    op = MultiCoilOperator(maps, mask)
    rhs = complex_randn(3, 10, 12, generator=g)
    sol = conjugate_gradient(op.normal, rhs, damping=0.1, max_iter=100, tol=1e-8)
    residual = (op.normal(sol) + 0.1 * sol - rhs).flatten(1).norm(dim=1) / rhs.flatten(1).norm(dim=1)
    assert torch.all(residual < 1e-4)


def test_cg_from_a_starting_point_solves_the_same_system() -> None:
    """A warm start changes where CG starts, not what it solves: the NumPy solution from a start
    near it, and the solution itself returned unchanged from the solution."""
    g = torch.Generator().manual_seed(3)
    a = complex_randn(2, 7, 5, generator=g).to(torch.complex128)
    normal_matrix = a.mH @ a + 0.5 * torch.eye(5, dtype=torch.complex128)  # Hermitian positive definite
    rhs = complex_randn(2, 5, generator=g).to(torch.complex128)
    expected = torch.from_numpy(np.linalg.solve(normal_matrix.numpy(), rhs.numpy()[..., None])[..., 0])

    def normal(v: torch.Tensor) -> torch.Tensor:
        return (normal_matrix @ v[..., None])[..., 0]

    start = expected + 0.3 * complex_randn(2, 5, generator=g).to(torch.complex128)
    solution = conjugate_gradient(normal, rhs, x0=start, max_iter=50, tol=1e-13)
    torch.testing.assert_close(solution, expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(conjugate_gradient(normal, rhs, x0=expected), expected, rtol=0, atol=1e-12)
