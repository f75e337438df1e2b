"""Learning-rate schedules: warm-up, step and cosine values; state that resumes without pickling code."""

from __future__ import annotations

import io
import math
from typing import Any, Literal

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
def test_optimizer_and_scheduler_state_round_trips_with_weights_only(name: Literal["adam", "adamw"]) -> None:
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


def test_optimizer_steps_counts_like_lightning() -> None:
    from mrirecon.training.run import optimizer_steps

    common: dict[str, Any] = {
        "world_size": 1,
        "batch_size": 1,
        "accumulate": 1,
        "limit_batches": 1.0,
        "max_steps": -1,
    }
    assert optimizer_steps(8, **{**common, "max_epochs": 3}) == 24
    # 9 items on 2 ranks: 5 each (padded), batches of 2: 3 batches, 2 per step: 2 steps per epoch
    assert (
        optimizer_steps(9, **{**common, "world_size": 2, "batch_size": 2, "accumulate": 2, "max_epochs": 2})
        == 4
    )
    assert optimizer_steps(10, **{**common, "limit_batches": 0.5, "max_epochs": 1}) == 5
    assert optimizer_steps(10, **{**common, "limit_batches": 3, "max_epochs": 2}) == 6
    assert optimizer_steps(10, **{**common, "max_epochs": 5, "max_steps": 7}) == 7
