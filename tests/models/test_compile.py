"""The recurrent models run under ``torch.compile``: whole-graph capture (no graph breaks) with the
same results as eager, forward and backward; one model through Inductor's code generation."""

from __future__ import annotations

import pytest
import torch

from tests.models.conftest import build_tiny
from tests.models.synthetic import acquisition


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["cirim_soft_dc", "recurrentvarnet_refined_maps"])
def test_whole_graph_capture_forward_and_backward(variant: str) -> None:
    torch._dynamo.reset()
    model = build_tiny(variant).train()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    data = acquisition(batch=1, coils=2, height=9, width=8, seed=8)
    eager = model(*data.inputs)
    traced = compiled(*data.inputs)
    torch.testing.assert_close(traced.image, eager.image, atol=1e-5, rtol=1e-4)
    eager_grads = torch.autograd.grad(eager.image.abs().sum(), list(model.parameters()), allow_unused=True)
    traced_grads = torch.autograd.grad(traced.image.abs().sum(), list(model.parameters()), allow_unused=True)
    for a, b in zip(eager_grads, traced_grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


@pytest.mark.slow
def test_inductor_compiles_a_rim(device: torch.device) -> None:
    torch._dynamo.reset()
    model = build_tiny("rim_indrnn").to(device).eval()
    compiled = torch.compile(model, fullgraph=True)
    data = acquisition(batch=1, coils=2, height=8, width=7, seed=9).to(device)
    with torch.no_grad():
        torch.testing.assert_close(
            compiled(*data.inputs).image, model(*data.inputs).image, atol=1e-5, rtol=1e-4
        )
