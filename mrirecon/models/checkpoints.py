"""Reading trained models back: a shipped pretrained name, a ``.safetensors`` model, a Lightning
``.ckpt`` of a training run or a model payload ``.pt``.

Every kind is read without unpickling anything: safetensors files are tensors and a JSON header
(:mod:`mrirecon.models.pretrained`); ``.ckpt`` and ``.pt`` through ``torch.load(weights_only=True)``,
plain data and tensors only. A training checkpoint holds the weights in Lightning's ``state_dict``
under the prefix ``model.`` and, under its ``"mrirecon"`` key, the model payload without weights
(docs/interfaces.md §4). This module does not import Lightning, so inference can use it cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from mrirecon.errors import CheckpointError
from mrirecon.models.base import Reconstructor
from mrirecon.models.io import model_from_payload, read_weights_file

__all__ = [
    "CHECKPOINT_KEY",
    "MODEL_PREFIX",
    "checkpoint_file",
    "load_checkpoint_model",
    "load_trained_model",
    "pretrained_name",
    "read_checkpoint",
    "trained_coil_maps",
    "training_record",
]

#: The top-level key of a training checkpoint that holds mrirecon's record.
CHECKPOINT_KEY = "mrirecon"
#: The prefix of the model's weights in a training checkpoint's ``state_dict``.
MODEL_PREFIX = "model."


def read_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint or payload file as plain data (``weights_only=True``).

    Raises:
        CheckpointError: if the file is missing, unreadable, needs unpickling of objects, or is not
            a mapping.
    """
    path = Path(path)
    data = read_weights_file(
        path,
        missing="no such checkpoint file",
        unreadable="cannot read it as a checkpoint",
        map_location=map_location,
        missing_hint="check the path",
        unreadable_hint="only mrirecon training checkpoints (.ckpt) and model files (.pt, .safetensors) "
        "can be loaded",
    )
    if not isinstance(data, dict):
        raise CheckpointError(f"expected a checkpoint mapping, found {type(data).__name__}", path=path)
    return data


def training_record(
    checkpoint: dict[str, Any], *, source: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """The ``"mrirecon"`` record of a training checkpoint (model name and config, version, manifest
    checksum, training config).

    Raises:
        CheckpointError: if the checkpoint has none (not written by ``mrirecon train``).
    """
    record = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(record, dict):
        raise CheckpointError(
            "a Lightning checkpoint without mrirecon's record (no 'mrirecon' key)",
            path=source,
            hint="it was not written by `mrirecon train`",
        )
    return record


def load_checkpoint_model(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> tuple[str, Reconstructor]:
    """The model of a pretrained name, a ``.safetensors`` model, a training checkpoint (``.ckpt``)
    or a model payload (``.pt``).

    Args:
        path: The file, or the name of a shipped pretrained model (``cirim-brain``; a name given as
            a string where no file of that name exists).
        map_location: Where to put the weights.

    Returns:
        ``(model name, model in eval mode)``.

    Raises:
        CheckpointError: if the file cannot be read safely, is neither kind of file, names a model
            that is not registered, or holds weights that do not fit the model its config builds.
    """
    name, model, _ = load_trained_model(path, map_location=map_location)
    return name, model


def load_trained_model(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> tuple[str, Reconstructor, str | None]:
    """:func:`load_checkpoint_model` and :func:`trained_coil_maps` from one read of the file:
    ``(model name, model in eval mode, coil-map method or None)``.

    Raises:
        CheckpointError: as :func:`load_checkpoint_model`.
    """
    from mrirecon.models import pretrained

    if (shipped := pretrained_name(path)) is not None:
        name, model, card = pretrained.load_pretrained(shipped, map_location=map_location)
        return name, model, _coil_maps(card)
    path = Path(path)
    if path.suffix == ".safetensors":
        name, model, card = pretrained.read_safetensors_model(path, map_location=map_location)
        return name, model, _coil_maps(card)
    data = read_checkpoint(path, map_location=map_location)
    if "state_dict" in data and "model_name" not in data:
        record = training_record(data, source=path)
        state = data["state_dict"]
        if not isinstance(state, dict):
            raise CheckpointError("the checkpoint's state_dict is not a mapping", path=path)
        weights = {k[len(MODEL_PREFIX) :]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}
        return (*model_from_payload(record, weights, source=path), _coil_maps(record))
    if "model_name" in data:
        return (*model_from_payload(data, source=path), _coil_maps(data))
    raise CheckpointError(
        "neither a training checkpoint nor a model file (no 'state_dict' or 'model_name')",
        path=path,
        hint="give a .ckpt written by `mrirecon train` or a .pt model file",
    )


def pretrained_name(path: str | os.PathLike[str]) -> str | None:
    """The shipped model ``path`` names, or None: a pretrained name given as a string where no file
    of that name exists (a file in the working directory wins; loading.load_reconstructor's rule; a
    folder of that name, say an earlier run's output folder, does not)."""
    from mrirecon.models import pretrained

    if isinstance(path, str) and pretrained.is_pretrained(path) and not Path(path).is_file():
        return path
    return None


def checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """The file ``path`` stands for: a shipped model's safetensors file for its name
    (:func:`pretrained_name`), else ``path`` itself."""
    from mrirecon.models import pretrained

    shipped = pretrained_name(path)
    return pretrained.PRETRAINED[shipped].path if shipped is not None else Path(path)


def _coil_maps(record: Any) -> str | None:
    """The coil-map method (``data.coil_maps``) of the training config a model's record (a card, a
    checkpoint's record, a payload) holds, if it names one."""
    config = record.get("training_config") if isinstance(record, dict) else None
    data = config.get("data") if isinstance(config, dict) else None
    method = data.get("coil_maps") if isinstance(data, dict) else None
    return method if isinstance(method, str) else None


def trained_coil_maps(path: str | os.PathLike[str]) -> str | None:
    """The coil-map method (``acs``, ``espirit``, ``none``) of the data a model was trained on, as
    its file records it: the training config in a shipped or safetensors model's card, in a
    training checkpoint's record, or beside a model payload (``model.pt`` of ``mrirecon train``);
    None when the file does not say (an older file, a payload saved without it). Only the header is
    read for safetensors files.

    Raises:
        CheckpointError: if the file cannot be read (see :func:`load_checkpoint_model`).
    """
    import json

    path = checkpoint_file(path)
    record: Any = None
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                record = json.loads((handle.metadata() or {}).get("card", "{}"))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"cannot read it as a safetensors model: {error}", path=path) from error
    elif path.suffix in (".ckpt", ".pt"):
        data: Any = read_checkpoint(path)
        # a training checkpoint records it under "mrirecon"; a model payload (model.pt) beside its own
        record = data.get(CHECKPOINT_KEY) if "model_name" not in data else data
    return _coil_maps(record)
