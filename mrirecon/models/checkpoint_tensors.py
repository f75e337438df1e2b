"""Read a checkpoint's tensors without running pickled code: the files the authors' tools write.

``torch.load(weights_only=True)`` first; a checkpoint that also pickles other objects (a Lightning
``.ckpt`` with OmegaConf hyper-parameters, a scheduler's ``Counter``) is read by an unpickler that
rebuilds tensors and plain containers only and replaces every other object by an inert placeholder
built from nothing. ``.atommic`` / ``.mridc`` archives are read in memory (their
``model_weights.ckpt``; ``model_config.yaml`` gives the options the weights do not record).
Used by :mod:`mrirecon.models.convert`.
"""

from __future__ import annotations

import io
import lzma
import math
import os
import pickle
import tarfile
import types
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from mrirecon.errors import CheckpointError

__all__ = ["plain_values", "read_checkpoint_tensors"]

#: Largest ``model_weights.ckpt`` an archive may hold (it is read into memory).
MAX_WEIGHTS_BYTES = 4 * 2**30

#: The globals a state dict needs (the same ones torch's weights-only unpickler allows for them).
_TENSOR_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
}


class _Inert:
    """Stands in for any pickled object other than a tensor: built from nothing, runs nothing; it
    keeps the plain data pickle hands it (its state), which :func:`plain_values` reads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self._state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _TensorsOnlyUnpickler(pickle.Unpickler):
    """Rebuilds tensors and plain containers; every other global becomes :class:`_Inert`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _TENSOR_GLOBALS:
            return super().find_class(module, name)
        return type(f"Inert_{name}", (_Inert,), {"__module__": __name__})


_TENSORS_ONLY = types.ModuleType("mrirecon_tensors_only_pickle")
_TENSORS_ONLY.Unpickler = _TensorsOnlyUnpickler  # type: ignore[attr-defined]
_TENSORS_ONLY.load = lambda f, **kw: _TensorsOnlyUnpickler(f, **kw).load()  # type: ignore[attr-defined]
_TENSORS_ONLY.__dict__.update(
    {k: getattr(pickle, k) for k in ("UnpicklingError", "HIGHEST_PROTOCOL", "DEFAULT_PROTOCOL")}
)


def plain_values(value: Any, _seen: frozenset[int] = frozenset()) -> Any:
    """Plain data (dicts, lists, numbers, text) from what the unpickler rebuilt: an OmegaConf
    ``DictConfig``/``ListConfig`` placeholder gives its ``_content``, a value node its ``_val``
    (nothing else of those objects is followed, so their parent links cannot loop). A container
    that holds itself (a pickle can make one) gives None where it repeats, and nesting deeper than
    :data:`_MAX_DEPTH` gives None: no configuration nests so deep."""
    if id(value) in _seen or len(_seen) > _MAX_DEPTH:
        return None
    seen = _seen | {id(value)}
    state = getattr(value, "_state", None) if isinstance(value, _Inert) else None
    if isinstance(state, tuple) and state and isinstance(state[0], dict):  # (__dict__, slots)
        state = state[0]
    if isinstance(state, dict):
        if "_content" in state:
            return plain_values(state["_content"], seen)
        if "_val" in state:
            return plain_values(state["_val"], seen)
        return None
    if isinstance(value, _Inert):
        return None
    if isinstance(value, Mapping):
        return {key: plain_values(item, seen) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_values(item, seen) for item in value]
    return value


#: The deepest nesting :func:`plain_values` follows.
_MAX_DEPTH = 100


def _load_tensors(source: str | os.PathLike[str] | io.BytesIO, where: Path) -> Any:
    """``torch.load`` with weights only; objects it refuses are replaced by inert placeholders."""
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if isinstance(source, io.BytesIO):
            source.seek(0)
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(
            f"cannot read it as a PyTorch checkpoint: {type(error).__name__}", path=where
        ) from error
    try:
        return torch.load(source, map_location="cpu", pickle_module=_TENSORS_ONLY, weights_only=False)
    except Exception as error:
        first = (str(error).strip().splitlines() or [""])[0]
        raise CheckpointError(
            f"cannot read its tensors: {type(error).__name__}: {first}", path=where
        ) from error


