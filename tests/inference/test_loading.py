"""Which model runs: checkpoints (sha256 recorded), baselines by name, and every way that goes wrong."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, cast

import pytest
import torch

from mrirecon.errors import CheckpointError, ConfigError, DataError, Notice
from mrirecon.inference.loading import file_sha256, load_reconstructor
from mrirecon.models.io import model_payload, save_model
from tests.inference.fakes import FakeLearned, LearnedConfig

pytestmark = pytest.mark.usefixtures("installed")
#: What the checkpoint loader says about a dict that is neither a checkpoint nor a model file
#: (mrirecon.models.checkpoints.load_checkpoint_model).
NOT_A_CHECKPOINT = "neither a training checkpoint nor a model file|not a mrirecon model payload"


def _checkpoint(path: Path, coils: int = 4) -> Path:
    model = FakeLearned(LearnedConfig(coils=coils))
    with torch.no_grad():
        model.weight.copy_(torch.arange(1, coils + 1, dtype=torch.float32))
    return save_model(path, "fake_learned", LearnedConfig(coils=coils), model)


def test_a_checkpoint_loads_with_its_weights_and_sha256(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "model.pt")
    loaded = load_reconstructor(path)
    assert loaded.name == "fake_learned"
    assert loaded.checkpoint_sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == file_sha256(path)
    assert loaded.checkpoint == path.resolve()
    assert loaded.config == {"coils": 4}
    assert torch.equal(cast(FakeLearned, loaded.model).weight, torch.arange(1.0, 5.0))
    assert not loaded.model.training


def test_a_training_checkpoint_loads_through_the_training_layer(tmp_path: Path) -> None:
    model = FakeLearned(LearnedConfig(coils=3))
    with torch.no_grad():
        model.weight.copy_(torch.tensor([0.5, 1.5, 2.5]))
    ckpt = tmp_path / "last.ckpt"  # a Lightning checkpoint as `mrirecon train` writes it (§4)
    torch.save(
        {
            "epoch": 3,
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "mrirecon": model_payload("fake_learned", LearnedConfig(coils=3)),
        },
        ckpt,
    )
    loaded = load_reconstructor(ckpt)
    assert loaded.name == "fake_learned" and loaded.config == {"coils": 3}
    assert torch.equal(cast(FakeLearned, loaded.model).weight, torch.tensor([0.5, 1.5, 2.5]))
    assert loaded.checkpoint_sha256 == file_sha256(ckpt)


def test_a_baseline_by_name_needs_no_checkpoint(tmp_path: Path) -> None:
    loaded = load_reconstructor("zero_filled")
    assert (loaded.name, loaded.checkpoint, loaded.checkpoint_sha256) == ("zero_filled", None, "")
    config = tmp_path / "slow.yaml"
    config.write_text("seconds: 0.05\n")
    assert load_reconstructor("fake_slow", model_config=config).config == {"seconds": 0.05, "marker": ""}
    config.write_text("model: fake_slow\nseconds: 0.25\n")  # configs/models style
    assert load_reconstructor("fake_slow", model_config=config).config == {"seconds": 0.25, "marker": ""}
    config.write_text("model: zero_filled\n")
    with pytest.raises(ConfigError, match="this config is for model 'zero_filled', not 'fake_slow'"):
        load_reconstructor("fake_slow", model_config=config)


def test_a_bad_model_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "slow.yaml"
    config.write_text("second: 1\n")
    with pytest.raises(ConfigError, match="second") as caught:
        load_reconstructor("fake_slow", model_config=config)
    assert str(config) in caught.value.one_line()


def _renamed(name: str) -> dict:
    return {**model_payload("fake_learned", LearnedConfig()), "model_name": name}


@pytest.mark.parametrize(
    ("write", "error", "match"),
    [
        (lambda p: p.write_bytes(b"not a checkpoint at all"), CheckpointError, "cannot read it as a"),
        (lambda p: p.write_bytes(b""), CheckpointError, "cannot read it as a"),
        (lambda p: torch.save({"weights": torch.ones(2)}, p), CheckpointError, NOT_A_CHECKPOINT),
        (lambda p: torch.save(_renamed("vit_giant"), p), CheckpointError, "unknown model 'vit_giant'"),
    ],
    ids=["garbage", "empty", "foreign-dict", "unknown-model"],
)
def test_unreadable_checkpoints_are_one_line_errors(tmp_path: Path, write, error, match) -> None:
    path = tmp_path / "model.pt"
    write(path)
    with pytest.raises(error, match=match) as caught:
        load_reconstructor(path)
    assert "\n" not in caught.value.one_line() and str(path) in caught.value.one_line()


def test_a_checkpoint_for_another_model_is_refused(tmp_path: Path) -> None:
    # weights of a 4-coil model under a payload that says 6 coils: they do not fit
    path = _checkpoint(tmp_path / "model.pt", coils=4)
    payload = torch.load(path, weights_only=True)
    payload["model_config"] = {"coils": 6}
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not fit model 'fake_learned'"):
        load_reconstructor(path)


def test_names_and_paths_that_are_not_models(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown model 'cirrim' \(did you mean 'cirim'.*pretrained: cirim-brain.*by name: zero_filled",
    ):
        load_reconstructor("cirrim")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_reconstructor(tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_reconstructor("zero_filled", kind="checkpoint")
    with pytest.raises(CheckpointError, match="folder, not a checkpoint"):
        load_reconstructor(tmp_path)
    with pytest.raises(ConfigError, match="learned and needs its trained weights"):
        load_reconstructor("fake_learned")
    with pytest.raises(ConfigError, match="carries its own model config"):
        load_reconstructor(_checkpoint(tmp_path / "m.pt"), model_config=tmp_path / "x.yaml")


def test_a_run_takes_the_coil_maps_the_model_was_trained_with(tmp_path: Path) -> None:
    """The shipped models learned from ACS maps: ESPIRiT's (zero outside their support, another
    phase) gave images worse than zero-filled, without a word. A model's own method is the default;
    another is refused; a checkpoint trained on ESPIRiT maps gets ESPIRiT maps."""
    from mrirecon.inference import RunOptions, run_batch

    for name in ("cirim-brain", "rim-brain", "recurrentvarnet-brain"):
        assert load_reconstructor(name).coil_maps == "acs"
    loaded = load_reconstructor("cirim-brain")
    options = RunOptions(output_dir=tmp_path / "out", progress=False, device="cpu")
    assert options.for_model("cirim-brain", loaded.coil_maps).coil_maps == "acs"
    with pytest.raises(ConfigError, match="cirim-brain was trained on acs coil maps") as error:
        run_batch(loaded, tmp_path / "missing.h5", options.replace(coil_maps="espirit"))
    assert error.value.hint is not None and "leave out --coil-maps" in error.value.hint
    assert not (tmp_path / "out").exists()  # refused before anything is written
    assert load_reconstructor("sense").coil_maps is None  # a baseline takes what it is given
    assert options.replace(coil_maps="espirit").for_model("sense", None).coil_maps == "espirit"
    assert options.for_model("sense", None).coil_maps == "acs"
    # CS estimates its own (ESPIRiT) maps: a --coil-maps that changes nothing but its fallback is said
    cs, acs = load_reconstructor("cs_l1wavelet"), options.replace(coil_maps="acs")
    said = pytest.warns(Notice, match="cs_l1wavelet estimates its own coil maps: the --coil-maps acs maps")
    with said, pytest.raises(DataError, match="no such input"):  # (only the note matters here)
        run_batch(cs, tmp_path / "missing.h5", acs)

    model = FakeLearned(LearnedConfig(coils=3))
    ckpt = tmp_path / "espirit.ckpt"
    record = model_payload("fake_learned", LearnedConfig(coils=3))
    record["training_config"] = {"data": {"coil_maps": "espirit"}}
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "mrirecon": record}, ckpt
    )
    assert load_reconstructor(ckpt).coil_maps == "espirit"
    assert options.for_model("espirit.ckpt", "espirit").coil_maps == "espirit"


def test_a_checkpoint_is_unpacked_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model and the coil-map method it was trained with came from two reads of the file."""
    model = FakeLearned(LearnedConfig(coils=3))
    record = model_payload("fake_learned", LearnedConfig(coils=3))
    record["training_config"] = {"data": {"coil_maps": "espirit"}}
    ckpt = tmp_path / "run.ckpt"
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "mrirecon": record}, ckpt
    )
    loads: list[object] = []
    real = torch.load

    def counted(*args: Any, **kwargs: Any) -> Any:
        loads.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", counted)
    loaded = load_reconstructor(ckpt)
    assert (loaded.name, loaded.coil_maps) == ("fake_learned", "espirit")
    assert loads == [ckpt]


def test_a_model_that_estimates_its_own_maps_takes_any_coil_map_method(tmp_path: Path) -> None:
    """E2E-VarNet with learned maps ignores the maps it is given: `--coil-maps none` (as the docs say
    for it) is not refused for having been trained on ACS maps."""
    import dataclasses

    from mrirecon.inference import RunOptions, run_batch
    from mrirecon.models.registry import build_model, default_config
    from tests.inference import fakes

    config = dataclasses.replace(
        default_config("e2e_varnet"), num_cascades=1, chans=4, pools=1, sens_chans=2, sens_pools=1
    )
    model = build_model("e2e_varnet", config)
    record = model_payload("e2e_varnet", config)
    record["training_config"] = {"data": {"coil_maps": "acs"}}
    ckpt = tmp_path / "e2e.ckpt"
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "mrirecon": record}, ckpt
    )
    fakes.write_input(tmp_path / "in" / "v.h5", slices=1)
    options = RunOptions(
        output_dir=tmp_path / "out", coil_maps="none", workers=0, progress=False, device="cpu"
    )
    result = run_batch(load_reconstructor(ckpt), tmp_path / "in", options)
    assert result.reconstructed == 1 and not result.failures
