"""The model a training config describes: its config dataclass, and the weights ``model.init`` names.

``model_config`` resolves ``model.name``, ``model.preset`` / ``model.init`` and ``model.params`` into
the model's config dataclass (and checks that ``model.init``'s weights fit it); ``initial_model``
loads the weights a fine-tune starts from; ``load_initial_weights`` puts them into a model;
``initial_coil_maps`` is the coil-map method they learned from. The file is read once per process
while it is unchanged (the config check, the run's set-up and its start each ask for it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mrirecon.config import from_mapping, to_mapping
from mrirecon.errors import ConfigError

if TYPE_CHECKING:
    from mrirecon.training.config import ModelSection, TrainConfig

__all__ = ["initial_coil_maps", "initial_model", "load_initial_weights", "model_config"]

#: The last ``model.init`` read: ``(its file's identity, (name, model, coil-map method))``.
_LAST_INIT: list[tuple[tuple[Any, ...], tuple[str, Any, str | None]]] = []


def model_config(config: TrainConfig, *, resumed: Mapping[str, Any] | None = None) -> Any:
    """The model's config dataclass: its defaults (or ``model.preset``) with ``model.params`` applied.

    A resumed run that started from ``model.init`` takes the init model's config from ``resumed``,
    the mrirecon record of the checkpoint it resumes from
    (:func:`~mrirecon.training.run_folder.read_resumed`): the run no longer needs the file it
    started from (its weights are in the checkpoint), which may have been moved or deleted since.

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
        if resumed is not None:
            recorded = resumed.get("model_config")
            if not isinstance(recorded, Mapping):
                raise ConfigError(
                    "the checkpoint the run resumes from records no model config",
                    hint="resume it with the mrirecon that wrote it, or start a new run",
                )
            base = dict(recorded)
        else:
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
    config_: Any = from_mapping(entry.config_class, {**base, **section.params}, where="model.params")
    if section.init is not None and resumed is None:  # refused now, not after the data are simulated
        from mrirecon.models.registry import build_model

        load_initial_weights(section, build_model(section.name, config_), base)
    return config_


def load_initial_weights(section: ModelSection, model: Any, base: dict[str, Any] | None = None) -> None:
    """Load the weights ``model.init`` names into ``model``.

    Args:
        section: The model section (``init`` set).
        model: The model built from the run's config.
        base: The init model's config as a mapping (read again when None), to name the
            ``model.params`` that change the weights' shapes.

    Raises:
        ConfigError: the weights do not fit the model (the params that differ are named).
    """
    assert section.init is not None
    init = initial_model(section)[1]
    try:
        model.load_state_dict(init.state_dict())
    except RuntimeError as error:  # load_state_dict's size and key mismatches
        changed = _shaping_changes(section, to_mapping(init.config) if base is None else base, init)
        what = "model.params changes " + ", ".join(changed) if changed else str(error).strip().splitlines()[0]
        raise ConfigError(
            f"the weights of 'model.init' {section.init!r} do not fit this model: {what}",
            hint="leave the params that shape the weights (channels, cascades, steps) as they are",
        ) from error


def _shaping_changes(section: ModelSection, base: dict[str, Any], init: Any) -> list[str]:
    """The ``model.params`` that alone change the shapes of the init model's weights, as
    ``"name old → new"``."""
    from mrirecon.models.registry import build_model, get_entry

    shapes = {key: tuple(value.shape) for key, value in init.state_dict().items()}
    config_class = get_entry(section.name).config_class
    out = []
    for key, value in section.params.items():
        if key not in base or base[key] == value:
            continue
        try:
            model = build_model(
                section.name, from_mapping(config_class, {**base, key: value}, where="model.params")
            )
        except ConfigError:  # valid only with the other changes: not named alone
            continue
        if {k: tuple(v.shape) for k, v in model.state_dict().items()} != shapes:
            out.append(f"{key} {base[key]!r} → {value!r}")
    return out


def initial_model(section: ModelSection) -> tuple[str, Any]:
    """The model ``model.init`` names, with its weights: ``(registry name, model)``.

    Raises:
        ConfigError: it is a model other than ``model.name``, or cannot be read.
    """
    assert section.init is not None
    name, model, _ = _read_init(section.init)
    if name != section.name:
        raise ConfigError(
            f"'model.init' {section.init!r} holds model '{name}', not '{section.name}'",
            hint=f"set model.name={name}, or start from weights of a '{section.name}'",
        )
    return name, model


def initial_coil_maps(section: ModelSection) -> str | None:
    """The coil-map method ``model.init``'s weights learned from, as its file records it (None when
    it does not say).

    Raises:
        ConfigError: the file cannot be read.
    """
    assert section.init is not None
    return _read_init(section.init)[2]


def _read_init(init: str) -> tuple[str, Any, str | None]:
    """``(model name, model, coil-map method)`` of the file (or shipped model) ``init``, read again
    only when the file changed since the last call."""
    from mrirecon.errors import CheckpointError
    from mrirecon.models.checkpoints import checkpoint_file, load_trained_model

    file = checkpoint_file(init)
    try:
        stat = file.stat()
        key: tuple[Any, ...] | None = (init, str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:  # missing: load_trained_model says so
        key = None
    if key is not None and _LAST_INIT and _LAST_INIT[0][0] == key:
        return _LAST_INIT[0][1]
    try:
        read = load_trained_model(init)
    except CheckpointError as error:
        raise ConfigError(f"'model.init': {error.one_line(hint=False)}", hint=error.hint) from error
    if key is not None:
        _LAST_INIT[:] = [(key, read)]
    return read
