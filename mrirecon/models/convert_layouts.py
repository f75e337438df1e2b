"""The authors' state-dict layouts mapped onto mrirecon's models, tensor by tensor (the formats
are described in :mod:`mrirecon.models.convert`, which detects the layout and reads the files).

ATOMMIC / mridc RIM and CIRIM (:func:`convert_rim`) and DIRECT's RecurrentVarNet with its RSI
initialiser and U-Net sensitivity model (:func:`convert_rvn`) give a :class:`ConvertedModel`;
anything without a counterpart raises :func:`refuse`'s one-line
:class:`~mrirecon.errors.CheckpointError`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from mrirecon.errors import CheckpointError
from mrirecon.models.base import Reconstructor
from mrirecon.models.recurrentvarnet import RecurrentVarNetConfig
from mrirecon.models.registry import build_model
from mrirecon.models.rim import CIRIMConfig, RIMConfig

__all__ = ["ConvertedModel", "Source", "convert_rim", "convert_rvn", "refuse"]

Source = Literal["atommic", "mridc", "direct"]


@dataclass(frozen=True)
class ConvertedModel:
    """An authors' checkpoint as an mrirecon model.

    Attributes:
        model_name: mrirecon registry name (``rim``, ``cirim``, ``recurrentvarnet``).
        config: Its config dataclass.
        state_dict: mrirecon's state dict.
        source: Where it came from (``atommic``, ``mridc``, ``direct``).
        notes: Assumptions made (things the weights do not record).
    """

    model_name: str
    config: RIMConfig | CIRIMConfig | RecurrentVarNetConfig
    state_dict: dict[str, torch.Tensor]
    source: Source
    notes: tuple[str, ...] = field(default=())

    def build(self) -> Reconstructor:
        """The mrirecon model with these weights, in eval mode."""
        model = build_model(self.model_name, self.config)
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as error:  # a mapping bug, not a user error: keep it loud but one line
            first = str(error).strip().splitlines()[0]
            raise CheckpointError(f"converted weights do not fit {self.model_name}: {first}") from error
        return model.eval()

    def describe(self) -> str:
        """One line: what was built."""
        c = self.config
        if isinstance(c, RecurrentVarNetConfig):
            parts = [
                f"{c.steps} steps{' (shared weights)' if c.share_weights else ''}",
                f"{c.layers} layers of {c.hidden_channels} ch",
                "RSI" if c.learned_initializer else "no RSI",
                "coil-map U-Net" if c.refine_coil_maps else "no coil-map U-Net",
            ]
        elif isinstance(c, CIRIMConfig):
            coupling = "ATOMMIC coupling" if c.carry_hidden_state else "mridc coupling"
            parts = [f"{c.cascades} cascades × {c.time_steps} steps", c.cell, f"{c.channels} ch", coupling]
        else:
            parts = [f"{c.time_steps} steps", c.cell, f"{c.channels} ch"]
        fft = "centred" if c.fft_centered else "uncentred"
        source = _SOURCE_NAMES[self.source]
        article = "a" if self.source == "direct" else "an"
        return f"{self.model_name} ({', '.join(parts)}, {fft} FFT) from {article} {source} checkpoint"


_SOURCE_NAMES = {"atommic": "ATOMMIC", "mridc": "mridc", "direct": "DIRECT"}


def refuse(message: str, path: str | os.PathLike[str] | None = None) -> CheckpointError:
    return CheckpointError(message, path=path)


# ----------------------------------------------------------------------------------------------
# ATOMMIC / mridc RIM and CIRIM
# ----------------------------------------------------------------------------------------------
class _Keys:
    """A state dict whose keys are taken one by one; what is left over is refused."""

    def __init__(self, state: Mapping[str, torch.Tensor], what: str):
        self.state = dict(state)
        self.what = what

    def take(self, key: str, shape: tuple[int | None, ...] | None = None) -> torch.Tensor:
        if key not in self.state:
            raise refuse(f"{self.what}: missing {key!r}")
        value = self.state.pop(key)
        if shape is not None and (
            value.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, value.shape))
        ):
            want = "×".join("?" if s is None else str(s) for s in shape)
            raise refuse(f"{self.what}: {key!r} has shape {tuple(value.shape)}, mrirecon needs {want}")
        if not value.is_floating_point():  # complex: its imaginary part would be dropped
            raise refuse(f"{self.what}: {key!r} holds {value.dtype} values; the weights are real floats")
        if not bool(torch.isfinite(value).all()):
            raise refuse(f"{self.what}: {key!r} holds NaN or Inf values (a diverged or damaged checkpoint)")
        return value.detach().to(torch.float32).clone()

    def has(self, key: str) -> bool:
        return key in self.state

    def done(self) -> None:
        if self.state:
            key = sorted(self.state)[0]
            raise refuse(f"{self.what}: {key!r} has no counterpart in mrirecon ({len(self.state)} such keys)")


def _rim_steps_and_notes(
    name: str, steps: int, fft_centered: bool, known: frozenset[str]
) -> tuple[int, list[str]]:
    """The time steps the authors' code runs (it rounds up to a multiple of 8), and what was assumed."""
    notes = []
    if steps % 8:
        notes.append(f"{name} runs {steps} time steps as {8 * math.ceil(steps / 8)} (it rounds up to 8s)")
        steps = 8 * math.ceil(steps / 8)
    if "time_steps" not in known:
        notes.append(f"{steps} time steps per cascade (not in the weights; --time-steps)")
    if "config" not in known:
        notes.append("conv dilations 1 and 2, as the papers' configs (not in the weights)")
    if "fft_centered" not in known:
        notes.append(
            f"{'centred' if fft_centered else 'uncentred'} FFT (not in the weights; ATOMMIC's "
            "Calgary-Campinas models are uncentred: --uncentered)"
        )
    return steps, notes


