"""What ``mrirecon models`` shows: every registered model (and config file) with its parameter count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mrirecon.models.base import Reconstructor
from mrirecon.models.config_files import load_model_config, model_config_files
from mrirecon.models.registry import build_model, get_entry, model_names, parameter_count

__all__ = ["ModelSummary", "describe_configs", "describe_models", "describe_pretrained"]


@dataclass(frozen=True)
class ModelSummary:
    """One line of the listing.

    Attributes:
        name: Registry name, or config name for :func:`describe_configs`.
        model: Registry name of the model it builds.
        parameters: Trainable parameters at that config.
        trainable: Whether the model has weights to train (classical baselines do not).
        summary: The registry's one-line description, or the config file's path.
    """

    name: str
    model: str
    parameters: int
    trainable: bool
    summary: str


def _shell(name: str, config: Any = None) -> Reconstructor:
    """The model built on the meta device: its parameters have shapes but no memory and no
    initialisation cost. Models that compute at construction fall back to a real build."""
    try:
        with torch.device("meta"):
            return build_model(name, config)
    except (NotImplementedError, RuntimeError):
        return build_model(name, config)


def describe_models() -> list[ModelSummary]:
    """Every registered model at its default config (the papers' settings), in registry order."""
    rows = []
    for name in model_names():
        entry = get_entry(name)
        model = _shell(name)
        rows.append(ModelSummary(name, name, parameter_count(model), model.trainable, entry.summary))
    return rows


def describe_configs() -> list[ModelSummary]:
    """Every model config file found (see :mod:`mrirecon.models.config_files`), by name."""
    rows = []
    for config_name, path in sorted(model_config_files().items()):
        name, config = load_model_config(path)
        model = _shell(name, config)
        rows.append(ModelSummary(config_name, name, parameter_count(model), model.trainable, str(path)))
    return rows


def describe_pretrained() -> list[ModelSummary]:
    """Every shipped pretrained model whose weights are installed, with its card's headline figures."""
    from mrirecon.models.pretrained import available, card_headline, read_safetensors_model

    rows = []
    for entry in available():
        name, model, card = read_safetensors_model(entry.path)
        headline = card_headline(card) or entry.summary
        rows.append(ModelSummary(entry.name, name, parameter_count(model), True, headline))
    return rows
