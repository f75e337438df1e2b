"""Fixtures of the training tests: the tiny model in the registry, phantom datasets, a base config."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.training.phantoms import PhantomSlices
from tests.training.tiny import register_tiny, unregister_tiny


@pytest.fixture
def tiny_registered() -> Iterator[str]:
    register_tiny()
    yield "tiny"
    unregister_tiny()


@pytest.fixture(scope="session")
def phantom_data() -> dict[str, Any]:
    """Small train/val sets (4 + 2 volumes of 2 slices, 4 coils, 32×32)."""
    return {
        "train": PhantomSlices(volumes=4, slices=2, train=True, seed=1, prefix="train"),
        "val": PhantomSlices(volumes=2, slices=2, train=False, seed=2, prefix="val"),
    }


def base_mapping(**trainer: Any) -> dict[str, Any]:
    """A training config for the tiny model on in-memory data (CPU, quiet)."""
    return {
        "model": {"name": "tiny", "params": {"channels": 8}},
        "data": {"train": "unused", "val": "unused"},
        "loss": {
            "terms": {"l1": 1.0, "ssim": 1.0},
            "time_weighting": "logspace",
            "cascade_weighting": "logspace",
        },
        "optim": {"lr": 3e-3},
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": 2,
            "progress_bar": False,
            "seed": 7,
            "log_every_n_steps": 1,
            **trainer,
        },
    }
