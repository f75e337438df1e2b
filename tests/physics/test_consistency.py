"""Hard and soft data consistency, and the log-likelihood gradient against autograd."""

from __future__ import annotations

import pytest
import torch

from mrirecon.physics import (
    LogLikelihoodGradient,
    MultiCoilOperator,
    SoftDataConsistency,
    hard_data_consistency,
    log_likelihood_gradient,
)
from tests.helpers import complex_randn


def setup(seed: int = 0, shape: tuple[int, int] = (9, 8)) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    maps = complex_randn(2, 3, *shape, generator=g)
    mask = (torch.rand(2, 1, 1, shape[1], generator=g) > 0.5).float()
    measured = complex_randn(2, 3, *shape, generator=g) * mask
    prediction = complex_randn(2, 3, *shape, generator=g)
    return maps, mask, measured, prediction


def test_hard_dc_keeps_measured_samples_exactly_and_is_idempotent() -> None:
    _, mask, measured, prediction = setup()
    once = hard_data_consistency(prediction, measured, mask)
    sampled = mask.bool().expand_as(prediction)
    assert torch.equal(once[sampled], measured[sampled])
    assert torch.equal(once[~sampled], prediction[~sampled])
    assert torch.equal(hard_data_consistency(once, measured, mask), once)


def test_data_consistency_refuses_a_mask_or_measurement_that_would_broadcast() -> None:
    """A mask of another rank or size, or a measurement of another batch, would broadcast into
    another result silently."""
    g = torch.Generator().manual_seed(0)
    prediction, measured = complex_randn(2, 3, 8, 8, generator=g), complex_randn(2, 3, 8, 8, generator=g)
    soft = SoftDataConsistency(0.5)
    for dc in (hard_data_consistency, soft):
        with pytest.raises(ValueError, match="does not broadcast"):
            dc(prediction, measured, torch.ones(2, 1, 8, 1).expand(2, 3, 8, 2))
        with pytest.raises(ValueError, match="rank"):
            dc(prediction, measured, torch.ones(8))
        with pytest.raises(ValueError, match="must match"):
            dc(prediction, measured[:1], torch.ones(2, 1, 1, 8))


def test_soft_dc_weight_one_is_hard_dc_and_zero_is_identity() -> None:
    _, mask, measured, prediction = setup(1)
    dc = SoftDataConsistency(init=1.0)
    assert torch.allclose(dc(prediction, measured, mask), hard_data_consistency(prediction, measured, mask))
    dc0 = SoftDataConsistency(init=0.0)
    assert torch.allclose(dc0(prediction, measured, mask), prediction)
    # Unsampled locations are never touched, whatever the weight.
    dc_half = SoftDataConsistency(init=0.5)
    out = dc_half(prediction, measured, mask)
    unsampled = ~mask.bool().expand_as(prediction)
    assert torch.equal(out[unsampled], prediction[unsampled])
    out.abs().sum().backward()
    assert dc_half.weight.grad is not None and torch.isfinite(dc_half.weight.grad)


@pytest.mark.parametrize("sigma", [1.0, 0.37])
@pytest.mark.parametrize("centered", [True, False])
def test_gradient_equals_autograd(sigma: float, centered: bool) -> None:
    maps, mask, measured, _ = setup(2, (7, 10))
    op = MultiCoilOperator(maps.to(torch.complex128), mask, centered=centered)
    x = complex_randn(2, 7, 10, generator=torch.Generator().manual_seed(9)).to(torch.complex128)
    y = measured.to(torch.complex128)
    x_var = x.clone().requires_grad_()
    loss = 0.5 * (op(x_var) - y).abs().pow(2).sum() / sigma**2
    (auto,) = torch.autograd.grad(loss, x_var)
    # PyTorch's gradient of a real loss w.r.t. a complex input is the conjugate Wirtinger
    # derivative times 2, i.e. exactly Aᴴ(Ax − y)/σ² for this loss.
    ours = log_likelihood_gradient(x, y, op, sigma)
    assert torch.allclose(ours, auto, atol=1e-10)
    cached = LogLikelihoodGradient(op, y, sigma)
    assert torch.allclose(cached(x), auto, atol=1e-10)


def test_gradient_vanishes_at_consistent_image() -> None:
    maps, mask, _, _ = setup(3)
    op = MultiCoilOperator(maps, mask)
    x = complex_randn(2, 9, 8, generator=torch.Generator().manual_seed(4))
    assert LogLikelihoodGradient(op, op(x))(x).abs().max() < 1e-4


def test_sigma_must_be_positive() -> None:
    maps, mask, measured, _ = setup(5)
    with pytest.raises(ValueError, match="positive"):
        LogLikelihoodGradient(MultiCoilOperator(maps, mask), measured, sigma=0.0)
