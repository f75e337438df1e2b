"""Import the authors' checkpoints: ATOMMIC / mridc RIM and CIRIM, DIRECT RecurrentVarNet.

The authors' state-dict layouts map onto mrirecon's models tensor by tensor:

- **ATOMMIC** (``reconstruction_module.<cascade>.…``, a Lightning ``state_dict``) and **mridc**
  (``cirim.<cascade>.…``): one to one after renaming. Each cascade's two conv → cell layers and its
  output convolution become ``cascades.<c>.stack.{convs,cells,output_conv}``; a cell's ``ih``/``hh``
  projections become ``input_conv``/``hidden_conv`` (``recurrent_weight`` for IndRNN). The cell is
  read from the shapes (``hh`` a per-channel vector: IndRNN; ``ih`` with 3F outputs: GRU, 2F:
  MGU). One cascade gives a :class:`~mrirecon.models.rim.RIM`, more a
  :class:`~mrirecon.models.rim.CIRIM` whose coupling is the source's: ATOMMIC carries the hidden
  states and gradients over cascades, mridc detaches the estimate and resets the states.
- **DIRECT** (``{"model": …, "sensitivity_model": …}``): the RecurrentVarNet's ``block_list.<t>``
  become ``blocks.<t>`` (``learning_rate`` → ``data_consistency.weight``), the RSI's
  ``conv_blocks``/``out_blocks`` become ``initializer.convs``/``heads`` and the ``UnetModel2d``
  sensitivity model becomes ``coil_refinement``. DIRECT's conv-GRU gates each convolve
  ``[x, h]``; mrirecon's cell convolves ``x`` (``input_conv``, the three biases) and ``h``
  (``hidden_conv`` for reset and update, ``candidate_conv`` for the candidate) separately, so each
  gate's weight is split along its input channels. DIRECT's update gate ``u`` weights the *new*
  candidate (``h' = (1 − u)·h + u·n``) where mrirecon's ``z`` weights the *old* state
  (``h' = (1 − z)·n + z·h``): ``z = 1 − u = σ(−(W_u·[x, h] + b_u))``, so the update gate's weights
  and bias change sign.

Everything is a linear map of the tensors (renaming, slicing, concatenation, sign), so the same
function maps a gradient laid out like the state dict (the parity tests use that).

What the weights cannot tell (the number of time steps of a shared-weight model, the FFT
convention, the RSI's dilations) comes from options; what has no counterpart in mrirecon (explicit
data consistency in ATOMMIC's RIM blocks, a learned coil-map network in ATOMMIC, DIRECT's own RIM,
zero padding, instance norm, dense connections, a normalised U-Net) is refused with a one-line
:class:`~mrirecon.errors.CheckpointError`.

Files are read without running pickled code (:mod:`mrirecon.models.checkpoint_tensors`): tensors
and plain containers only; ``.atommic`` / ``.mridc`` archives give the time steps and the FFT
convention from their ``model_config.yaml``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from mrirecon.errors import CheckpointError, ConfigError
from mrirecon.models.checkpoint_tensors import read_checkpoint_tensors
from mrirecon.models.convert_layouts import ConvertedModel, convert_rim, convert_rvn, refuse
from mrirecon.models.io import save_model

__all__ = [
    "ConvertedModel",
    "convert_checkpoint",
    "convert_state",
    "read_checkpoint_tensors",
]


# ----------------------------------------------------------------------------------------------
# Detecting the layout
# ----------------------------------------------------------------------------------------------
def _tensor_dict(value: Any, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(value, Mapping) or not value:
        raise refuse(f"{what} is not a state dict")
    out = {str(k): v for k, v in value.items() if isinstance(v, torch.Tensor)}
    if not out:
        raise refuse(f"{what} holds no tensors")
    return out


def _strip(state: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    for prefix in prefixes:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _model_state(
    checkpoint: Mapping[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """The model's state dict (and DIRECT's sensitivity model's) from a checkpoint mapping."""
    sensitivity = None
    if "model" in checkpoint and isinstance(checkpoint["model"], Mapping):  # DIRECT
        state = _tensor_dict(checkpoint["model"], "the checkpoint's 'model'")
        if checkpoint.get("sensitivity_model") is not None:
            sensitivity = _tensor_dict(
                checkpoint["sensitivity_model"], "the checkpoint's 'sensitivity_model'"
            )
            sensitivity = _strip(sensitivity, ("module.",))
    elif "state_dict" in checkpoint and isinstance(checkpoint["state_dict"], Mapping):  # Lightning
        state = _tensor_dict(checkpoint["state_dict"], "the checkpoint's 'state_dict'")
    else:
        state = _tensor_dict(checkpoint, "the checkpoint")
    state = _strip(state, ("module.",))  # DDP
    # exponential moving averages of the weights, kept beside them by some trainers
    state = {k: v for k, v in state.items() if not k.startswith(_EMA_PREFIXES)}
    return _strip(state, ("model.", "_orig_mod.")), sensitivity  # Lightning's, torch.compile's


