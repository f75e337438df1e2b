"""The cached phase ramps work under autograd even when first built under inference mode."""

from __future__ import annotations

import pytest
import torch

from mrirecon.physics import MultiCoilOperator, fftnc
from tests.helpers import complex_randn


def test_ramps_first_built_in_inference_mode_serve_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mrirecon.physics.fft._CACHE", {})  # this test fills the cache, whatever ran
    size = (13, 11)  # odd sizes: complex ramps
    with torch.inference_mode():
        fftnc(complex_randn(1, *size), 2)
        operator = MultiCoilOperator(complex_randn(1, 2, *size), torch.ones(1, 1, 1, size[1]))
        operator.expand(complex_randn(1, *size))
    x = complex_randn(1, *size).requires_grad_()
    maps = complex_randn(1, 2, *size).requires_grad_()
    op = MultiCoilOperator(maps, torch.ones(1, 1, 1, size[1]))
    loss = fftnc(x, 2).abs().sum() + op.expand(x).abs().sum() + op.forward(x).abs().sum()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert maps.grad is not None and torch.isfinite(maps.grad).all()
