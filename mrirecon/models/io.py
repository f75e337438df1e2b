"""Saving and loading models as plain payloads that ``torch.load(weights_only=True)`` reads.

A payload (docs/interfaces.md §4) is a dict of plain data and tensors only::

    {"format": 1, "model_name": str, "model_config": dict, "mrirecon_version": str,
     "state_dict": {name: tensor}}

Nothing in it is a pickled Python object, so loading a file never runs code from it. Training
checkpoints carry the same payload without ``state_dict`` under their ``"mrirecon"`` key.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mrirecon._version import __version__
from mrirecon.atomic import atomic_file
from mrirecon.errors import CheckpointError, ConfigError
from mrirecon.models.base import Reconstructor
from mrirecon.models.registry import build_model_from_mapping, config_mapping, get_entry

__all__ = [
    "PAYLOAD_FORMAT",
    "load_model",
    "model_from_payload",
    "model_payload",
    "read_weights_file",
    "save_model",
    "weights_sha256",
]

#: Version of the payload layout; bumped when the layout changes incompatibly.
PAYLOAD_FORMAT = 1


def model_payload(
    name: str, config: Any, state_dict: Mapping[str, torch.Tensor] | None = None
) -> dict[str, Any]:
    """The payload of a model: name, config (as plain data), version and, optionally, the weights.

    Args:
        name: The registry name.
        config: The model's config dataclass.
        state_dict: The weights (``model.state_dict()``), or ``None`` for the header alone (what a
            training checkpoint's ``"mrirecon"`` key holds).
    """
    get_entry(name)
    payload: dict[str, Any] = {
        "format": PAYLOAD_FORMAT,
        "model_name": name,
        "model_config": config_mapping(config),
        "mrirecon_version": __version__,
    }
    if state_dict is not None:
        payload["state_dict"] = {k: v.detach().cpu() for k, v in state_dict.items()}
    return payload


def model_from_payload(
    payload: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    source: str | os.PathLike[str] | None = None,
) -> tuple[str, Reconstructor]:
    """Build the model a payload describes and load its weights.

    Args:
        payload: A model payload (docs/interfaces.md §4).
        state_dict: The weights when they are not in the payload (training checkpoints).
        source: The file it came from, for error messages.

    Returns:
        ``(model name, model in eval mode)``.

    Raises:
        CheckpointError: if the payload is malformed, names an unknown model, or its weights do not
            fit the model its config builds.
    """
    if not isinstance(payload, Mapping) or "model_name" not in payload:
        raise CheckpointError("not a mrirecon model payload (no 'model_name')", path=source)
    if payload.get("format") != PAYLOAD_FORMAT:
        raise CheckpointError(
            f"payload format {payload.get('format')!r} is not supported "
            f"(this mrirecon reads format {PAYLOAD_FORMAT})",
            path=source,
        )
    name = str(payload["model_name"])
    config = payload.get("model_config") or {}
    if not isinstance(config, Mapping):
        raise CheckpointError(
            f"its model config is not a mapping of settings (found {type(config).__name__})", path=source
        )
    weights = state_dict if state_dict is not None else payload.get("state_dict")
    if weights is not None and (
        not isinstance(weights, Mapping) or not all(isinstance(v, torch.Tensor) for v in weights.values())
    ):
        raise CheckpointError(
            f"its weights are not a mapping of names to tensors (found {type(weights).__name__})",
            path=source,
            hint="was it saved by mrirecon (mrirecon train, save_model)?",
        )
    written_by = str(payload.get("mrirecon_version", "")) or None
    # first on the meta device (no memory): a config of huge sizes, from a damaged or hostile
    # file, is refused by its tensors' shapes before the model is built for real
    skeleton = _build(name, config, source, written_by, meta=True)
    if weights is None:
        if skeleton.trainable:
            raise CheckpointError(f"no weights for the trainable model '{name}'", path=source)
    else:
        _check_weights(skeleton.state_dict(), weights, name, source, written_by)
    model = _build(name, config, source, written_by, meta=False)
    if weights is not None:
        model.load_state_dict(dict(weights), strict=True)
    return name, model.eval()


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of a version text (``0.1.0`` → ``(0, 1, 0)``); () if it has none."""
    match = re.match(r"\d+(\.\d+)*", version.strip())
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def _newer(written_by: str | None) -> str:
    """`` (written by mrirecon X, this is Y: upgrade mrirecon)`` for a file of a newer version, else ""."""
    ours, theirs = _release(__version__), _release(written_by or "")
    newer = bool(ours and theirs and theirs > ours)
    return f" (written by mrirecon {written_by}, this is {__version__}: upgrade mrirecon)" if newer else ""


def _build(
    name: str,
    config: Mapping[str, Any],
    source: str | os.PathLike[str] | None,
    written_by: str | None,
    *,
    meta: bool,
) -> Reconstructor:
    """The model ``config`` describes: on the meta device (shapes only, no memory) or for real."""
    try:
        if meta:
            with torch.device("meta"):
                return build_model_from_mapping(name, config)
        return build_model_from_mapping(name, config)
    except ConfigError as error:
        raise CheckpointError(
            f"cannot build the model it describes: {error.one_line()}{_newer(written_by)}", path=source
        ) from error
    except MemoryError as error:
        raise CheckpointError(
            "the model its config describes does not fit in memory",
            path=source,
            hint="check the file's model config",
        ) from error


def _check_weights(
    expected: Mapping[str, torch.Tensor],
    weights: Mapping[str, torch.Tensor],
    name: str,
    source: str | os.PathLike[str] | None,
    written_by: str | None,
) -> None:
    """Refuse weights that do not fit the model (naming the tensors) or that are not finite."""
    missing = [key for key in expected if key not in weights]
    extra = [key for key in weights if key not in expected]
    misshaped = [
        f"{key} {tuple(weights[key].shape)} (the model's {tuple(expected[key].shape)})"
        for key in expected
        if key in weights and weights[key].shape != expected[key].shape
    ]
    problems = [
        f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
        for label, items in (("missing", missing), ("not in the model", extra), ("another shape", misshaped))
        if items
    ]
    if problems:
        raise CheckpointError(
            f"the weights do not fit model '{name}' with this config ({'; '.join(problems)})"
            + _newer(written_by),
            path=source,
            hint="was it saved by another model or another mrirecon version?",
        )
    for key, value in weights.items():
        if value.dtype != expected[key].dtype:
            raise CheckpointError(
                f"weight '{key}' is {value.dtype}, the model's is {expected[key].dtype}",
                path=source,
                hint="was it saved by mrirecon (mrirecon train, save_model)?",
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(
                f"weight '{key}' holds NaN or infinite values",
                path=source,
                hint="the training that wrote it diverged, or the file is damaged: use an earlier checkpoint",
            )


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 of a model's weights: every state-dict entry's name, dtype, shape and bytes, in name order.

    The same weights give the same digest whichever file they came from (checkpoint, payload or
    safetensors), so a figure measured on one file can be matched to the weights shipped from another.
    """
    digest = hashlib.sha256()
    state = model.state_dict()
    for name in sorted(state):
        tensor = state[name].detach().cpu()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_model(
    path: str | os.PathLike[str],
    name: str,
    config: Any,
    model: Reconstructor,
    *,
    record: Mapping[str, Any] | None = None,
) -> Path:
    """Write a model payload to ``path`` atomically (``.pt``); returns the path.

    ``record`` adds plain entries beside the payload's own: ``mrirecon train`` records its
    ``manifest_sha256`` and ``training_config`` (whose ``data.coil_maps`` inference follows), as in
    its checkpoints.
    """
    path = Path(path)
    payload = {**(record or {}), **model_payload(name, config, model.state_dict())}
    with atomic_file(path, what="model file") as tmp:
        torch.save(payload, tmp)
    return path


def load_model(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> tuple[str, Reconstructor]:
    """Read a model payload written by :func:`save_model` (``weights_only=True``: nothing is unpickled).

    Returns:
        ``(model name, model in eval mode)``.

    Raises:
        CheckpointError: if the file is missing, unreadable, not a payload, or for another model.
    """
    path = Path(path)
    payload = read_weights_file(
        path,
        missing="no such model file",
        unreadable="cannot read it as a model file",
        map_location=map_location,
    )
    return model_from_payload(payload, source=path)


def read_weights_file(
    path: Path,
    *,
    missing: str,
    unreadable: str,
    map_location: str | torch.device = "cpu",
    missing_hint: str | None = None,
    unreadable_hint: str | None = None,
) -> Any:
    """``torch.load`` with ``weights_only=True`` (nothing is unpickled), every failure a CheckpointError.

    Args:
        path: The file.
        missing: The message for a missing file ("no such model file").
        unreadable: The start of the message for an unreadable one ("cannot read it as a model file").
        map_location: Where to put the tensors.
        missing_hint, unreadable_hint: The fixes the messages suggest.

    Raises:
        CheckpointError: the file is missing, or torch cannot read it without unpickling objects.
    """
    if not path.is_file():
        raise CheckpointError(missing, path=path, hint=missing_hint)
    kind = _not_a_torch_file(path)
    if kind:
        raise CheckpointError(f"{unreadable}: {kind}", path=path, hint=unreadable_hint)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for a bad file (UnpicklingError, RuntimeError...)
        raise CheckpointError(f"{unreadable}: {_reason(error)}", path=path, hint=unreadable_hint) from error


#: The first bytes of the files torch.save writes: a zip archive, or (the legacy format) a pickle.
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _not_a_torch_file(path: Path) -> str:
    """Why ``path`` cannot be a file of ``torch.save`` from its first bytes ("" when it may be one)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as error:
        return f"{type(error).__name__}: {error.strerror or error}"
    if not head:
        return "the file is empty"
    if head.startswith(_HDF5_MAGIC):
        return "it is an HDF5 file (data or images), not a PyTorch file"
    if not head.startswith(_TORCH_MAGIC):
        return "it is not a PyTorch file (torch.save writes a zip archive)"
    return ""


def _reason(error: BaseException) -> str:
    """Why torch could not read a file, in one line, without torch's advice to load it unsafely."""
    text = str(error)
    found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text)
    if found:
        return (
            f"it holds Python objects ({found.group(1)}) besides tensors and plain data; "
            "mrirecon never unpickles them"
        )
    if "Weights only load failed" in text:
        return "torch cannot read it without unpickling Python objects (damaged, or not a checkpoint)"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(error).__name__}: {first}".rstrip(": ")