def read_checkpoint_tensors(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read an authors' checkpoint: ``(checkpoint mapping, options found in the file)``.

    ``.atommic`` / ``.mridc`` archives give their ``model_weights.ckpt`` as ``{"state_dict": …}`` and,
    from ``model_config.yaml``, the options the weights do not record (``time_steps``,
    ``fft_centered``, ``fft_normalization``).
    """
    where = Path(path)
    if not where.is_file():
        raise CheckpointError("no such checkpoint file", path=where)
    if tarfile.is_tarfile(where):
        try:
            return _read_archive(where)
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as error:
            raise CheckpointError(
                f"a damaged or truncated archive ({type(error).__name__}: {error})",
                path=where,
                hint="copy or download the .atommic/.mridc file again",
            ) from error
    data = _load_tensors(where, where)
    options: dict[str, Any] = {}
    if not isinstance(data, Mapping):
        raise CheckpointError(f"expected a checkpoint mapping, found {type(data).__name__}", path=where)
    if "model" in data:  # DIRECT writes its experiment's config.yaml beside model_<iteration>.pt
        return dict(data), _direct_options(where.parent / "config.yaml")
    hyper = plain_values(data.get("hyper_parameters"))  # a Lightning .ckpt's config (ATOMMIC, mridc)
    if isinstance(hyper, dict):
        config = hyper.get("cfg", hyper)
        if isinstance(config, dict):
            options = _options_from_config(config, where)
    return dict(data), options


def _read_archive(where: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """An ``.atommic``/``.mridc`` archive's ``model_weights.ckpt`` and the options of its
    ``model_config.yaml`` (:func:`read_checkpoint_tensors`)."""
    options: dict[str, Any] = {}
    with tarfile.open(where) as archive:
        members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
        if "model_weights.ckpt" not in members:
            raise CheckpointError(
                "an archive without model_weights.ckpt (not an .atommic/.mridc file)", path=where
            )
        member = members["model_weights.ckpt"]
        if member.issparse() or member.size > MAX_WEIGHTS_BYTES:  # read into memory: bounded
            raise CheckpointError(
                f"the archive's model_weights.ckpt declares {member.size:,} bytes"
                + (" (a sparse member)" if member.issparse() else "")
                + f", more than the {MAX_WEIGHTS_BYTES // 2**30} GiB a model of these sizes has",
                path=where,
            )
        weights = archive.extractfile(member)
        assert weights is not None
        data = _load_tensors(io.BytesIO(weights.read()), where)
        config_member = members.get("model_config.yaml")
        if config_member is not None:
            handle = archive.extractfile(config_member)
            assert handle is not None
            options = _options_from_yaml(handle.read(), where)
    return {"state_dict": data}, options


def _direct_options(config_path: Path) -> dict[str, Any]:
    """What a DIRECT experiment's ``config.yaml`` says of its RecurrentVarNet (``{}`` without one, or
    for another model): the FFT convention, the steps, the initialiser's input and dilations.

    Raises:
        CheckpointError: an initialiser input mrirecon does not implement (``input_image``).
    """
    try:
        config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    if not isinstance(config, dict):
        return {}
    model = config.get("model")
    if not isinstance(model, dict) or "recurrentvarnet" not in str(model.get("model_name", "")).lower():
        return {}
    options: dict[str, Any] = {"config": True, "config_path": str(config_path)}
    physics = config.get("physics")
    operator = str(physics.get("forward_operator", "fft2")) if isinstance(physics, dict) else "fft2"
    options["fft_centered"] = "centered=false" not in operator.replace(" ", "").lower()
    if isinstance(model.get("num_steps"), int):
        options["steps"] = model["num_steps"]
    dilations = model.get("initializer_dilations")
    if isinstance(dilations, list) and all(isinstance(d, int) for d in dilations):
        options["initializer_dilations"] = tuple(dilations)
    initializer = model.get("initializer_initialization")
    if initializer not in (None, "sense", "zero_filled"):
        raise CheckpointError(
            f"its config.yaml sets initializer_initialization {initializer}: mrirecon's RSI takes the "
            "SENSE image or the zero-filled one",
            path=config_path,
        )
    if initializer is not None:
        options["initializer_input"] = initializer
    if isinstance(model.get("learned_initializer"), bool):
        options["learned_initializer"] = model["learned_initializer"]
    extra = config.get("additional_models")
    if isinstance(extra, dict):  # (a config without the section says nothing of it)
        options["sensitivity_model"] = "sensitivity_model" in extra
    return options


def _options_from_yaml(text: bytes, where: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return {}
    return _options_from_config(config, where) if isinstance(config, dict) else {}


def _unsupported(model: Mapping[str, Any]) -> str | None:
    """The first ATOMMIC / mridc RIM or CIRIM option set to what mrirecon's models do not implement,
    in words (a config without the key is taken as the papers'); None when all fit."""
    dilations = model.get("conv_dilations")
    if isinstance(dilations, list) and (dilations[:2] != [1, 2] or any(d != 1 for d in dilations[2:])):
        return f"conv_dilations {dilations} (mrirecon's RIM convolutions are dilated 1, 2 and 1)"
    bias = model.get("conv_bias")
    if isinstance(bias, list) and (bias[:2] != [True, True] or any(bias[2:])):
        return f"conv_bias {bias} (mrirecon's first two convolutions have biases, the output one none)"
    combination = model.get("coil_combination_method")
    if isinstance(combination, str) and combination.upper() != "SENSE":
        return f"coil_combination_method {combination} (mrirecon combines coils with their maps, SENSE)"
    for key, wanted in (("dimensionality", 2), ("consecutive_slices", 1), ("conv_dim", 2)):
        if key in model and model[key] not in (None, wanted):
            return f"{key} {model[key]} (mrirecon reconstructs single 2-D slices: {wanted})"
    return None


def _options_from_config(config: Mapping[str, Any], where: Path) -> dict[str, Any]:
    """The options an ATOMMIC / mridc model config gives (``time_steps``, ``fft_centered``,
    ``fft_normalization``).

    Raises:
        CheckpointError: the config sets an option mrirecon's models do not implement.
    """
    model = config.get("model", config)
    if not isinstance(model, Mapping):
        return {}
    unsupported = _unsupported(model)
    if unsupported is not None:
        raise CheckpointError(
            f"the checkpoint's config sets {unsupported}: the converted model would compute another function",
            path=where,
        )
    options: dict[str, Any] = {"config": True, "origin": "atommic/mridc"}
    if isinstance(model.get("time_steps"), int):
        options["time_steps"] = 8 * math.ceil(model["time_steps"] / 8)  # both repos round up to 8
    if isinstance(model.get("fft_centered"), bool):
        options["fft_centered"] = model["fft_centered"]
    cascades = model.get("num_cascades")
    if isinstance(cascades, int) and not isinstance(cascades, bool):
        options["cascades"] = cascades
    if isinstance(model.get("fft_normalization"), str):
        options["fft_normalization"] = model["fft_normalization"]
    return options