_EMA_PREFIXES = ("ema_model.", "model_ema.", "ema.")


def convert_state(
    checkpoint: Mapping[str, Any],
    *,
    time_steps: int | None = None,
    steps: int | None = None,
    fft_centered: bool = True,
    sigma: float = 1.0,
    initializer_dilations: tuple[int, ...] = (1, 1, 2, 4),
    initializer_input: str = "sense",
    known: frozenset[str] = frozenset(),
) -> ConvertedModel:
    """Convert an authors' checkpoint mapping (as :func:`read_checkpoint_tensors` returns it).

    Args:
        checkpoint: ``{"model": …, "sensitivity_model": …}`` (DIRECT), ``{"state_dict": …}``
            (a Lightning checkpoint of ATOMMIC or mridc) or a bare state dict.
        time_steps: RIM/CIRIM time steps per cascade (the weights are shared over them; default 8,
            the papers'; ATOMMIC and mridc round their config's value up to a multiple of 8).
        steps: RecurrentVarNet steps; needed only for shared weights (one block in the file).
        fft_centered: FFT convention the model was trained with (DIRECT's Calgary-Campinas
            configs: ``False``).
        sigma: The authors' noise level σ (ATOMMIC divides the gradient by ``max(σ, 1)``, mridc by
            ``σ²``; the mrirecon σ is set to give the same gradient).
        initializer_dilations: Dilations of DIRECT's RSI convolutions (not in the weights).
        initializer_input: What DIRECT's RSI sees: ``sense`` or ``zero_filled``.
        known: The options the checkpoint's config or the user gave (``time_steps``,
            ``fft_centered``, ``config``: a model config was read and checked), not assumed.

    Raises:
        CheckpointError: with a one-line reason, for anything that cannot be mapped.
    """
    state, sensitivity = _model_state(checkpoint)
    first = next(iter(state), "")
    # ATOMMIC registers its coil-map network before the reconstruction module: any key decides
    if any(k.startswith("reconstruction_module.") for k in state):
        return convert_rim(state, "reconstruction_module.", "atommic", time_steps, fft_centered, sigma, known)
    if any(k.startswith("cirim.") for k in state):
        return convert_rim(state, "cirim.", "mridc", time_steps, fft_centered, sigma, known)
    if any(k.startswith("block_list.") for k in state):
        return convert_rvn(
            state, sensitivity, steps, fft_centered, initializer_dilations, initializer_input, known
        )
    if any(k.startswith("cell_list.") for k in state):
        raise refuse(
            "DIRECT's RIM (cell_list.*) gates [x, h] with the reset before the projection, ReLUs between "
            "layers and has a biased output conv: mrirecon's RIM is ATOMMIC's and computes another function"
        )
    raise refuse(f"unknown state-dict layout (first key {first!r}): not an ATOMMIC, mridc or DIRECT model")


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------
def _check_output(source: Path, output: Path) -> None:
    """Refuse an output that ``mrirecon infer`` would not read as the model written (a
    ``.safetensors`` name held a torch file, which the loader then read as safetensors), or that
    is the checkpoint itself (the authors' file was replaced, under any spelling of its path)."""
    if output.suffix.lower() == ".safetensors":
        raise ConfigError(
            f"the output {output.name!r} is written as a torch model file, not safetensors",
            hint="name it MODEL.pt (mrirecon infer, batch and model.init read it)",
        )
    if source.exists() and output.exists() and source.samefile(output):
        raise ConfigError(
            "the output is the checkpoint being converted: the authors' file would be replaced",
            path=output,
            hint="write the converted model to another file",
        )


