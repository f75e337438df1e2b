"""Parity with the authors' code: mrirecon against goldens from ATOMMIC, mridc, DIRECT and fastMRI.

The goldens (``tests/models/goldens``, written by ``benchmarks/parity.py`` from the authors' own
modules; commits and configurations in ``manifest.json``) hold the inputs, the authors' state dict,
their float32 estimate after every time step of every cascade and the exact (float64) gradient of a
fixed loss with respect to every parameter. Each test loads the state dict into mrirecon through the
checkpoint importer (:mod:`mrirecon.models.convert`, so the importer is tested too; fastMRI's
E2E-VarNet, which the importer does not take, through :func:`fastmri_varnet_state`), runs mrirecon
and compares every step (float32) within 1e-5 of the reference's scale, and every gradient (mapped
by the same importer): in float64 within 1e-6, and in float32 within 1e-5 or, where float32 itself
cannot do better, three times the authors' own float32 error (see :func:`gradient_tolerance`) or
three times mrirecon's own on this machine's kernels (see :func:`own_roundoff`).
No authors' code is needed. To check mrirecon against goldens written again from another copy
of the authors' code (``python -m benchmarks.parity --peers DIR --out NEW``), point
``MRIRECON_PARITY_GOLDENS`` at ``NEW`` and run this file.

The mutation tests show that the comparison would catch a wrong dilation, padding mode or gate
sign, or an E2E-VarNet whose U-Nets pad to another multiple or whose coil maps come from another
calibration block; the CLI tests convert checkpoint files laid out like the authors' (a DIRECT
``model_<it>.pt`` with a scheduler's ``Counter``, an ATOMMIC Lightning ``.ckpt`` with non-tensor
hyper-parameters, an ``.atommic`` archive) and refuse what cannot be mapped.
"""

from __future__ import annotations

import collections
import io
import json
import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from benchmarks.parity_cases import CASES, inputs_digest, make_inputs, unpack_parameters
from mrirecon.errors import CheckpointError
from mrirecon.models import layers
from mrirecon.models.base import Reconstructor
from mrirecon.models.baselines import varnet
from mrirecon.models.baselines.unet import NormUNet
from mrirecon.models.coil_refinement import CoilMapRefinement
from mrirecon.models.convert import ConvertedModel, convert_checkpoint, convert_state
from mrirecon.models.io import load_model
from mrirecon.models.recurrentvarnet import RecurrentVarNet
from mrirecon.models.registry import build_model_from_mapping
from mrirecon.models.rim import CIRIM, RIMBlock, RIMConfig
from mrirecon.physics import normalize_coil_maps
from mrirecon_cli.main import cli

GOLDENS = Path(os.environ.get("MRIRECON_PARITY_GOLDENS") or Path(__file__).resolve().parent / "goldens")
#: float32 parity: every compared value within TOLERANCE × max(1, largest reference magnitude).
TOLERANCE = 1e-5
#: float64 parity of the gradients (the goldens store the float64 gradient rounded to float32).
FLOAT64_TOLERANCE = 1e-6
#: A float32 gradient may be this many times as far from the exact one as the authors' own is.
ROUNDOFF_FACTOR = 3.0
#: The most mrirecon's float32 gradient may be from its own float64 one (scaled), on any kernels.
OWN_ROUNDOFF_LIMIT = 5e-5


@cache
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDENS / "manifest.json").read_text())
    return data


@cache
def golden(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDENS / f"{name}.npz", allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def case_inputs(name: str) -> dict[str, torch.Tensor]:
    """The case's inputs in mrirecon's layout: stored (small cases) or rebuilt and checked."""
    entry, arrays = manifest()["cases"][name], golden(name)
    if entry["inputs_stored"]:
        inputs = {k: arrays[f"input/{k}"] for k in ("masked_kspace", "coil_maps", "mask")}
    else:
        inputs = make_inputs(CASES[name], centered=entry["fft_centered"])
        assert np.array_equal(inputs["mask"], arrays["input/mask"])
    assert inputs_digest(inputs) == entry["inputs_sha256"], "the inputs differ from the golden's"
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}


def checkpoint(name: str, kind: str = "state") -> dict[str, dict[str, torch.Tensor]]:
    """The authors' checkpoint layout ({top-level key: state dict}) of the stored state or gradient."""
    unpacked = unpack_parameters(golden(name))[kind]
    return {top: {k: torch.from_numpy(v.copy()) for k, v in sd.items()} for top, sd in unpacked.items()}


