"""Checkpoints as the authors' trainers save them: a Lightning ``.ckpt``'s own config (read without
running its classes), options mrirecon does not implement, key orders and prefixes, σ and time steps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from mrirecon.errors import CheckpointError
from mrirecon.models.convert import convert_checkpoint, convert_state
from mrirecon.models.io import load_model
from tests.models.test_parity import TOLERANCE, checkpoint, run_case

ATOMMIC_RIM = "atommic_rim_gru_33x27_line"  # centred FFT, 8 time steps


class DictConfig:
    """Pickled as OmegaConf pickles its containers: a ``_content`` of value nodes (module level, so
    that torch.save can pickle it by reference; the unpickler never imports it)."""

    def __init__(self, content: dict[str, Any]) -> None:
        self._content = {key: AnyNode(value) for key, value in content.items()}
        self._metadata = {"ref_type": "Any"}
        self._parent = None


class ListConfig:
    def __init__(self, content: list[Any]) -> None:
        self._content = [AnyNode(value) for value in content]
        self._parent = None


class AnyNode:
    def __init__(self, value: Any) -> None:
        self._val = ListConfig(value) if isinstance(value, list) else value
        self._parent = None


def _lightning(tmp_path: Path, config: dict[str, Any], state: dict[str, torch.Tensor] | None = None) -> Path:
    path = tmp_path / "model.ckpt"
    weights = checkpoint(ATOMMIC_RIM)["state_dict"] if state is None else state
    hyper = {"cfg": DictConfig(config)}
    torch.save({"state_dict": {f"model.{k}": v for k, v in weights.items()}, "hyper_parameters": hyper}, path)
    with pytest.raises(Exception, match=r"(?i)weights"):  # not a weights-only file
        torch.load(path, weights_only=True)
    return path


def test_a_lightning_checkpoint_gives_its_own_config(tmp_path: Path) -> None:
    config = {
        "time_steps": 8,
        "fft_centered": True,
        "conv_dilations": [1, 2, 1],
        "coil_combination_method": "SENSE",
    }
    source = _lightning(tmp_path, config)
    lines: list[str] = []
    converted = convert_checkpoint(source, tmp_path / "rim.pt", report=lines.append)
    assert converted.config.fft_centered and converted.config.time_steps == 8  # type: ignore[union-attr]
    assert lines == [f"wrote {tmp_path / 'rim.pt'}: {converted.describe()}"]  # nothing assumed
    assert run_case(ATOMMIC_RIM, load_model(tmp_path / "rim.pt")[1]).steps <= TOLERANCE
    # the config's values are the ones used (a Calgary-Campinas model is uncentred, 16 steps here)
    uncentred = convert_checkpoint(
        _lightning(tmp_path, {"time_steps": 16, "fft_centered": False}), tmp_path / "u.pt"
    )
    assert not uncentred.config.fft_centered and uncentred.config.time_steps == 16  # type: ignore[union-attr]
    # options given on the command line win over the checkpoint's config
    forced = convert_checkpoint(
        _lightning(tmp_path, {"time_steps": 8, "fft_centered": True}),
        tmp_path / "f.pt",
        time_steps=16,
        fft_centered=False,
    )
    assert not forced.config.fft_centered and forced.config.time_steps == 16  # type: ignore[union-attr]
    # without a config the same weights are taken as centred: said, not silent
    bare = tmp_path / "bare.ckpt"
    torch.save({"state_dict": checkpoint(ATOMMIC_RIM)["state_dict"]}, bare)
    lines.clear()
    convert_checkpoint(bare, tmp_path / "bare.pt", report=lines.append)
    assert any("centred FFT (not in the weights" in line and "--uncentered" in line for line in lines)


@pytest.mark.parametrize(
    ("option", "said"),
    [
        ({"conv_dilations": [1, 4, 1]}, "conv_dilations [1, 4, 1]"),
        ({"coil_combination_method": "RSS"}, "coil_combination_method RSS"),
        ({"conv_bias": [False, False, False]}, "conv_bias [False, False, False]"),
        ({"consecutive_slices": 3}, "consecutive_slices 3"),
    ],
)
def test_options_mrirecon_does_not_implement_are_refused(
    tmp_path: Path, option: dict[str, Any], said: str
) -> None:
    source = _lightning(tmp_path, {"time_steps": 8, **option})
    with pytest.raises(CheckpointError, match=rf"config sets {re.escape(said)} .*another function"):
        convert_checkpoint(source, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_key_order_prefixes_and_ema_copies_do_not_change_the_model() -> None:
    state = checkpoint(ATOMMIC_RIM)["state_dict"]
    # ATOMMIC registers its coil-map network first: refused for what it is, not as unknown
    with pytest.raises(CheckpointError, match="learned coil-map network"):
        convert_state({"state_dict": {"coil_sensitivity_maps_nn.0.weight": torch.ones(1), **state}})
    with pytest.raises(CheckpointError, match="learned coil-map network"):
        convert_state({"state_dict": {**state, "sens_net.0.weight": torch.ones(1)}})
    compiled = {f"model._orig_mod.{k}": v for k, v in state.items()}
    ema = {f"ema_model.{k}": v + 1 for k, v in state.items()}
    converted = convert_state({"state_dict": {**compiled, **ema}})
    assert run_case(ATOMMIC_RIM, converted.build()).steps <= TOLERANCE
    with pytest.raises(CheckpointError, match=r"first convolutions have no bias \(conv_bias false\)"):
        convert_state(
            {"state_dict": {k: v for k, v in state.items() if not k.endswith("0.convs.conv_layer.bias")}}
        )


def test_time_steps_are_rounded_as_the_authors_do_and_mridc_ignores_sigma() -> None:
    state = {"state_dict": checkpoint(ATOMMIC_RIM)["state_dict"]}
    converted = convert_state(state, time_steps=10, known=frozenset({"time_steps"}))
    assert converted.config.time_steps == 16  # type: ignore[union-attr]
    assert "ATOMMIC runs 10 time steps as 16 (it rounds up to 8s)" in converted.notes
    mridc = {"state_dict": checkpoint("mridc_cirim_33x27_line")["state_dict"]}
    with pytest.raises(CheckpointError, match="mridc's CIRIM uses σ = 1"):
        convert_state(mridc, sigma=2.0)
    # ATOMMIC divides the log-likelihood gradient by max(σ, 1), mrirecon by σ²: the same gradient
    # takes mrirecon's σ = √max(σ, 1)
    for sigma, expected in ((4.0, 2.0), (0.5, 1.0), (1.0, 1.0)):
        assert convert_state(state, sigma=sigma).config.sigma == pytest.approx(expected)  # type: ignore[union-attr]


def _direct_experiment(folder: Path, name: str, model: dict[str, Any] | None, forward: str) -> Path:
    """``model_<iteration>.pt`` with DIRECT's experiment ``config.yaml`` beside it (``model`` None:
    no config)."""
    folder.mkdir(parents=True)
    path = folder / "model_500.pt"
    torch.save({**checkpoint(name), "iteration": 500}, path)
    if model is not None:
        config = {"physics": {"forward_operator": forward, "backward_operator": "ifft2"}, "model": model}
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return path


def test_direct_reads_the_config_beside_its_checkpoint(tmp_path: Path) -> None:
    name = "direct_rvn_shared_33x27_line"  # uncentred, 8 steps of one shared block
    model = {"model_name": "recurrentvarnet.recurrentvarnet.RecurrentVarNet", "num_steps": 8}
    model.update(initializer_initialization="sense", initializer_dilations=[1, 1, 2, 4])
    source = _direct_experiment(tmp_path / "exp", name, model, "fft2(centered=False)")
    lines: list[str] = []
    converted = convert_checkpoint(source, tmp_path / "rvn.pt", report=lines.append)
    assert not converted.config.fft_centered and converted.config.steps == 8  # type: ignore[union-attr]
    assert lines[1:] == [f"  options not given were read from {tmp_path / 'exp' / 'config.yaml'}"]
    errors = run_case(name, load_model(tmp_path / "rvn.pt")[1])
    assert errors.steps <= TOLERANCE
    # without the config: the steps are asked for, and the FFT said to be assumed
    bare = _direct_experiment(tmp_path / "bare", name, None, "")
    with pytest.raises(CheckpointError, match="give the number of steps"):
        convert_checkpoint(bare, tmp_path / "x.pt")
    lines.clear()
    convert_checkpoint(bare, tmp_path / "x.pt", steps=8, fft_centered=False, report=lines.append)
    assert any("RSI dilations" in line for line in lines)
    assert not any("assumed: FFT" in line for line in lines)
    refused = _direct_experiment(
        tmp_path / "img", name, {**model, "initializer_initialization": "input_image"}, "fft2"
    )
    with pytest.raises(CheckpointError, match="initializer_initialization input_image"):
        convert_checkpoint(refused, tmp_path / "y.pt")


def test_direct_normalised_regulariser_and_zero_filled_initialiser_map_onto_the_options() -> None:
    plain = checkpoint("direct_rvn_33x27_line")
    wrapped = {k.replace(".regularizer.", ".regularizer.convgru."): v for k, v in plain["model"].items()}
    options: dict[str, Any] = {"fft_centered": False, "initializer_input": "zero_filled"}
    converted = convert_state({**plain, "model": wrapped}, **options)
    reference = convert_state(plain, **options)
    assert converted.config.normalized and not reference.config.normalized  # type: ignore[union-attr]
    assert converted.config.initializer_input == "zero_filled"  # type: ignore[union-attr]
    assert converted.state_dict.keys() == reference.state_dict.keys()
    assert all(torch.equal(converted.state_dict[k], reference.state_dict[k]) for k in reference.state_dict)


def test_a_configuration_that_holds_itself_is_read_without_recursing_forever() -> None:
    """A pickle can make a dict that contains itself (hyper_parameters): a RecursionError traceback."""
    from mrirecon.models.checkpoint_tensors import plain_values

    looped: dict[str, object] = {"lr": 1e-3}
    looped["cfg"] = looped
    assert plain_values(looped) == {"lr": 1e-3, "cfg": None}
    deep: list[object] = []
    tip = deep
    for _ in range(500):
        tip.append([])
        tip = tip[0]  # type: ignore[assignment]
    assert plain_values(deep) is not None  # cut at the depth limit, no RecursionError


def test_the_output_must_be_another_pt_file(tmp_path: Path) -> None:
    """`-o` naming the checkpoint itself (under any spelling) replaced the authors' file; a
    `.safetensors` name held a torch file that infer then refused."""
    from mrirecon.errors import ConfigError

    source = _lightning(tmp_path, {"time_steps": 8, "fft_centered": True})
    original = source.read_bytes()
    copy = tmp_path / "model_500.pt"
    copy.write_bytes(original)
    (tmp_path / "sub").mkdir()
    with pytest.raises(ConfigError, match="the output is the checkpoint being converted"):
        convert_checkpoint(copy, tmp_path / "sub" / ".." / "model_500.pt")
    assert copy.read_bytes() == original
    for name in ("cirim.safetensors", "cirim.SAFETENSORS"):
        with pytest.raises(ConfigError, match=rf"the output '{re.escape(name)}' is written as a torch"):
            convert_checkpoint(source, tmp_path / name)
    assert source.read_bytes() == original
    for name in ("cirim.pth", "cirim.PT", "cirim"):  # names infer reads as torch model files
        convert_checkpoint(source, tmp_path / name)
        assert load_model(tmp_path / name)[0] == "rim"


def test_weights_that_are_not_finite_real_numbers_are_refused(tmp_path: Path) -> None:
    """NaN weights converted with exit 0 (infer then refused the model); complex ones lost their
    imaginary part."""
    weights = checkpoint(ATOMMIC_RIM)["state_dict"]
    key = sorted(k for k in weights if k.endswith("weight"))[0]
    config = {"time_steps": 8, "fft_centered": True}
    nan = {**weights, key: torch.full_like(weights[key], float("nan"))}
    with pytest.raises(CheckpointError, match=rf"{re.escape(key)}' holds NaN or Inf values"):
        convert_checkpoint(_lightning(tmp_path, config, nan), tmp_path / "nan.pt")
    complex_ = {**weights, key: weights[key].to(torch.complex64) * 1j}
    with pytest.raises(CheckpointError, match=rf"{re.escape(key)}' holds torch.complex64 values"):
        convert_checkpoint(_lightning(tmp_path, config, complex_), tmp_path / "c.pt")
    assert not (tmp_path / "nan.pt").exists() and not (tmp_path / "c.pt").exists()


def test_a_truncated_archive_and_sigma_for_direct_are_one_line_errors(tmp_path: Path) -> None:
    import io
    import tarfile

    from mrirecon.errors import ConfigError

    weights = io.BytesIO()
    torch.save(checkpoint(ATOMMIC_RIM)["state_dict"], weights)
    archive = tmp_path / "rim.atommic"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("./model_weights.ckpt")
        info.size = len(weights.getvalue())
        tar.addfile(info, io.BytesIO(weights.getvalue()))
    whole = archive.read_bytes()
    for size in (len(whole) // 2, 600):
        archive.write_bytes(whole[:size])
        with pytest.raises(CheckpointError, match=r"rim.atommic: a damaged or truncated archive"):
            convert_checkpoint(archive, tmp_path / "rim.pt")
    name = "direct_rvn_shared_33x27_line"
    model = {"model_name": "recurrentvarnet.recurrentvarnet.RecurrentVarNet", "num_steps": 8}
    source = _direct_experiment(tmp_path / "exp", name, model, "fft2(centered=False)")
    with pytest.raises(ConfigError, match=r"--sigma is the noise level of ATOMMIC's and mridc's RIM"):
        convert_checkpoint(source, tmp_path / "rvn.pt", sigma=5.0)
    assert not (tmp_path / "rvn.pt").exists()
