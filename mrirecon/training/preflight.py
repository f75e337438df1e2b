"""Checks a training run makes once its datasets and model exist, before Lightning starts: each
refuses, in one line, a setting that would otherwise fail later with a traceback."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mrirecon.errors import ConfigError

if TYPE_CHECKING:
    from mrirecon.models.base import Reconstructor
    from mrirecon.training.config import TrainConfig

__all__ = ["check_batches", "check_coil_maps", "check_split_sizes"]


def check_split_sizes(datasets: Mapping[str, Any], world_size: int) -> None:
    """Every process must get at least one slice of each evaluated split."""
    for split in ("val", "test"):
        if split in datasets and 0 < len(datasets[split]) < world_size:
            raise ConfigError(
                f"the {split} data hold {len(datasets[split])} slice(s), fewer than the "
                f"{world_size} training processes",
                hint=f"give data.{split} at least {world_size} slices, or train on fewer devices",
            )


def check_coil_maps(config: TrainConfig, model: Reconstructor) -> None:
    """``data.coil_maps: none`` only for a model that estimates its own maps, and without the dc loss."""
    if config.data.coil_maps != "none":
        return
    if model.needs_coil_maps():
        raise ConfigError(
            f"model '{config.model.name}' needs coil maps, and 'data.coil_maps' is none",
            hint="set data.coil_maps to acs or espirit (none is for models that estimate their own)",
        )
    if config.loss.terms.get("dc", 0.0) > 0:
        raise ConfigError(
            "the 'dc' loss term compares the estimate with the measured samples through coil maps, "
            "and 'data.coil_maps' is none",
            hint="set data.coil_maps to acs or espirit, or drop the dc term",
        )


def check_batches(config: TrainConfig, slices: int) -> None:
    """Refuse a ``limit_train_batches`` that leaves no training batch (Lightning raises a traceback)."""
    limit = config.trainer.limit_train_batches
    batches = math.ceil(slices / config.data.batch_size)
    if isinstance(limit, float) and int(batches * limit) < 1:
        raise ConfigError(
            f"'trainer.limit_train_batches' {limit} of {batches} training batch(es) leaves none",
            hint=f"raise it to at least {1 / batches:.3g}, or give a number of batches",
        )
