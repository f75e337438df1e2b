"""The one explicit registry of reconstructors: a name → (model class, config dataclass).

Every model, learned or classical, is listed in :data:`REGISTRY` below, by hand: no import-time
side effects, no decorators scattered over modules. A model is built from its frozen config
dataclass (``build_model(name, config)``) or from a plain mapping checked against that dataclass
(``build_model_from_mapping``), never from a raw dict inside the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mrirecon.config import from_mapping, to_mapping
from mrirecon.errors import ConfigError
from mrirecon.models.base import Reconstructor

__all__ = [
    "REGISTRY",
    "ModelEntry",
    "build_model",
    "build_model_from_mapping",
    "config_mapping",
    "default_config",
    "get_entry",
    "model_names",
    "parameter_count",
    "register_model",
    "unregister_model",
]


@dataclass(frozen=True)
class ModelEntry:
    """One registered reconstructor.

    Attributes:
        name: The registry name (what configs, checkpoints and the CLI use).
        model_class: The :class:`Reconstructor` subclass; ``model_class(config)`` builds it.
        config_class: Its frozen config dataclass; every field has the paper's default.
        summary: One line for ``mrirecon models``.
    """

    name: str
    model_class: Callable[[Any], Reconstructor]
    config_class: type
    summary: str


def _entries() -> dict[str, ModelEntry]:
    """The registry, built on first use (model modules import torch.nn layers and SigPy lazily)."""
    entries: list[ModelEntry] = []

    # Baselines (mrirecon/models/baselines/, docs/baselines.md).
    from mrirecon.models import baselines as bl

    entries += [
        ModelEntry(
            "zero_filled",
            bl.ZeroFilled,
            bl.ZeroFilledConfig,
            "zero-filled Aᴴy combined with the coil maps (fastMRI's zero-filled image is the RSS instead)",
        ),
        ModelEntry("sense", bl.SenseCG, bl.SenseConfig, "SENSE by conjugate gradient on (AᴴA + λI)x = Aᴴy"),
        ModelEntry(
            "cs_l1wavelet",
            bl.L1WaveletCS,
            bl.L1WaveletConfig,
            "L1-wavelet compressed sensing (SigPy, ESPIRiT maps)",
        ),
        ModelEntry("unet", bl.UNetRecon, bl.UNetConfig, "fastMRI U-Net on the zero-filled complex image"),
        ModelEntry(
            "e2e_varnet", bl.E2EVarNet, bl.VarNetConfig, "E2E-VarNet (Sriram et al. 2020), learned coil maps"
        ),
    ]

    # Recurrent models (docs/models.md).
    from mrirecon.models.recurrentvarnet import RecurrentVarNet, RecurrentVarNetConfig
    from mrirecon.models.rim import CIRIM, RIM, CIRIMConfig, RIMConfig

    entries += [
        ModelEntry(
            "rim", RIM, RIMConfig, "recurrent inference machine (GRU, 64 ch, 8 steps; MGU/IndRNN cells)"
        ),
        ModelEntry(
            "cirim",
            CIRIM,
            CIRIMConfig,
            "cascades of independently recurrent inference machines (5 × 8 steps)",
        ),
        ModelEntry(
            "recurrentvarnet",
            RecurrentVarNet,
            RecurrentVarNetConfig,
            "recurrent variational network (8 k-space steps, 4-layer conv-GRU, learned state init); "
            "default = the paper's no-coil-refinement ablation with a centred FFT; the paper's "
            "Calgary-Campinas model is the preset recurrentvarnet_cc",
        ),
    ]
    return {entry.name: entry for entry in entries}


#: The registry, built on first use: the built-in entries and those added by register_model. One
#: process-wide dict (bounded: one entry per registered name).
_REGISTRY: dict[str, ModelEntry] | None = None


def _registry() -> dict[str, ModelEntry]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _entries()
    return _REGISTRY


class _RegistryView(Mapping[str, ModelEntry]):
    """Read-only mapping view of the registry (built lazily)."""

    def __getitem__(self, name: str) -> ModelEntry:
        return _registry()[name]

    def __iter__(self) -> Any:
        return iter(_registry())

    def __len__(self) -> int:
        return len(_registry())


#: Name → :class:`ModelEntry` for every reconstructor mrirecon has.
REGISTRY: Mapping[str, ModelEntry] = _RegistryView()


def register_model(
    name: str, model_class: Callable[[Any], Reconstructor], config_class: type, summary: str = ""
) -> ModelEntry:
    """Add a reconstructor to the registry (a plug-in model, or a test's), by name.

    Args:
        name: The registry name configs, checkpoints and the CLI will use.
        model_class: Builds the model from its config (``model_class(config)``).
        config_class: Its frozen config dataclass (every field with a default).
        summary: One line for ``mrirecon models``.

    Returns:
        The new entry.

    Raises:
        ConfigError: a name already registered for another class, or a config class that is not a
            dataclass.
    """
    if not dataclasses.is_dataclass(config_class):
        raise ConfigError(f"the config class of model '{name}' must be a dataclass, got {config_class!r}")
    registry = _registry()
    existing = registry.get(name)
    if existing is not None and existing.model_class is not model_class:
        raise ConfigError(f"model '{name}' is registered already", hint="choose another name")
    entry = ModelEntry(name, model_class, config_class, summary)
    registry[name] = entry
    return entry


def unregister_model(name: str) -> None:
    """Remove a model added by :func:`register_model` (the built-in ones stay)."""
    if name in _entries_names():
        raise ConfigError(f"model '{name}' is built in and cannot be removed")
    _registry().pop(name, None)


def _entries_names() -> set[str]:
    global _BUILT_IN
    if _BUILT_IN is None:
        _BUILT_IN = set(_entries())
    return _BUILT_IN


_BUILT_IN: set[str] | None = None


def model_names() -> list[str]:
    """The registered names, in registry order."""
    return list(_registry())


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; a :class:`ConfigError` listing the known names otherwise."""
    registry = _registry()
    key = name if name in registry else name.replace("-", "_")  # "zero-filled" as tables print it
    if key not in registry:
        raise ConfigError(f"unknown model '{name}'", hint=f"known models: {', '.join(registry)}")
    return registry[key]


def default_config(name: str) -> Any:
    """The config dataclass of ``name`` with every field at its default (the paper's settings)."""
    return get_entry(name).config_class()


def build_model(name: str, config: Any = None) -> Reconstructor:
    """Build the model ``name`` from its config dataclass (``None``: the defaults)."""
    entry = get_entry(name)
    if config is None:
        config = entry.config_class()
    if not isinstance(config, entry.config_class):
        raise ConfigError(
            f"model '{name}' takes a {entry.config_class.__name__}, got {type(config).__name__}"
        )
    return entry.model_class(config)


def build_model_from_mapping(name: str, mapping: Mapping[str, Any] | None = None) -> Reconstructor:
    """Build ``name`` from a mapping (YAML, checkpoint); unknown keys and bad values are ConfigErrors."""
    entry = get_entry(name)
    config: Any = from_mapping(entry.config_class, mapping or {}, where="model")
    return build_model(name, config)


def config_mapping(config: Any) -> dict[str, Any]:
    """A config dataclass as plain YAML-safe data (what checkpoints record)."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"{config!r} is not a config dataclass")
    mapping: dict[str, Any] = to_mapping(config)
    return mapping


def parameter_count(model: Reconstructor) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