def convert_rim(
    state: dict[str, torch.Tensor],
    prefix: str,
    source: Source,
    time_steps: int | None,
    fft_centered: bool,
    sigma: float,
    known: frozenset[str] = frozenset(),
) -> ConvertedModel:
    """ATOMMIC's or mridc's RIM / CIRIM state dict (keys under ``prefix``) as mrirecon's.

    ``known``: the options the checkpoint's config or the user gave (see
    :func:`mrirecon.models.convert.convert_state`); the others are stated as assumed.
    """
    name = _SOURCE_NAMES[source]
    if source == "mridc" and sigma != 1.0:
        raise refuse(f"mridc's CIRIM uses σ = 1 whatever its config says, not {sigma:g}: leave out --sigma")
    extra = sorted(k for k in state if not k.startswith(prefix))
    if extra:
        if any("sensitivity" in k or k.startswith("sens_net.") for k in extra):
            raise refuse(
                f"{name} checkpoint with a learned coil-map network ({extra[0]}): mrirecon's CIRIM takes "
                "given coil maps"
            )
        raise refuse(f"{name} checkpoint: {extra[0]!r} has no counterpart in mrirecon")
    found = sorted({int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))})
    if found != list(range(len(found))) or not found:
        raise refuse(f"{name} checkpoint: cascades numbered {found}, expected 0…n−1")
    keys = _Keys(state, f"{name} checkpoint")
    mapped: dict[str, torch.Tensor] = {}
    cells: set[str] = set()
    channels: set[int] = set()
    biased: set[bool] = set()  # every cell has its input bias, or none (recurrent_bias)
    for c in found:
        p = f"{prefix}{c}."
        if keys.has(p + "dc_weight"):
            raise refuse(
                f"{name} checkpoint with explicit data consistency (no_dc: false): its RIM blocks return "
                "k-space, which mrirecon's CIRIM has no counterpart for"
            )
        if not keys.has(p + "layers.0.convs.conv_layer.bias"):
            raise refuse(
                f"{name} checkpoint: the first convolutions have no bias (conv_bias false); mrirecon's have"
            )
        w0 = keys.take(p + "layers.0.convs.conv_layer.weight", (None, 4, 5, 5))
        f = w0.shape[0]
        channels.add(f)
        out = f"cascades.{c}.stack."
        mapped[out + "convs.0.weight"] = w0
        mapped[out + "convs.0.bias"] = keys.take(p + "layers.0.convs.conv_layer.bias", (f,))
        mapped[out + "convs.1.weight"] = keys.take(p + "layers.1.convs.conv_layer.weight", (f, f, 3, 3))
        mapped[out + "convs.1.bias"] = keys.take(p + "layers.1.convs.conv_layer.bias", (f,))
        for layer in (0, 1):
            rnn = f"{p}layers.{layer}.rnn."
            cell = f"{out}cells.{layer}."
            if keys.has(rnn + "hh") and not keys.has(rnn + "hh.weight"):
                kind, gates = "indrnn", 1
                mapped[cell + "recurrent_weight"] = keys.take(rnn + "hh", (1, f, 1, 1))
            else:
                ih = keys.state.get(rnn + "ih.weight")
                gates = 0 if ih is None else ih.shape[0] // f
                kind = {3: "gru", 2: "mgu"}.get(gates, "")
                if not kind:
                    raise refuse(f"{name} checkpoint: {rnn}ih is neither a GRU, an MGU nor an IndRNN cell")
                mapped[cell + "hidden_conv.weight"] = keys.take(rnn + "hh.weight", (gates * f, f, 1, 1))
            cells.add(kind)
            mapped[cell + "input_conv.weight"] = keys.take(rnn + "ih.weight", (gates * f, f, 1, 1))
            bias = rnn + "ih.bias"
            biased.add(keys.has(bias))
            mapped[cell + "input_conv.bias"] = (
                keys.take(bias, (gates * f,)) if keys.has(bias) else torch.zeros(gates * f)
            )
        if keys.has(p + "final_layer.0.conv_layer.bias"):
            raise refuse(f"{name} checkpoint: the output conv has a bias (conv_bias[2]); mrirecon's has none")
        mapped[out + "output_conv.weight"] = keys.take(p + "final_layer.0.conv_layer.weight", (2, f, 3, 3))
    keys.done()
    if len(biased) > 1:
        raise refuse(
            f"{name} checkpoint: some recurrent cells have an input bias and others none (a partial file?)"
        )
    if len(cells) != 1 or len(channels) != 1:
        raise refuse(
            f"{name} checkpoint: cascades differ in cell ({sorted(cells)}) or width ({sorted(channels)})"
        )
    cell, width = cells.pop(), channels.pop()
    steps, notes = _rim_steps_and_notes(name, time_steps or 8, fft_centered, known)
    # ATOMMIC divides the gradient by max(σ, 1), mridc by σ²; mrirecon by σ².
    mr_sigma = math.sqrt(max(sigma, 1.0)) if source == "atommic" else sigma
    config: RIMConfig | CIRIMConfig
    if len(found) == 1:
        config = RIMConfig(
            cell=cell,  # type: ignore[arg-type]
            channels=width,
            time_steps=steps,
            sigma=mr_sigma,
            fft_centered=fft_centered,
        )
        model_name = "rim"
    else:
        atommic = source == "atommic"
        config = CIRIMConfig(
            cascades=len(found),
            time_steps=steps,
            channels=width,
            cell=cell,  # type: ignore[arg-type]
            data_consistency="implicit",
            cascade_gradients=atommic,
            carry_hidden_state=atommic,
            sigma=mr_sigma,
            fft_centered=fft_centered,
        )
        model_name = "cirim"
    return ConvertedModel(model_name, config, mapped, source, tuple(notes))


