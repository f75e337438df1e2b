"""Which reconstructor to run: a checkpoint (learned models) or a registry name (classical baselines).

``mrirecon infer CHECKPOINT_OR_MODEL`` and ``mrirecon batch --checkpoint/--model`` both end here. A
checkpoint is identified by its sha256 (recorded in every output); a classical baseline is built
from its config dataclass, optionally from a YAML file of config fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrirecon.config import find_config, load_yaml
from mrirecon.errors import CheckpointError, ConfigError
from mrirecon.inference import components
from mrirecon.models.base import Reconstructor
from mrirecon.models.checkpoints import pretrained_name
from mrirecon.models.pretrained import PRETRAINED
from mrirecon.models.registry import build_model_from_mapping, config_mapping, get_entry, model_names

__all__ = ["LoadedModel", "file_sha256", "load_reconstructor"]

_CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth", ".safetensors")


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A reconstructor ready to run, with what the outputs record about it.

    Attributes:
        name: Registry name.
        model: The model, in eval mode (on the CPU; the runner moves it).
        checkpoint: The checkpoint file, or None for a baseline built by name.
        checkpoint_sha256: sha256 of the checkpoint file ("" for a baseline built by name).
        config: The model's config as plain data (for run.json), if the model exposes it.
        coil_maps: The coil-map method of the data the model was trained on, when its checkpoint
            records it (:func:`~mrirecon.models.checkpoints.load_trained_model`); a run uses it
            unless told otherwise, and refuses another.
    """

    name: str
    model: Reconstructor
    checkpoint: Path | None = None
    checkpoint_sha256: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    coil_maps: str | None = None

    @property
    def config_json(self) -> str:
        """The config as canonical JSON (recorded in every output; "" when unknown): two runs of a
        baseline with different settings are told apart by it."""
        return (
            json.dumps(self.config, sort_keys=True, separators=(",", ":"), default=str) if self.config else ""
        )


def file_sha256(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _config_of(model: Reconstructor) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if config is not None and dataclasses.is_dataclass(config) and not isinstance(config, type):
        return config_mapping(config)
    return {}


def _looks_like_path(text: str) -> bool:
    return os.sep in text or text.endswith(_CHECKPOINT_SUFFIXES) or text.startswith(".")


def load_reconstructor(
    checkpoint_or_model: str | os.PathLike[str],
    *,
    model_config: str | os.PathLike[str] | None = None,
    kind: str = "any",
) -> LoadedModel:
    """Load a checkpoint, or build a classical baseline by its registry name.

    Args:
        checkpoint_or_model: A checkpoint file (``.ckpt`` from training, ``.pt`` model payload,
            ``.safetensors`` model), the name of a shipped pretrained model (``cirim-brain``), or
            the registry name of a model that needs no weights (``zero_filled``, ``sense``, ...).
        model_config: YAML file of config fields for a model built by name, optionally with a
            ``model:`` key naming it (as in ``configs/models/``); not with a checkpoint, which
            carries its own config.
        kind: ``"checkpoint"`` or ``"model"`` to accept only that (``batch --checkpoint/--model``);
            ``"any"`` decides by whether the file exists (``infer``).

    Returns:
        The :class:`LoadedModel`.

    Raises:
        CheckpointError: the checkpoint is missing, unreadable, or for a model this mrirecon cannot
            build (unknown name, weights that do not fit).
        ConfigError: an unknown model name, a learned model named without a checkpoint, a bad
            model config file.
    """
    text = os.fspath(checkpoint_or_model)
    path = Path(text)
    if kind not in ("any", "checkpoint", "model"):
        raise ValueError(f"kind must be 'any', 'checkpoint' or 'model', got {kind!r}")
    if pretrained_name(text) is not None:
        if model_config is not None:
            raise ConfigError(
                "a pretrained model carries its own config: --model-config applies to a model given by name",
                path=model_config,
            )
        if kind == "model":
            raise ConfigError(
                f"'{text}' is a pretrained learned model", hint=f"pass it as --checkpoint {text}"
            )
        weights = PRETRAINED[text].path
        name, model, maps = components.load_checkpoint(text)
        return LoadedModel(name, model.eval(), weights, file_sha256(weights), _config_of(model), maps)
    if kind == "checkpoint" and not path.exists():
        raise CheckpointError(
            "no such checkpoint file",
            path=path,
            hint=f"check the path, or name a pretrained model ({', '.join(PRETRAINED)})",
        )
    if kind == "model":
        return _baseline(text, model_config)
    if path.is_dir():
        raise CheckpointError(
            "this is a folder, not a checkpoint",
            path=path,
            hint="pass a .ckpt, .pt or .safetensors file or a model name",
        )
    if path.is_file():
        if model_config is not None:
            raise ConfigError(
                "a checkpoint carries its own model config: --model-config applies to a model given by name",
                path=model_config,
            )
        try:
            sha = file_sha256(path)
        except OSError as error:
            raise CheckpointError(f"cannot read the checkpoint: {error.strerror}", path=path) from error
        name, model, maps = components.load_checkpoint(path)
        return LoadedModel(name, model.eval(), path.resolve(), sha, _config_of(model), maps)
    if text not in model_names() and _looks_like_path(text):
        raise CheckpointError("no such checkpoint file", path=path, hint="check the path")
    return _baseline(text, model_config)


def _unknown_model(text: str) -> ConfigError:
    """The error for a name that is neither a pretrained model nor a registered one: the closest
    names first, then every name a user can give."""
    known = [*PRETRAINED, *model_names()]
    close = difflib.get_close_matches(text, known, n=2, cutoff=0.6)
    guess = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return ConfigError(
        f"unknown model '{text}'",
        hint=f"{guess}pretrained: {', '.join(PRETRAINED)}; by name: {', '.join(model_names())}; "
        "or a checkpoint file (.ckpt, .pt, .safetensors)",
    )


def _baseline(text: str, model_config: str | os.PathLike[str] | None) -> LoadedModel:
    try:
        entry = get_entry(text)
    except ConfigError:
        raise _unknown_model(text) from None
    mapping = (
        load_yaml(find_config(model_config, "models", what="model config"))
        if model_config is not None
        else {}
    )
    named = mapping.pop("model", entry.name)  # configs/models/*.yaml may name their model
    if get_entry(str(named)).name != entry.name:
        raise ConfigError(
            f"this config is for model '{named}', not '{text}'",
            path=model_config,
            hint=f"run '{named}', or pass a config of '{text}'",
        )
    try:
        model = build_model_from_mapping(text, mapping)
    except ConfigError as error:
        raise ConfigError(error.message, path=model_config, hint=error.hint) from error
    if model.trainable:
        raise ConfigError(
            f"model '{text}' is learned and needs its trained weights",
            hint=f"pass its checkpoint (.ckpt or .pt) instead of the name '{entry.name}'",
        )
    return LoadedModel(entry.name, model.eval(), None, "", _config_of(model))