def convert(name: str, kind: str = "state") -> ConvertedModel:
    """The golden's weights (or gradients) through the checkpoint importer, with the case's options."""
    entry = manifest()["cases"][name]
    config = entry["config"]
    options: dict[str, Any] = {"fft_centered": entry["fft_centered"]}
    if entry["family"] == "direct":
        options["steps"] = config["num_steps"]
        options["initializer_dilations"] = tuple(config.get("initializer_dilations", (1, 1, 2, 4)))
    else:
        options["time_steps"] = config["time_steps"]
    return convert_state(checkpoint(name, kind), **options)


def _fastmri_unet_key(key: str) -> str:
    """A key of fastMRI's ``Unet`` as mrirecon's :class:`~mrirecon.models.baselines.unet.UNet`'s."""
    parts = key.split(".")
    if parts[0] == "down_sample_layers":  # down_sample_layers.<i>.layers.<j>.<w>
        return f"down.{parts[1]}.{parts[3]}.{parts[4]}"
    if parts[0] == "conv":  # conv.layers.<j>.<w>
        return f"bottom.{parts[2]}.{parts[3]}"
    if parts[0] == "up_transpose_conv":  # up_transpose_conv.<i>.layers.<j>.<w>
        return f"up_transpose.{parts[1]}.{parts[3]}.{parts[4]}"
    if parts[0] == "up_conv" and parts[2] == "layers":  # up_conv.<i>.layers.<j>.<w>
        return f"up.{parts[1]}.{parts[3]}.{parts[4]}"
    if parts[0] == "up_conv" and parts[2] == "0":  # the last level: Sequential(ConvBlock, 1×1 conv)
        return f"up.{parts[1]}.{parts[4]}.{parts[5]}"
    if parts[0] == "up_conv" and parts[2] == "1":
        return f"head.{parts[3]}"
    raise KeyError(f"unknown fastMRI U-Net key {key!r}")


def fastmri_varnet_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fastMRI's ``VarNet`` state dict (or gradients) as mrirecon's ``e2e_varnet``'s.

    ``sens_net.norm_unet.unet.*`` → ``sens_net.net.unet.*``, ``cascades.<t>.model.unet.*`` →
    ``cascades.<t>.regularizer.unet.*``, ``cascades.<t>.dc_weight`` (shape ``(1,)``) →
    ``cascades.<t>.data_consistency.weight`` (a scalar); U-Net keys as :func:`_fastmri_unet_key`.
    """
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if key.startswith("sens_net.norm_unet.unet."):
            mapped["sens_net.net.unet." + _fastmri_unet_key(key.split(".", 3)[3])] = value
        elif parts[0] == "cascades" and parts[2:4] == ["model", "unet"]:
            rest = key.split(".", 4)[4]
            mapped[f"cascades.{parts[1]}.regularizer.unet.{_fastmri_unet_key(rest)}"] = value
        elif parts[0] == "cascades" and parts[2] == "dc_weight":
            mapped[f"cascades.{parts[1]}.data_consistency.weight"] = value.reshape(())
        else:
            raise KeyError(f"unknown fastMRI VarNet key {key!r}")
    return mapped


def mrirecon_state(name: str, kind: str = "state") -> dict[str, torch.Tensor]:
    """The golden's weights (or gradients) as mrirecon's state dict."""
    if manifest()["cases"][name]["family"] == "fastmri":
        return fastmri_varnet_state(checkpoint(name, kind)["model"])
    return convert(name, kind).state_dict


def golden_model(name: str) -> Reconstructor:
    """mrirecon's model with the golden's weights, in eval mode: through the checkpoint importer,
    or, for fastMRI's VarNet, ``e2e_varnet`` with learned coil maps and the RSS output."""
    entry = manifest()["cases"][name]
    if entry["family"] != "fastmri":
        return convert(name).build()
    config = entry["config"]
    sizes = {k: config[k] for k in ("num_cascades", "chans", "pools", "sens_chans", "sens_pools")}
    model = build_model_from_mapping("e2e_varnet", {**sizes, "coil_maps": "learned", "output": "rss"})
    model.load_state_dict(mrirecon_state(name), strict=True)
    return model.eval()


