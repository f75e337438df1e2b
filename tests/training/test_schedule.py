"""Learning-rate schedules: warm-up, step and cosine values; state that resumes without pickling code."""

from __future__ import annotations

import io
import math

import pytest
import torch

from mrirecon.training.config import OptimSection
from mrirecon.training.schedule import LRFactor, build_optimizer, build_scheduler


def test_warmup_then_step_decay() -> None:
    f = LRFactor("step", warmup_steps=4, warmup_start_factor=0.2, step_size=10, gamma=0.5)
    assert [f(s) for s in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert f(4 + 9) == 1.0 and f(4 + 10) == 0.5 and f(4 + 25) == 0.25


def test_cosine_reaches_the_floor_at_the_last_step() -> None:
    f = LRFactor("cosine", total_steps=100, min_factor=0.1)
    assert f(0) == pytest.approx(1.0)
    assert f(50) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(100) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    assert LRFactor("constant")(10**6) == 1.0
    with pytest.raises(ValueError):
        LRFactor("linear")


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_optimizer_and_scheduler_state_round_trips_with_weights_only(name: str) -> None:
    layer = torch.nn.Linear(3, 1)
    section = OptimSection(optimizer=name, lr=0.1, scheduler="cosine", warmup_steps=2, weight_decay=0.01)
    optimizer = build_optimizer(layer.parameters(), section)
    assert type(optimizer).__name__ == ("AdamW" if name == "adamw" else "Adam")
    scheduler = build_scheduler(optimizer, section, total_steps=10)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = build_scheduler(build_optimizer(layer.parameters(), section), section, total_steps=10)
    fresh.load_state_dict(state)
    assert fresh.last_epoch == 3
    assert fresh.get_last_lr() == pytest.approx(scheduler.get_last_lr())
    expected = 0.1 * (0.5 * (1 + math.cos(math.pi * 1 / 8)))
    assert scheduler.get_last_lr()[0] == pytest.approx(expected)