# ----------------------------------------------------------------------------------------------
# DIRECT RecurrentVarNet (+ UnetModel2d sensitivity model)
# ----------------------------------------------------------------------------------------------
def _gru(keys: _Keys, p: str, layer: int, out: str, f: int, mapped: dict[str, torch.Tensor]) -> None:
    """DIRECT's conv-GRU layer ``layer`` (gates on ``[x, h]``) as mrirecon's reset-before ConvGRUCell."""
    gates = {}
    for gate in ("reset", "update", "out"):
        if keys.has(f"{p}{gate}_gates.{layer}.1.weight"):
            raise refuse("DIRECT checkpoint with instance norm in the GRU (instance_norm: true)")
        stem = f"{p}{gate}_gates.{layer}.0."
        gates[gate] = (keys.take(stem + "weight", (f, 2 * f, 1, 1)), keys.take(stem + "bias", (f,)))
    (wr, br), (wu, bu), (wo, bo) = gates["reset"], gates["update"], gates["out"]
    # mrirecon's update gate z weights the old state: z = 1 − u = σ(−(W_u·[x, h] + b_u)).
    mapped[out + "input_conv.weight"] = torch.cat([wr[:, :f], -wu[:, :f], wo[:, :f]])
    mapped[out + "input_conv.bias"] = torch.cat([br, -bu, bo])
    mapped[out + "hidden_conv.weight"] = torch.cat([wr[:, f:], -wu[:, f:]])
    mapped[out + "candidate_conv.weight"] = wo[:, f:]


