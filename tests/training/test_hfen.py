"""HFEN losses: DIRECT's values on a fixed input, a SciPy oracle, and their place in the loss config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from mrirecon.errors import ConfigError
from mrirecon.training.config import HFEN_TERMS, LESION_TERMS, LOSS_TERMS, LossSection
from mrirecon.training.hfen import HFEN_LOSSES, log_kernel
from mrirecon.training.losses import ReconLoss, image_loss

# DIRECT at 50b9704d2d (direct/functionals/hfen.py, hfen_l1/hfen_l2 with norm False and True, its
# defaults: kernel 15, sigma 2.5) on _pair() below, in float32.
DIRECT_VALUES = {
    "hfen_l1": 0.19717949628829956,
    "hfen_l2": 0.06464920192956924,
    "hfen_l1_norm": 0.3964410722255707,
    "hfen_l2_norm": 0.1959053874015808,
}


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 24, 20, generator=g, dtype=torch.float64)
    pred = target + 0.1 * torch.randn(2, 24, 20, generator=g, dtype=torch.float64)
    return pred, target


@pytest.mark.parametrize("name", sorted(DIRECT_VALUES))
def test_hfen_equals_directs_value(name: str) -> None:
    pred, target = _pair()
    assert HFEN_LOSSES[name](pred, target, 1.0).item() == pytest.approx(DIRECT_VALUES[name], rel=2e-6)


def test_the_kernel_is_a_symmetric_log_summing_to_minus_one() -> None:
    k = log_kernel().numpy()
    assert k.shape == (15, 15)
    assert k.sum() == pytest.approx(-1.0, abs=1e-12)
    np.testing.assert_allclose(k, k.T, atol=0)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=0)
    # DIRECT scales the truncated LoG to sum to -1: a negative centre, a positive ring
    assert k[7, 7] == k.min() < 0 and k.max() > 0
    with pytest.raises(ValueError, match="odd"):
        log_kernel(14)


def test_hfen_against_a_scipy_oracle() -> None:
    pred, target = _pair()
    k = log_kernel().numpy()
    pairs = zip(pred.numpy(), target.numpy())
    diff = np.stack([correlate2d(p, k, mode="same") - correlate2d(t, k, mode="same") for p, t in pairs])
    t = target.numpy()
    expected = {
        "hfen_l1": np.abs(diff).mean(),
        "hfen_l2": (diff**2).mean(),
        "hfen_l1_norm": np.abs(diff).mean() / np.abs(t).mean(),
        "hfen_l2_norm": (diff**2).mean() / (t**2).mean(),
    }
    for name, value in expected.items():
        assert HFEN_LOSSES[name](pred, target, 1.0).item() == pytest.approx(value, rel=1e-12)


def test_hfen_weighs_blur_more_than_a_smooth_error_of_the_same_l1() -> None:
    """Per unit of L1, a blurred edge costs HFEN far more than a smooth bump: the reason to weigh it."""
    target = torch.zeros(1, 64, 64)
    target[:, 24:40, 24:40] = 1.0
    box = torch.ones(1, 1, 3, 3) / 9
    blurred = torch.nn.functional.conv2d(target.unsqueeze(1), box, padding=1).squeeze(1)
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    bumped = target + 0.1 * torch.exp(-((y - 32) ** 2 + (x - 32) ** 2) / (2 * 12.0**2))

    def per_l1(pred: torch.Tensor) -> float:
        return float(HFEN_LOSSES["hfen_l1"](pred, target, 1.0) / (pred - target).abs().mean())

    assert per_l1(blurred) > 2.5 * per_l1(bumped)
    assert HFEN_LOSSES["hfen_l1"](target, target, 1.0).item() == 0.0


def test_hfen_terms_are_configurable_and_give_gradients() -> None:
    assert set(HFEN_TERMS) == set(HFEN_LOSSES)
    assert set(HFEN_TERMS) <= set(LOSS_TERMS)
    section = LossSection(terms={"l1": 1.0, "hfen_l1_norm": 0.5})
    assert section.terms["hfen_l1_norm"] == 0.5
    assert set(HFEN_TERMS).isdisjoint(LESION_TERMS)
    LossSection(terms={"hfen_l2": 1.0})  # an image term on its own: every slice has it
    with pytest.raises(ConfigError, match="hfen_l3"):
        LossSection(terms={"hfen_l3": 1.0})

    pred, target = _pair()
    pred = pred.float().requires_grad_()
    loss = ReconLoss({"l1": 1.0, "hfen_l1_norm": 0.5})([[pred]], target.float(), 1.0)
    expected = image_loss(pred, target.float(), 1.0, {"l1": 1.0}) + 0.5 * HFEN_LOSSES["hfen_l1_norm"](
        pred, target.float(), 1.0
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert pred.grad is not None and bool(pred.grad.abs().sum() > 0)
