"""Model config files: ``configs/models/<name>.yaml`` → (registry name, config dataclass).

A model config file names the registry entry under ``model`` and sets the fields of its config
dataclass next to it; fields left out keep their defaults (the papers' settings)::

    # CIRIM for fastMRI knees (ATOMMIC's fastMRIKneesMulticoil config)
    model: cirim
    cascades: 8

:func:`load_model_config` takes a file path or a config name. Names are looked up as
``<name>.yaml`` in, in order: the folder in ``$MRIRECON_MODEL_CONFIGS`` (if set), then
``models/`` of :func:`mrirecon.config.config_dirs` (``$MRIRECON_CONFIGS``, ``./configs`` and the
configs installed with mrirecon). A registry name with no
file gives that model's defaults. Unknown keys and bad values are :class:`ConfigError`s naming the
file, the key and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mrirecon.config import apply_overrides, config_dirs, from_mapping, load_yaml
from mrirecon.errors import ConfigError
from mrirecon.models.registry import default_config, get_entry, model_names

__all__ = ["CONFIG_DIR_ENV", "load_model_config", "model_config_dirs", "model_config_files"]

#: Environment variable naming an extra folder of model config files (searched first).
CONFIG_DIR_ENV = "MRIRECON_MODEL_CONFIGS"


def model_config_dirs() -> list[Path]:
    """The folders searched for ``<name>.yaml``, in order (only those that exist)."""
    candidates = []
    if os.environ.get(CONFIG_DIR_ENV):
        candidates.append(Path(os.environ[CONFIG_DIR_ENV]))
    candidates += config_dirs("models")
    unique: list[Path] = []
    for folder in candidates:
        if folder.is_dir() and all(folder.resolve() != seen.resolve() for seen in unique):
            unique.append(folder)
    return unique


def model_config_files() -> dict[str, Path]:
    """Config name → file, over :func:`model_config_dirs` (the first folder wins a name)."""
    found: dict[str, Path] = {}
    for folder in model_config_dirs():
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def _looks_like_path(text: str) -> bool:
    return text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text


def load_model_config(name_or_path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> tuple[str, Any]:
    """Read a model config by name (``"cirim_knee"``) or path.

    Args:
        name_or_path: A config name (see the module docstring), a registry name, or a YAML path.
        overrides: ``key=value`` strings applied on top of the file (values parsed as YAML).

    Returns:
        ``(registry name, config dataclass instance)``.

    Raises:
        ConfigError: for a missing file or unknown name (the known ones are listed), a file without
            ``model``, an unknown model, an unknown key or a bad value.
    """
    text = os.fspath(name_or_path)
    path: Path | None = None
    if isinstance(name_or_path, Path) or _looks_like_path(text) or Path(text).is_file():
        path = Path(text)
    else:
        path = model_config_files().get(text)
        if path is None:
            if text in model_names():
                name = text
                mapping = apply_overrides({}, overrides)
                if not mapping:
                    return name, default_config(name)
                return name, _build(name, mapping, None)
            known = sorted(set(model_config_files()) | set(model_names()))
            raise ConfigError(
                f"no model config named '{text}'",
                hint=f"known: {', '.join(known)}; or give the path of a YAML file",
            )
    data = apply_overrides(load_yaml(path), overrides)
    name = data.pop("model", None)
    if not isinstance(name, str):
        raise ConfigError(
            "a model config needs a 'model' key naming the model",
            path=path,
            hint=f"e.g. 'model: cirim'; registered: {', '.join(model_names())}",
        )
    try:
        get_entry(name)
    except ConfigError as error:
        raise ConfigError(error.message, path=path, hint=error.hint) from error
    return name, _build(name, data, path)


def _build(name: str, mapping: dict[str, Any], path: Path | None) -> Any:
    try:
        return from_mapping(get_entry(name).config_class, mapping, where="")
    except ConfigError as error:
        if path is None:
            raise
        raise ConfigError(error.message, path=path, hint=error.hint) from error
