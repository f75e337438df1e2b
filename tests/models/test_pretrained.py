"""Safetensors model files and pretrained names: round trip, no pickle, names wherever a checkpoint goes."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from mrirecon.errors import CheckpointError, ConfigError
from mrirecon.models import pretrained
from mrirecon.models.checkpoints import load_checkpoint_model
from mrirecon.models.registry import build_model
from mrirecon.models.rim import CIRIMConfig

TINY = CIRIMConfig(cascades=1, time_steps=2, channels=4)


def _tiny_file(path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model("cirim", TINY)
    card = {"headline": "real anatomy, equispaced 4x: 30.0 dB head PSNR"}
    return pretrained.write_safetensors_model(path, "cirim", TINY, model, card), model


def test_a_safetensors_model_round_trips_with_its_config_and_card(tmp_path: Path) -> None:
    path, model = _tiny_file(tmp_path / "tiny.safetensors")
    name, loaded, card = pretrained.read_safetensors_model(path)
    assert name == "cirim" and loaded.config == TINY and not loaded.training
    assert card["headline"].startswith("real anatomy")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert load_checkpoint_model(path)[1].config == TINY  # a path works wherever a checkpoint does


def test_a_safetensors_card_that_is_no_mapping_gives_no_coil_map_method(tmp_path: Path) -> None:
    """Another writer's card may be any JSON: loading read ``card.get`` and stopped as on a bug."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from mrirecon.models.checkpoints import load_trained_model

    path, _ = _tiny_file(tmp_path / "tiny.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
    save_file(load_file(str(path)), str(path), metadata=metadata | {"card": "null"})  # same tensors
    name, _, maps = load_trained_model(path)
    assert (name, maps) == ("cirim", None)


def test_loading_a_safetensors_model_unpickles_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = _tiny_file(tmp_path / "tiny.safetensors")

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle or torch.load was used")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    name, model, _ = pretrained.read_safetensors_model(path)
    assert name == "cirim" and model.config == TINY
    assert b"pickle" not in path.read_bytes()[:8] and path.read_bytes()[8:9] == b"{"  # a JSON header


def test_a_pretrained_name_loads_from_the_weights_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tiny_file(tmp_path / "cirim-brain.safetensors")
    monkeypatch.setattr(pretrained, "WEIGHTS", tmp_path)
    assert [e.name for e in pretrained.available()] == ["cirim-brain"]
    name, model = load_checkpoint_model("cirim-brain")
    assert name == "cirim" and model.config == TINY
    from mrirecon.inference.loading import load_reconstructor

    loaded = load_reconstructor("cirim-brain")
    assert loaded.checkpoint == tmp_path / "cirim-brain.safetensors" and len(loaded.checkpoint_sha256) == 64
    with pytest.raises(ConfigError, match="pass it as --checkpoint"):
        load_reconstructor("cirim-brain", kind="model")


def test_a_folder_named_like_a_pretrained_model_does_not_hide_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mrirecon infer rim-brain scan.h5 -o rim-brain` a second time: the output folder of that
    name was taken for a checkpoint ("this is a folder, not a checkpoint")."""
    shipped = tmp_path / "weights"
    shipped.mkdir()
    monkeypatch.setattr(pretrained, "WEIGHTS", shipped)
    _tiny_file(shipped / "cirim-brain.safetensors")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cirim-brain").mkdir()
    assert load_checkpoint_model("cirim-brain")[1].config == TINY


def test_a_file_named_like_a_pretrained_model_is_the_users_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint saved as ./cirim-brain is that file, not the shipped model of that name (whose
    weights would be used under the file's path and sha256)."""
    from mrirecon.inference.loading import load_reconstructor

    shipped = tmp_path / "weights"
    shipped.mkdir()
    monkeypatch.setattr(pretrained, "WEIGHTS", shipped)
    _tiny_file(shipped / "cirim-brain.safetensors")
    own = CIRIMConfig(cascades=1, time_steps=3, channels=6)
    monkeypatch.chdir(tmp_path)
    from mrirecon.models.io import save_model

    save_model("cirim-brain", "cirim", own, build_model("cirim", own))  # a model payload, no suffix
    for given in ("cirim-brain", "./cirim-brain", Path("cirim-brain")):
        assert load_checkpoint_model(given)[1].config == own, given
        loaded = load_reconstructor(given)
        assert loaded.model.config == own and loaded.checkpoint is not None
        assert loaded.checkpoint.resolve() == tmp_path / "cirim-brain"
    monkeypatch.chdir(shipped.parent / "weights")  # no such file here: the name is the shipped model
    assert load_checkpoint_model("cirim-brain")[1].config == TINY


def test_bad_files_and_names_fail_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pretrained, "WEIGHTS", tmp_path)
    with pytest.raises(CheckpointError, match="weights of 'rim-brain' are not installed"):
        pretrained.load_pretrained("rim-brain")
    with pytest.raises(ConfigError, match="unknown pretrained model"):
        pretrained.load_pretrained("cirim-knee")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 40)
    with pytest.raises(CheckpointError, match="cannot read it as a safetensors model"):
        pretrained.read_safetensors_model(junk)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="without mrirecon's header"):
        pretrained.read_safetensors_model(foreign)
    bad_format = tmp_path / "format.safetensors"
    save_file({"w": torch.zeros(2)}, str(bad_format), metadata={"model_name": "rim", "format": "1.0"})
    with pytest.raises(CheckpointError, match=r"the header's format '1\.0' is not a number"):
        pretrained.read_safetensors_model(bad_format)


def test_model_init_fine_tunes_from_a_pretrained_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mrirecon.training.config import ModelSection, train_config_from_mapping
    from mrirecon.training.model_setup import initial_model, model_config

    _tiny_file(tmp_path / "cirim-brain.safetensors")
    monkeypatch.setattr(pretrained, "WEIGHTS", tmp_path)
    config = train_config_from_mapping(
        {
            "model": {"name": "cirim", "init": "cirim-brain", "params": {"sigma": 0.5}},
            "data": {"manifest": "m.csv"},
        }
    )
    assert model_config(config) == CIRIMConfig(cascades=1, time_steps=2, channels=4, sigma=0.5)
    assert initial_model(config.model)[0] == "cirim"
    # params that shape the weights are named when the config is read, before any data are made
    with pytest.raises(ConfigError, match=r"do not fit this model: model\.params changes channels 4 → 8 \("):
        train_config_from_mapping(
            {
                "model": {"name": "cirim", "init": "cirim-brain", "params": {"channels": 8, "sigma": 0.5}},
                "data": {"manifest": "m.csv"},
            }
        )
    with pytest.raises(ConfigError, match="holds model 'cirim', not 'rim'"):
        initial_model(ModelSection("rim", init="cirim-brain"))
    missing = tmp_path / "nowhere.ckpt"
    with pytest.raises(ConfigError) as raised:
        initial_model(ModelSection("cirim", init=str(missing)))
    line = raised.value.one_line()
    assert line.startswith(f"'model.init': {missing}: no such checkpoint file")
    assert line.count("check the path") == 1  # the checkpoint error's hint, once


def test_the_headline_comes_from_the_cards_quality_table() -> None:
    figures = {
        "head_psnr": 31.254,
        "head_ssim": 0.88704,
        "lesions_kept": "25/33",
        "cs_head_psnr": 28.4,
        "cs_head_ssim": 0.7671,
    }
    card = {"headline": "old text", "quality": {"real": {"equispaced 4x": figures}}}
    assert pretrained.card_headline(card) == (
        "real anatomy, equispaced 4x: head PSNR 31.25 dB (CS 28.40), SSIM 0.887 (CS 0.767), "
        "lesions kept 25/33"
    )
    assert pretrained.card_headline({"headline": "old text"}) == "old text"
    assert pretrained.card_headline({}) == ""


def test_mrirecon_models_lists_the_shipped_models_with_lesions_kept() -> None:
    from mrirecon.models.catalog import describe_pretrained

    rows = {row.name: row for row in describe_pretrained()}
    assert set(rows) == set(pretrained.PRETRAINED)
    for row in rows.values():
        assert row.summary.startswith("real anatomy, equispaced 4x: head PSNR")
        assert "lesions kept" in row.summary
