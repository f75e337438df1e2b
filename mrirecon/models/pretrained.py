"""The pretrained models shipped inside the package, and the safetensors model files they are.

A pretrained model is one ``.safetensors`` file in ``mrirecon/models/weights/``: the weights as
named tensors and, in the file's JSON header (``__metadata__``, text only), the registry name of
the model, its config, and its model card's headline figures. Reading it parses that header and
copies raw tensor bytes: nothing is unpickled, no code can run from the file.

Names (:data:`PRETRAINED`) work wherever a checkpoint path does: ``mrirecon infer cirim-brain
scan.h5``, ``mrirecon batch --checkpoint cirim-brain``, ``model.init=cirim-brain`` in a training
config. docs/pretrained.md holds the model cards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mrirecon.atomic import atomic_file
from mrirecon.errors import CheckpointError, ConfigError
from mrirecon.models.base import Reconstructor
from mrirecon.models.io import PAYLOAD_FORMAT, model_from_payload, model_payload

__all__ = [
    "PRETRAINED",
    "WEIGHTS",
    "PretrainedEntry",
    "available",
    "card_headline",
    "is_pretrained",
    "load_pretrained",
    "read_safetensors_model",
    "write_safetensors_model",
]

#: The folder of the shipped weights (package data).
WEIGHTS = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class PretrainedEntry:
    """One shipped model.

    Attributes:
        name: The stable name users type (``cirim-brain``).
        file: Its file in :data:`WEIGHTS`.
        summary: One line for ``mrirecon models``.
    """

    name: str
    file: str
    summary: str

    @property
    def path(self) -> Path:
        return WEIGHTS / self.file


#: Every pretrained name, by hand (an explicit registry).
PRETRAINED: dict[str, PretrainedEntry] = {
    entry.name: entry
    for entry in (
        PretrainedEntry(
            "cirim-brain",
            "cirim-brain.safetensors",
            "CIRIM 3×6×32 (IndRNN), brain MRI, any Cartesian mask at 2–10× (simulated training data)",
        ),
        PretrainedEntry(
            "rim-brain",
            "rim-brain.safetensors",
            "RIM (IndRNN), brain MRI, any Cartesian mask at 2–10× (simulated training data)",
        ),
        PretrainedEntry(
            "recurrentvarnet-brain",
            "recurrentvarnet-brain.safetensors",
            "RecurrentVarNet 4 steps × 3 layers × 32 ch, brain MRI, any Cartesian mask at 2–10× (simulated)",
        ),
    )
}


def is_pretrained(name: str) -> bool:
    """Whether ``name`` is a pretrained model's name (shipped or not)."""
    return name in PRETRAINED


def card_headline(card: Mapping[str, Any]) -> str:
    """A model card's headline: its real-anatomy equispaced 4× figures beside CS's, lesions kept.

    Built from the card's ``quality`` table (written by ``benchmarks/pretrained.py``); a card
    without one gives its stored ``headline`` text, or "".
    """
    figures = card.get("quality", {}).get("real", {}).get("equispaced 4x")
    if not figures:
        return str(card.get("headline", ""))
    text = f"real anatomy, equispaced 4x: head PSNR {figures['head_psnr']:.2f} dB"
    if figures.get("cs_head_psnr") is not None:
        text += f" (CS {figures['cs_head_psnr']:.2f})"
    text += f", SSIM {figures['head_ssim']:.3f}"
    if figures.get("cs_head_ssim") is not None:
        text += f" (CS {figures['cs_head_ssim']:.3f})"
    if figures.get("lesions_kept"):
        text += f", lesions kept {figures['lesions_kept']}"
    return text


def available() -> list[PretrainedEntry]:
    """The pretrained models whose weights are installed."""
    return [entry for entry in PRETRAINED.values() if entry.path.is_file()]


def write_safetensors_model(
    path: str | os.PathLike[str],
    name: str,
    config: Any,
    model: Reconstructor,
    card: dict[str, Any] | None = None,
) -> Path:
    """Write a model as safetensors: its weights, and name, config and card in the header."""
    from safetensors.torch import save_file

    payload = model_payload(name, config)
    metadata = {
        "format": str(PAYLOAD_FORMAT),
        "model_name": name,
        "model_config": json.dumps(payload["model_config"]),
        "mrirecon_version": str(payload["mrirecon_version"]),
        "card": json.dumps(card or {}),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_file(path, what="safetensors model") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_safetensors_model(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> tuple[str, Reconstructor, dict[str, Any]]:
    """``(model name, model in eval mode, card)`` of a safetensors model file.

    Raises:
        CheckpointError: a missing or unreadable file, a header without mrirecon's fields, or
            weights that do not fit the model its config builds.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such model file", path=path, hint="check the path")
    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"cannot read it as a safetensors model: {error}", path=path) from error
    if "model_name" not in metadata:
        raise CheckpointError(
            "a safetensors file without mrirecon's header (no 'model_name')",
            path=path,
            hint="only safetensors files written by mrirecon carry the model's name and config",
        )
    parsed = {}
    for key, what in (("model_config", "model config"), ("card", "model card")):
        try:
            parsed[key] = json.loads(metadata.get(key, "{}"))
        except json.JSONDecodeError as error:
            raise CheckpointError(f"the header's {what} is not JSON: {error}", path=path) from error
    config, card = parsed["model_config"], parsed["card"]
    try:
        payload_format = int(metadata.get("format", PAYLOAD_FORMAT))
    except ValueError as error:
        raise CheckpointError(
            f"the header's format {metadata.get('format')!r} is not a number", path=path
        ) from error
    payload = {
        "format": payload_format,
        "model_name": metadata["model_name"],
        "model_config": config,
        "mrirecon_version": metadata.get("mrirecon_version", ""),
    }
    name, model = model_from_payload(payload, tensors, source=path)
    return name, model, card


def load_pretrained(
    name: str, *, map_location: str | torch.device = "cpu"
) -> tuple[str, Reconstructor, dict[str, Any]]:
    """``(registry name, model in eval mode, card)`` of a shipped pretrained model.

    Raises:
        ConfigError: an unknown name (the known ones are listed).
        CheckpointError: the name is known but its weights are not installed.
    """
    entry = PRETRAINED.get(name)
    if entry is None:
        raise ConfigError(f"unknown pretrained model '{name}'", hint=f"choose one of {', '.join(PRETRAINED)}")
    if not entry.path.is_file():
        raise CheckpointError(
            f"the weights of '{name}' are not installed",
            path=entry.path,
            hint="reinstall mrirecon (the wheel ships them), or train the model with configs/pretrained/",
        )
    return read_safetensors_model(entry.path, map_location=map_location)