def convert_checkpoint(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    time_steps: int | None = None,
    steps: int | None = None,
    fft_centered: bool | None = None,
    sigma: float | None = None,
    initializer_dilations: tuple[int, ...] | None = None,
    initializer_input: str | None = None,
    report: Callable[[str], None] | None = None,
) -> ConvertedModel:
    """Read an authors' checkpoint file, convert it and write an mrirecon model file (``.pt``).

    Options as :func:`convert_state`; those not given come from the checkpoint's own config (an
    ``.atommic``/``.mridc`` archive's ``model_config.yaml``, a Lightning checkpoint's
    hyper-parameters, the ``config.yaml`` DIRECT writes beside its checkpoints), else the papers'
    (8 time steps, a centred FFT, dilations 1, 1, 2, 4, the SENSE image).

    Raises:
        CheckpointError: the file cannot be read or mapped (one line, with the file's path).
        ConfigError: an output named ``.safetensors`` or that is the checkpoint itself; ``sigma``
            for a RecurrentVarNet (it has no σ).
    """
    _check_output(Path(path), Path(output))
    checkpoint, found = read_checkpoint_tensors(path)
    if found.get("origin") == "atommic/mridc" and any(
        k.startswith("block_list.") for k in _model_state(checkpoint)[0]
    ):
        raise CheckpointError(
            "an ATOMMIC (or mridc) RecurrentVarNet: mrirecon converts DIRECT's RecurrentVarNet only "
            "(ATOMMIC's initialiser and FFT scaling give another function)",
            path=path,
        )
    given: dict[str, Any] = {
        "time_steps": time_steps,
        "steps": steps,
        "fft_centered": fft_centered,
        "initializer_dilations": initializer_dilations,
        "initializer_input": initializer_input,
    }
    known = {key for key, value in given.items() if value is not None}
    known |= {key for key in (*given, "config") if key in found}
    # given, else the checkpoint's config; what neither says takes convert_state's default
    chosen = {key: value if value is not None else found.get(key) for key, value in given.items()}
    try:
        converted = convert_state(
            checkpoint,
            **{key: value for key, value in chosen.items() if value is not None},
            sigma=1.0 if sigma is None else sigma,
            known=frozenset(known),
        )
    except CheckpointError as error:
        raise CheckpointError(str(error), path=path, hint=error.hint) from error
    if sigma is not None and converted.model_name == "recurrentvarnet":
        raise ConfigError(
            "--sigma is the noise level of ATOMMIC's and mridc's RIM and CIRIM; DIRECT's "
            "RecurrentVarNet has none",
            hint="leave --sigma out",
        )
    if converted.model_name == "recurrentvarnet" and "config_path" in found:  # DIRECT's config.yaml
        for key, has in (
            ("learned_initializer", bool(getattr(converted.config, "learned_initializer", False))),
            ("sensitivity_model", bool(getattr(converted.config, "refine_coil_maps", False))),
        ):
            if isinstance(found.get(key), bool) and found[key] != has:
                raise CheckpointError(
                    f"its config.yaml {'has' if found[key] else 'has no'} {key.replace('_', ' ')} and the "
                    f"weights {'have' if has else 'have none'}: a partial or mismatched checkpoint",
                    path=path,
                )
    cascades = getattr(converted.config, "cascades", 1)
    if isinstance(found.get("cascades"), int) and found["cascades"] != cascades:
        raise CheckpointError(
            f"its config has {found['cascades']} cascades and its weights {cascades}: a partial or "
            "mismatched checkpoint",
            path=path,
        )
    notes = list(converted.notes)
    if found.get("fft_normalization") not in (None, "ortho"):
        notes.append(
            f"the authors' FFTs were normalised {found['fft_normalization']!r}: mrirecon's are orthonormal, "
            "so give it k-space divided by √(H·W) to reproduce their outputs"
        )
    converted = ConvertedModel(
        converted.model_name, converted.config, converted.state_dict, converted.source, tuple(notes)
    )
    model = converted.build()
    save_model(output, converted.model_name, converted.config, model)
    if report is not None:
        report(f"wrote {output}: {converted.describe()}")
        if "config_path" in found:
            report(f"  options not given were read from {found['config_path']}")
        for note in converted.notes:
            report(f"  assumed: {note}")
    return converted