def convert_rvn(
    state: dict[str, torch.Tensor],
    sensitivity: dict[str, torch.Tensor] | None,
    steps: int | None,
    fft_centered: bool,
    dilations: tuple[int, ...],
    initializer_input: str = "sense",
    known: frozenset[str] = frozenset(),
) -> ConvertedModel:
    """DIRECT's RecurrentVarNet state dict (and its U-Net sensitivity model's) as mrirecon's.

    ``known``: the options the checkpoint's config or the user gave; the others are stated as assumed.
    """
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"block_list\.(\d+)\.", k))})
    if blocks != list(range(len(blocks))):
        raise refuse(f"DIRECT checkpoint: blocks numbered {blocks}, expected 0…n−1")
    if any(".regularizer.norm" in k for k in state):
        raise refuse("DIRECT checkpoint with normalisation layers in the regulariser: no counterpart")
    # normalized: true wraps the conv-GRU in NormConv2dGRU (.convgru.), which has no weights of its own
    normalized = any(".regularizer.convgru." in k for k in state)
    if normalized:
        state = {k.replace(".regularizer.convgru.", ".regularizer."): v for k, v in state.items()}
    shared = len(blocks) == 1 and steps not in (None, 1)
    if len(blocks) == 1 and steps is None:
        raise refuse("DIRECT checkpoint with one RecurrentVarNet block: give the number of steps (--steps)")
    if len(blocks) > 1 and steps not in (None, len(blocks)):
        raise refuse(f"DIRECT checkpoint has {len(blocks)} unshared blocks, not {steps} steps")
    keys = _Keys(state, "DIRECT checkpoint")
    mapped: dict[str, torch.Tensor] = {}
    layers = sum(1 for k in state if re.match(r"block_list\.0\.regularizer\.reset_gates\.\d+\.0\.weight$", k))
    if layers < 1:
        raise refuse("DIRECT checkpoint: no conv-GRU layers in block_list.0.regularizer")
    hidden = 0
    for t in blocks:
        hidden = _convert_rvn_block(keys, t, layers, mapped)
    learned = any(k.startswith("initializer.") for k in state)
    config_extra: dict[str, Any] = {"normalized": normalized}
    notes = []
    if "fft_centered" not in known:
        notes.append(
            f"FFT {'centred' if fft_centered else 'uncentred'} (not in the weights; --centered/--uncentered)"
        )
    if learned:
        config_extra.update(_convert_rsi(keys, layers, hidden, dilations, mapped))
        config_extra["initializer_input"] = initializer_input
        if "initializer_dilations" not in known:
            notes.append(f"RSI dilations {tuple(dilations)} (not in the weights; --initializer-dilations)")
        if "initializer_input" not in known:
            notes.append(
                f"the RSI sees the {initializer_input} image (not in the weights; --initializer-input)"
            )
    keys.done()
    if sensitivity is not None:
        channels, pools = _convert_unet(sensitivity, mapped)
        config_extra.update(
            refine_coil_maps=True, coil_refinement_channels=channels, coil_refinement_pools=pools
        )
    config = RecurrentVarNetConfig(
        steps=steps if shared and steps is not None else len(blocks),
        hidden_channels=hidden,
        layers=layers,
        share_weights=shared,
        learned_initializer=learned,
        fft_centered=fft_centered,
        **config_extra,
    )
    return ConvertedModel("recurrentvarnet", config, mapped, "direct", tuple(notes))


def _convert_rvn_block(keys: _Keys, t: int, layers: int, mapped: dict[str, torch.Tensor]) -> int:
    """DIRECT's ``block_list.<t>`` (step size, conv-GRU regulariser) as ``blocks.<t>``; its width."""
    p = f"block_list.{t}.regularizer."
    out = f"blocks.{t}.regularizer."
    mapped[f"blocks.{t}.data_consistency.weight"] = keys.take(f"block_list.{t}.learning_rate", (1,)).reshape(
        ()
    )
    hidden = 0
    for i in range(layers + 1):
        if keys.has(f"{p}conv_blocks.{i}.0.weight"):
            raise refuse("DIRECT checkpoint with zero-padded convolutions (replication_padding: false)")
        w = keys.state.get(f"{p}conv_blocks.{i}.1.weight")
        if i == 0 and w is not None:
            hidden = w.shape[0]
        f = hidden
        if i == 0:
            shape: tuple[int, ...] = (f, 2, 5, 5)
        elif i < layers:
            shape = (f, f, 3, 3)
        else:
            shape = (2, f, 3, 3)
        target = f"{out}convs.{i}." if i < layers else f"{out}output_conv."
        weight = keys.take(f"{p}conv_blocks.{i}.1.weight", shape)
        mapped[target + "weight"] = weight
        mapped[target + "bias"] = keys.take(f"{p}conv_blocks.{i}.1.bias", (shape[0],))
    for layer in range(layers):
        _gru(keys, p, layer, f"{out}cells.{layer}.", hidden, mapped)
    return hidden