def gradient_tolerance(name: str) -> float:
    """How far mrirecon's float32 gradient may be from the exact one (scaled as :func:`scaled_error`).

    1e-5, unless the authors' own float32 gradient is further from the exact one than a third of
    that (recorded by ``benchmarks/parity.py`` as ``gradient_float32_error``). That happens where
    DIRECT's coil-map U-Net (instance norm over a 2 × 1 bottom level at 33 × 27) amplifies float32
    round-off: there DIRECT's float32 gradient is 3e-5 to 6e-5 from its float64 one, while in
    float64 mrirecon's gradient equals DIRECT's to 2e-15 (before the golden's float32 storage;
    :func:`test_gradients_match_the_authors_in_float64` checks it to 1e-6).
    """
    return max(TOLERANCE, ROUNDOFF_FACTOR * manifest()["cases"][name]["gradient_float32_error"])


def scaled_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max |ours − reference| / max(1, max |reference|)."""
    ref = reference.detach().to(ours.dtype)
    return float((ours.detach() - ref).abs().max()) / max(1.0, float(ref.abs().max()))


class Errors(NamedTuple):
    """mrirecon against a golden, each scaled as :func:`scaled_error`."""

    steps: float  # the worst estimate (any cascade, any time step)
    gradient: float  # the worst gradient entry
    loss: float


def _run(
    name: str, model: Reconstructor | None, dtype: torch.dtype
) -> tuple[Any, torch.Tensor, dict[str, torch.Tensor]]:
    """mrirecon (the golden's weights, or ``model``) on the case's inputs in ``dtype``: its output,
    the fixed loss (the sum of every estimate's mean magnitude) and every parameter's gradient."""
    model = (model or golden_model(name)).to(dtype)
    inputs = case_inputs(name)
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    model.zero_grad()
    with torch.enable_grad():
        out = model(inputs["masked_kspace"].to(cdtype), inputs["mask"], inputs["coil_maps"].to(cdtype))
    loss = sum(x.abs().mean() for cascade in out.steps for x in cascade)
    assert isinstance(loss, torch.Tensor)
    loss.backward()
    grads = {k: torch.zeros_like(p) if p.grad is None else p.grad for k, p in model.named_parameters()}
    return out, loss.detach(), grads


def _gradient_error(ours: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], scale: float) -> float:
    """The largest gradient difference, over ``max(1, scale)``."""
    worst = max(float((ours[k].double() - reference[k].double()).abs().max()) for k in ours)
    return worst / max(1.0, scale)


def run_case(name: str, model: Reconstructor | None = None, dtype: torch.dtype = torch.float32) -> Errors:
    """mrirecon (the golden's weights, or ``model``) run in ``dtype`` against the golden ``name``."""
    entry, arrays = manifest()["cases"][name], golden(name)
    out, loss, grads = _run(name, model, dtype)
    reference = torch.from_numpy(arrays["output/steps"])
    assert (
        (len(out.steps), len(out.steps[0])) == reference.shape[:2] == (entry["cascades"], entry["time_steps"])
    )
    rows = torch.from_numpy(arrays.get("output/rows", np.arange(entry["height"])))
    cols = torch.from_numpy(arrays.get("output/cols", np.arange(entry["width"])))
    step_error = max(
        scaled_error(x[:, rows][:, :, cols], reference[c, t])
        for c, cascade in enumerate(out.steps)
        for t, x in enumerate(cascade)
    )
    expected_loss = entry["loss_float64" if dtype == torch.float64 else "loss"]
    loss_error = abs(float(loss) - expected_loss) / max(1.0, abs(expected_loss))
    expected = mrirecon_state(name, "grad")
    grad_error = _gradient_error(grads, expected, max(float(g.abs().max()) for g in expected.values()))
    return Errors(step_error, grad_error, loss_error)


def own_roundoff(name: str) -> float:
    """How far mrirecon's float32 gradient is from its own float64 one (scaled as the errors).

    The float32 gradients differ from the exact ones by round-off that depends on the machine's
    kernels: a convolution's bias gradient sums over every pixel, in an order MKL-DNN picks for the
    CPU. In atommic_cirim_218x170_line it is 4.4e-6 with AVX-512 kernels and 1.3e-5 with AVX2
    kernels, while the float64 gradient equals the golden to 1.4e-8 on both (the float64 test).
    """
    expected = mrirecon_state(name, "grad")
    scale = max(float(g.abs().max()) for g in expected.values())
    return _gradient_error(_run(name, None, torch.float32)[2], _run(name, None, torch.float64)[2], scale)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_the_authors(name: str) -> None:
    errors = run_case(name)
    assert errors.steps <= TOLERANCE, f"{name}: estimates differ by {errors.steps:.2e} (scaled)"
    assert errors.loss <= TOLERANCE, f"{name}: losses differ by {errors.loss:.2e} (scaled)"
    tolerance = gradient_tolerance(name)
    if errors.gradient > tolerance:  # this machine's kernels may round more than the recording one's
        own = own_roundoff(name)
        assert own <= OWN_ROUNDOFF_LIMIT, f"{name}: float32 round-off {own:.2e} > {OWN_ROUNDOFF_LIMIT:.0e}"
        tolerance = max(tolerance, ROUNDOFF_FACTOR * own)
    assert errors.gradient <= tolerance, (
        f"{name}: gradients differ by {errors.gradient:.2e} > {tolerance:.1e}"
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_match_the_authors_in_float64(name: str) -> None:
    """In float64 (the goldens' gradients are the authors' float64 ones) no round-off hides a
    difference: a detach or a changed backward would show far above 1e-6."""
    errors = run_case(name, dtype=torch.float64)
    assert errors.loss <= FLOAT64_TOLERANCE, f"{name}: float64 losses differ by {errors.loss:.2e}"
    assert errors.gradient <= FLOAT64_TOLERANCE, f"{name}: float64 gradients differ by {errors.gradient:.2e}"


def test_refined_coil_maps_match_direct() -> None:
    name = "direct_rvn_33x27_line"
    model = convert(name).build()
    assert isinstance(model, RecurrentVarNet) and model.coil_refinement is not None
    refined = model.coil_refinement(case_inputs(name)["coil_maps"])
    assert scaled_error(refined, torch.from_numpy(golden(name)["aux/refined_coil_maps"])) <= TOLERANCE


VARNET_CASE = "fastmri_varnet_33x27_line"


def test_varnet_coil_maps_and_every_cascade_match_fastmri() -> None:
    """Beyond the final RSS image: the learned coil maps and the multi-coil k-space after each
    cascade (fastMRI's ``sens_net`` output and ``VarNetBlock`` outputs)."""
    model = golden_model(VARNET_CASE)
    assert isinstance(model, varnet.E2EVarNet) and model.sens_net is not None
    inputs, arrays = case_inputs(VARNET_CASE), golden(VARNET_CASE)
    cascades: list[torch.Tensor] = []
    hooks = [c.register_forward_hook(lambda _m, _a, out: cascades.append(out)) for c in model.cascades]
    with torch.no_grad():
        maps = model.sens_net(inputs["masked_kspace"], inputs["mask"])
        model(inputs["masked_kspace"], inputs["mask"], inputs["coil_maps"])
    for hook in hooks:
        hook.remove()
    assert scaled_error(maps, torch.from_numpy(arrays["aux/coil_maps"])) <= TOLERANCE
    reference = torch.from_numpy(arrays["aux/cascade_kspace"])
    assert len(cascades) == reference.shape[0] == manifest()["cases"][VARNET_CASE]["config"]["num_cascades"]
    for t, kspace in enumerate(cascades):
        assert scaled_error(kspace, reference[t]) <= TOLERANCE, f"cascade {t}"


def test_varnet_calibration_block_is_fastmris() -> None:
    """The golden's mask has fastMRI's symmetric centre of ``num_low_frequencies`` lines, clear of
    the equispaced lines, so the block mrirecon finds is the one fastMRI was given."""
    mask = case_inputs(VARNET_CASE)["mask"]
    low = manifest()["cases"][VARNET_CASE]["config"]["num_low_frequencies"]
    width = mask.shape[-1]
    start = (width - low + 1) // 2
    expected = torch.zeros(width)
    expected[start : start + low] = 1.0
    assert torch.equal(varnet.acs_regions(mask).reshape(-1), expected)


def test_varnet_padding_and_calibration_block_are_checked() -> None:
    """An E2E-VarNet whose NormUNets pad to ``2**pools`` (36 × 28 and 40 × 32 instead of fastMRI's
    48 × 32), or whose coil maps come from a block one line narrower, is caught."""
    model = golden_model(VARNET_CASE)
    norm_unets = [m for m in model.modules() if isinstance(m, NormUNet)]
    assert norm_unets and all(m.multiple == 16 for m in norm_unets)
    for m in norm_unets:
        m.multiple = 2 ** len(m.unet.down)
    errors = run_case(VARNET_CASE, model)
    assert errors.steps > 100 * TOLERANCE and errors.gradient > 100 * TOLERANCE

    real = varnet.acs_regions

    def narrower(mask: torch.Tensor) -> torch.Tensor:
        block = real(mask).clone()
        last = int(block.reshape(-1, block.shape[-1])[0].nonzero().max())
        block[..., last] = 0.0
        return block

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(varnet, "acs_regions", narrower)
        errors = run_case(VARNET_CASE)
    assert errors.steps > 100 * TOLERANCE and errors.gradient > 100 * TOLERANCE


def test_single_coil_maps_are_only_normalised() -> None:
    """DIRECT's engine refines multi-coil maps only; one coil's map is normalised (|S| = 1)."""
    refinement = CoilMapRefinement(channels=2, pools=2)
    maps = torch.randn(2, 1, 9, 7, dtype=torch.complex64, requires_grad=True)
    refined = refinement(maps)
    assert torch.allclose(refined, normalize_coil_maps(maps.detach()))
    refined.abs().sum().backward()
    assert all(p.grad is None for p in refinement.parameters())
    assert not torch.allclose(
        refinement(maps.detach().repeat(1, 2, 1, 1)), normalize_coil_maps(maps.repeat(1, 2, 1, 1))
    )


def test_every_case_is_there_with_its_commit() -> None:
    data = manifest()
    assert set(data["cases"]) == set(CASES)
    for source in ("atommic", "mridc", "direct", "fastmri"):
        assert len(data["authors"][source]["commit"]) == 40
    assert data["authors"]["fastmri"]["repository"] == "facebookresearch/fastMRI"
    kinds = {(e["family"], e["mask"], e["height"]) for e in data["cases"].values()}
    assert ("atommic", "line", 33) in kinds and ("direct", "2d", 218) in kinds
    assert ("fastmri", "line", 33) in kinds
    for name, entry in data["cases"].items():  # float32's own error stays small: no loophole
        assert entry["gradient_float32_error"] < 1e-4, name
    for path in GOLDENS.glob("*.npz"):
        assert path.stat().st_size < 512 * 1024, f"{path.name} is too big for the repository"


# ----------------------------------------------------------------------------------------------
# The goldens catch a wrong dilation, padding mode or gate sign
# ----------------------------------------------------------------------------------------------
@contextmanager
def padding_mode(replacement: str) -> Iterator[None]:
    """Every edge padding (``replicate``: the convolutions; ``reflect``: the coil-map U-Net's odd
    sizes) done with ``replacement`` instead; zero padding is left alone."""
    real = F.pad

    def pad(x: torch.Tensor, p: Any, mode: str = "constant", value: float | None = None) -> torch.Tensor:
        return real(x, p, mode=replacement if mode in ("replicate", "reflect") else mode, value=value)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(layers.F, "pad", pad)
        yield


def test_a_changed_dilation_is_caught() -> None:
    model = convert("atommic_rim_gru_33x27_line").build()
    assert isinstance(model, CIRIM)
    block = model.cascades[0]
    assert isinstance(block, RIMBlock)
    conv = block.stack.convs[1]
    assert isinstance(conv, layers.ReplicationConv2d)
    conv.dilation, conv.replication = (1, 1), 1  # the papers' 3×3 conv has dilation 2
    errors = run_case("atommic_rim_gru_33x27_line", model)
    assert errors.steps > 100 * TOLERANCE and errors.gradient > 100 * TOLERANCE


def test_a_changed_padding_mode_is_caught() -> None:
    with padding_mode("reflect"):  # ATOMMIC's convolutions pad by replication
        errors = run_case("atommic_rim_indrnn_33x27_line")
    assert errors.steps > 100 * TOLERANCE
    with padding_mode("replicate"):  # the U-Net's odd-size padding is DIRECT's reflection
        errors = run_case("direct_rvn_33x27_line")
    assert errors.steps > 100 * TOLERANCE


def test_a_flipped_update_gate_is_caught() -> None:
    converted = convert("direct_rvn_noser_33x27_2d")
    f = converted.config.hidden_channels  # type: ignore[union-attr]
    state = dict(converted.state_dict)
    for key in [k for k in state if k.endswith(("input_conv.weight", "input_conv.bias"))]:
        state[key] = state[key].clone()
        state[key][f : 2 * f] *= -1  # DIRECT's update gate taken over without the sign change
    for key in [k for k in state if k.endswith("hidden_conv.weight")]:
        state[key] = state[key].clone()
        state[key][f:] *= -1
    flipped = ConvertedModel(converted.model_name, converted.config, state, converted.source).build()
    errors = run_case("direct_rvn_noser_33x27_2d", flipped)
    assert errors.steps > 100 * TOLERANCE and errors.gradient > 100 * TOLERANCE


# ----------------------------------------------------------------------------------------------
# Checkpoint files and the CLI
# ----------------------------------------------------------------------------------------------
class HyperParameters(dict[str, Any]):
    """Stands for OmegaConf's DictConfig in a Lightning checkpoint: an object torch will not load
    with ``weights_only`` (module level, so that ``torch.save`` can pickle it)."""


def test_direct_checkpoint_file_converts_and_reproduces(tmp_path: Path) -> None:
    name = "direct_rvn_33x27_line"
    ckpt = checkpoint(name)
    # DIRECT's Checkpointer: model, additional models, optimizer/scheduler states, __text__ keys
    data = {
        **ckpt,
        "optimizer": {"state": {}, "param_groups": [{"lr": 5e-4, "params": [0, 1]}]},
        "lr_scheduler": {"milestones": collections.Counter({20000: 1}), "last_epoch": 3},
        "__author__": "0123abc",
        "__datetime__": "2022-01-01 00:00:00",
    }
    source = tmp_path / "model_1000.pt"
    torch.save(data, source)
    out = tmp_path / "rvn.pt"
    result = CliRunner().invoke(
        cli, ["convert-checkpoint", str(source), "-o", str(out), "--steps", "8", "--uncentered"]
    )
    assert result.exit_code == 0, result.output
    assert "recurrentvarnet" in result.output and "DIRECT" in result.output
    model_name, model = load_model(out)
    assert model_name == "recurrentvarnet"
    errors = run_case(name, model)
    assert errors.steps <= TOLERANCE and errors.gradient <= gradient_tolerance(name)


def test_atommic_lightning_checkpoint_with_objects_converts(tmp_path: Path) -> None:
    name = "atommic_cirim_33x27_2d"
    ckpt = checkpoint(name)

    source = tmp_path / "cirim.ckpt"
    torch.save({**ckpt, "epoch": 3, "hyper_parameters": HyperParameters(cfg={"time_steps": 8})}, source)
    with pytest.raises(Exception, match=r"(?i)weights"):  # torch's own weights-only load refuses it
        torch.load(source, weights_only=True)
    out = tmp_path / "cirim.pt"
    converted = convert_checkpoint(source, out, time_steps=8)
    assert converted.model_name == "cirim" and converted.config.carry_hidden_state  # type: ignore[union-attr]
    errors = run_case(name, load_model(out)[1])
    assert errors.steps <= TOLERANCE and errors.gradient <= gradient_tolerance(name)


def test_atommic_archive_gives_its_time_steps(tmp_path: Path) -> None:
    name = "atommic_rim_mgu_33x27_2d"
    weights = io.BytesIO()
    torch.save(checkpoint(name)["state_dict"], weights)
    config = b"model:\n  time_steps: 5\n  fft_centered: true\n  fft_normalization: backward\n"
    archive = tmp_path / "rim.atommic"
    with tarfile.open(archive, "w:gz") as tar:
        for member, payload in (
            ("./model_weights.ckpt", weights.getvalue()),
            ("./model_config.yaml", config),
        ):
            info = tarfile.TarInfo(member)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    lines: list[str] = []
    converted = convert_checkpoint(archive, tmp_path / "rim.pt", report=lines.append)
    assert converted.model_name == "rim" and isinstance(converted.config, RIMConfig)
    assert converted.config.time_steps == 8  # rounded up as ATOMMIC does
    assert converted.config.cell == "mgu"
    assert any("√(H·W)" in line for line in lines)
    assert run_case(name, load_model(tmp_path / "rim.pt")[1]).steps <= TOLERANCE


def test_mridc_coupling_is_read_from_the_layout() -> None:
    converted = convert("mridc_cirim_33x27_line")
    assert converted.source == "mridc" and converted.model_name == "cirim"
    config = converted.config
    assert not config.cascade_gradients and not config.carry_hidden_state  # type: ignore[union-attr]


def _refusal(tmp_path: Path, data: Any, *args: str) -> str:
    path = tmp_path / "ckpt.pt"
    torch.save(data, path)
    result = CliRunner().invoke(cli, ["convert-checkpoint", str(path), "-o", str(tmp_path / "x.pt"), *args])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "x.pt").exists()
    lines = result.output.strip().splitlines()  # the reason, then the CLI's usual --debug hint
    assert lines[1:] == ["(run `mrirecon --debug convert-checkpoint ...` for the traceback)"], result.output
    assert lines[0].startswith("Error: ") and str(path) in lines[0], result.output
    return lines[0]


def test_what_cannot_be_mapped_is_refused_in_one_line(tmp_path: Path) -> None:
    rim = checkpoint("atommic_rim_gru_33x27_line")["state_dict"]
    assert "explicit data consistency" in _refusal(
        tmp_path, {"state_dict": {**rim, "reconstruction_module.0.dc_weight": torch.ones(1)}}
    )
    assert "coil-map network" in _refusal(
        tmp_path, {"state_dict": {**rim, "coil_sensitivity_maps_nn.norm_unet.weight": torch.ones(1)}}
    )
    direct_rim = {"cell_list.0.conv_blocks.0.1.weight": torch.ones(4, 4, 5, 5)}
    assert "DIRECT's RIM" in _refusal(tmp_path, {"model": direct_rim})
    rvn = checkpoint("direct_rvn_noser_33x27_2d")["model"]
    padded = {k.replace("conv_blocks.0.1.", "conv_blocks.0.0."): v for k, v in rvn.items()}
    assert "zero-padded" in _refusal(tmp_path, {"model": padded})
    assert "shape" in _refusal(tmp_path, {"model": {**rvn, "block_list.0.learning_rate": torch.ones(2)}})
    shared = {
        k: v for k, v in rvn.items() if not k.startswith("block_list.") or k.startswith("block_list.0.")
    }
    assert "--steps" in _refusal(tmp_path, {"model": shared})
    assert "unknown state-dict layout" in _refusal(tmp_path, {"model": {"encoder.weight": torch.ones(1)}})
    # a partial file: one cell without its input bias, or fewer cascades than its config says
    unbiased = {k: v for k, v in rim.items() if k != "reconstruction_module.0.layers.1.rnn.ih.bias"}
    assert "some recurrent cells have an input bias and others none" in _refusal(
        tmp_path, {"state_dict": unbiased}
    )
    two = {"state_dict": rim, "hyper_parameters": {"cfg": {"model": {"num_cascades": 2}}}}
    assert "its config has 2 cascades and its weights 1" in _refusal(tmp_path, two)
    # ATOMMIC's RecurrentVarNet has DIRECT's keys: its Lightning config tells it apart (it was
    # converted as DIRECT's, and its initialiser and FFT scaling differ)
    atommic_rvn = {
        "state_dict": rvn,
        "hyper_parameters": {"cfg": {"model": {"fft_normalization": "backward"}}},
    }
    assert "an ATOMMIC (or mridc) RecurrentVarNet" in _refusal(tmp_path, atommic_rvn)


def test_a_direct_checkpoint_whose_config_says_otherwise_than_its_weights_is_refused(tmp_path: Path) -> None:
    """DIRECT's config.yaml beside the weights names the initialiser and the sensitivity model: a
    file without them (a partial copy) converted as a model without them."""
    import yaml

    rvn = checkpoint("direct_rvn_noser_33x27_2d")["model"]
    has_rsi = any(k.startswith("initializer.") for k in rvn)
    torch.save({"model": rvn}, tmp_path / "model_10.pt")
    model = {"model_name": "RecurrentVarNet", "learned_initializer": not has_rsi}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": model}))
    with pytest.raises(
        CheckpointError, match=r"its config\.yaml has.* learned initializer .*a partial or mismatched"
    ):
        convert_checkpoint(tmp_path / "model_10.pt", tmp_path / "x.pt")
    model["learned_initializer"] = has_rsi
    extra = {"sensitivity_model": {"model_name": "unet"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": model, "additional_models": extra}))
    with pytest.raises(CheckpointError, match="has sensitivity model and the weights have none"):
        convert_checkpoint(tmp_path / "model_10.pt", tmp_path / "x.pt")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": model, "additional_models": {}}))
    assert convert_checkpoint(tmp_path / "model_10.pt", tmp_path / "x.pt").model_name == "recurrentvarnet"


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        convert_checkpoint(path, tmp_path / "x.pt")
