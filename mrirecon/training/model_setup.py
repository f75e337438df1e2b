"""The model a training config describes: its config dataclass, and the weights ``model.init`` names.

``model_config`` resolves ``model.name``, ``model.preset`` / ``model.init`` and ``model.params`` into
the model's config dataclass; ``initial_model`` loads the weights a fine-tune starts from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mrirecon.config import from_mapping, to_mapping
from mrirecon.errors import ConfigError

if TYPE_CHECKING:
    from mrirecon.training.config import ModelSection, TrainConfig

__all__ = ["initial_model", "model_config"]


def model_config(config: TrainConfig) -> Any:
    """The model's config dataclass: its defaults (or ``model.preset``) with ``model.params`` applied.

    Raises:
        ConfigError: for an unknown model name (the known ones are listed), a preset of another
            model or an unknown preset, or a bad parameter.
    """
    from mrirecon.models.registry import get_entry

    section = config.model
    entry = get_entry(section.name)
    base: dict[str, Any] = {}
    if section.init is not None:
        if section.preset is not None:
            raise ConfigError("'model.init' and 'model.preset' both give the base config: keep one")
        base = to_mapping(initial_model(section)[1].config)
    elif section.preset is not None:
        from mrirecon.models.config_files import load_model_config

        name, preset = load_model_config(section.preset)
        if name != section.name:
            raise ConfigError(
                f"'model.preset' {section.preset!r} configures model '{name}', not '{section.name}'",
                hint="choose a preset of the same model (mrirecon models lists them), or change model.name",
            )
        base = to_mapping(preset)
    return from_mapping(entry.config_class, {**base, **section.params}, where="model.params")


def initial_model(section: ModelSection) -> tuple[str, Any]:
    """The model ``model.init`` names, with its weights: ``(registry name, model)``.

    Raises:
        ConfigError: it is a model other than ``model.name``, or cannot be read.
    """
    from mrirecon.errors import CheckpointError
    from mrirecon.models.checkpoints import load_checkpoint_model

    assert section.init is not None
    try:
        name, model = load_checkpoint_model(section.init)
    except CheckpointError as error:
        raise ConfigError(f"'model.init': {error.one_line(hint=False)}", hint=error.hint) from error
    if name != section.name:
        raise ConfigError(
            f"'model.init' {section.init!r} holds model '{name}', not '{section.name}'",
            hint=f"set model.name={name}, or start from weights of a '{section.name}'",
        )
    return name, model