def _convert_rsi(
    keys: _Keys, layers: int, hidden: int, dilations: tuple[int, ...], mapped: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """DIRECT's recurrent-state initialiser as ``initializer``; the config fields it sets."""
    convs = sorted(
        {int(m.group(1)) for k in keys.state if (m := re.match(r"initializer\.conv_blocks\.(\d+)\.", k))}
    )
    widths: list[int] = []
    features = 2
    for i in convs:
        w = keys.take(f"initializer.conv_blocks.{i}.1.weight", (None, features, 3, 3))
        widths.append(w.shape[0])
        mapped[f"initializer.convs.{i}.weight"] = w
        mapped[f"initializer.convs.{i}.bias"] = keys.take(
            f"initializer.conv_blocks.{i}.1.bias", (w.shape[0],)
        )
        features = w.shape[0]
    aggregated = keys.state.get("initializer.out_blocks.0.0.weight")
    width_in = 0 if aggregated is None else aggregated.shape[1]
    multiscale = next((m for m in range(1, len(widths) + 1) if sum(widths[-m:]) == width_in), 0)
    if not multiscale:
        raise refuse(f"DIRECT checkpoint: the RSI heads take {width_in} channels, no multiscale depth fits")
    for layer in range(layers):
        stem = f"initializer.out_blocks.{layer}.0."
        mapped[f"initializer.heads.{layer}.weight"] = keys.take(stem + "weight", (hidden, width_in, 1, 1))
        mapped[f"initializer.heads.{layer}.bias"] = keys.take(stem + "bias", (hidden,))
    if len(dilations) != len(widths):
        raise refuse(
            f"DIRECT checkpoint: {len(widths)} RSI convolutions but {len(dilations)} dilations given"
        )
    return {
        "initializer_channels": tuple(widths),
        "initializer_dilations": tuple(dilations),
        "initializer_multiscale": multiscale,
    }


def _convert_unet(state: dict[str, torch.Tensor], mapped: dict[str, torch.Tensor]) -> tuple[int, int]:
    """DIRECT's ``UnetModel2d(2, 2, filters, pools)`` as mrirecon's ``CoilMapRefinement``."""
    if any(k.startswith("unet2d.") for k in state):
        raise refuse("DIRECT checkpoint with a normalised U-Net sensitivity model (NormUnetModel2d)")
    keys = _Keys(state, "DIRECT sensitivity model")
    pools = len({m.group(1) for k in state if (m := re.match(r"down_sample_layers\.(\d+)\.", k))})
    if pools < 1:
        raise refuse("DIRECT sensitivity model is not a UnetModel2d (no down_sample_layers)")
    prefix = "coil_refinement."

    def block(src: str, dst: str, cin: int, cout: int) -> None:
        mapped[f"{prefix}{dst}.0.weight"] = keys.take(f"{src}.layers.0.weight", (cout, cin, 3, 3))
        mapped[f"{prefix}{dst}.3.weight"] = keys.take(f"{src}.layers.4.weight", (cout, cout, 3, 3))

    first = state.get("down_sample_layers.0.layers.0.weight")
    channels = 0 if first is None else first.shape[0]
    features, cin = channels, 2
    for i in range(pools):
        block(f"down_sample_layers.{i}", f"down.{i}", cin, features)
        cin, features = features, features * 2
    block("conv", "bottom", cin, features)
    for i in range(pools):
        mapped[f"{prefix}up_convs.{i}.0.weight"] = keys.take(
            f"up_transpose_conv.{i}.layers.0.weight", (features, features // 2, 2, 2)
        )
        last = i == pools - 1
        block(f"up_conv.{i}.0" if last else f"up_conv.{i}", f"up_blocks.{i}", features, features // 2)
        features //= 2
    mapped[prefix + "output.weight"] = keys.take(f"up_conv.{pools - 1}.1.weight", (2, channels, 1, 1))
    mapped[prefix + "output.bias"] = keys.take(f"up_conv.{pools - 1}.1.bias", (2,))
    keys.done()
    return channels, pools
