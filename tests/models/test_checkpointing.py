"""Gradient checkpointing over time steps changes nothing but memory: bit-identical outputs and
gradients for every recurrent variant, and it is skipped when autograd is off."""

from __future__ import annotations

from typing import cast

import torch

from mrirecon.models.registry import build_model
from mrirecon.models.rim import CIRIM, CIRIMConfig, RIMBlock
from tests.models.conftest import TINY, build_tiny
from tests.models.synthetic import acquisition


def run(variant: str, checkpointing: bool) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    model = build_tiny(variant, seed=0).train()
    model.set_gradient_checkpointing(checkpointing)
    assert model.gradient_checkpointing is checkpointing
    data = acquisition(batch=2, coils=3, height=9, width=10, seed=5)
    out = model(*data.inputs)
    weights = torch.logspace(-1, 0, sum(len(c) for c in out.steps))
    steps = [step for cascade in out.steps for step in cascade]
    loss = sum(w * (s - data.truth).abs().mean() for w, s in zip(weights, steps))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return [s.detach() for s in steps], grads


def test_checkpointing_gives_identical_outputs_and_gradients(tiny) -> None:
    variant, _ = tiny
    plain_steps, plain_grads = run(variant, False)
    ckpt_steps, ckpt_grads = run(variant, True)
    for a, b in zip(plain_steps, ckpt_steps):
        assert torch.equal(a, b)
    assert plain_grads.keys() == ckpt_grads.keys()
    for name, grad in plain_grads.items():
        assert torch.equal(grad, ckpt_grads[name]), name


def test_checkpointing_actually_recomputes(monkeypatch) -> None:
    """The stack runs once per step without checkpointing, twice (forward + recompute) with it."""
    model = build_tiny("cirim")
    model.set_gradient_checkpointing(True)
    data = acquisition(batch=1, coils=2, height=6, width=6)
    calls = 0
    stack = cast(RIMBlock, cast(CIRIM, model).cascades[0]).stack
    original = stack.forward

    def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(stack, "forward", counting)
    model(*data.inputs).image.abs().sum().backward()
    steps = TINY["cirim"][1].time_steps
    assert calls == 2 * steps
    calls = 0
    with torch.no_grad():
        model(*data.inputs)
    assert calls == steps


def test_every_recurrent_model_supports_checkpointing() -> None:
    for name in ("rim", "cirim", "recurrentvarnet"):
        model = build_model(name, TINY[{"rim": "rim_gru"}.get(name, name)][1])
        assert model.supports_checkpointing


def test_each_layer_is_recomputed_once(monkeypatch) -> None:
    """A checkpointed training step computes each recurrent layer twice per time step (forward and
    one recomputation), for one cascade and for several: checkpoints are not nested."""
    data = acquisition(batch=1, coils=2, height=6, width=6)
    for cascades in (1, 3):
        model = build_model("cirim", CIRIMConfig(cascades=cascades, time_steps=2, channels=4))
        model.set_gradient_checkpointing(True)
        calls = 0
        for block in cast(CIRIM, model).cascades:
            stack = cast(RIMBlock, block).stack
            original = stack._layer

            def counting(*args, _original=original, **kwargs):
                nonlocal calls
                calls += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(stack, "_layer", counting)
        model(*data.inputs).image.abs().sum().backward()
        layers = cast(CIRIM, model).state_layers
        assert calls == 2 * cascades * 2 * layers, cascades
