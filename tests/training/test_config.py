"""Bad training configs fail before training starts, naming the key and the allowed keys or values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from mrirecon.errors import ConfigError
from mrirecon.training.config import load_train_config, train_config_from_mapping
from mrirecon.training.run import resolve_precision, train
from mrirecon_cli.main import cli
from tests.training.conftest import base_mapping

REPO = Path(__file__).resolve().parents[2]


def _with(path: str, value: Any) -> dict[str, Any]:
    mapping = base_mapping()
    *parents, last = path.split(".")
    node = mapping
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return mapping


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "optimiser",
            {},
            r"unknown key 'optimiser'.*allowed keys: model, data, loss, optim, trainer, output_dir",
        ),
        ("optim.lr", "fast", r"'optim.lr' must be a number"),
        ("optim.optimizer", "sgd", r"'optim.optimizer' must be one of 'adam', 'adamw'; got 'sgd'"),
        ("optim.scheduler", "linear", r"'optim.scheduler' must be one of 'constant', 'step', 'cosine'"),
        (
            "loss.time_weighting",
            "linear",
            r"'loss.time_weighting' must be one of 'logspace', 'uniform', 'final'",
        ),
        ("loss.terms", {"huber": 1.0}, r"unknown loss 'huber'.*allowed: l1, l2, ssim"),
        (
            "trainer.precision",
            "fp8",
            r"'trainer.precision' must be one of 'auto', '32', 'bf16-mixed', '16-mixed'",
        ),
        ("trainer.max_epochs", 0, r"'trainer.max_epochs' must be at least 1"),
        ("trainer.precision", 16, r"'trainer.precision' must be one of .*; got 16"),
        (
            "trainer.strategy",
            "ddp_spawn",
            r"'trainer.strategy' must be one of 'auto', 'ddp'; got 'ddp_spawn'",
        ),
        ("trainer.devices", "all", r"'trainer.devices'.*'auto'"),
        ("data.mask.type", "spiral", r"'data.mask.type' must be one of 'random', 'equispaced'"),
        ("data.mask.accelerations", [4, 8], r"same length"),
        ("data.mask.accelerations", [0.5], r"'data.mask': acceleration must be greater than 1"),
        ("data.mask.options", {"fwhm": 0.7}, r"'data.mask': bad options for mask type 'equispaced_fraction'"),
        ("data.coil_maps", "walsh", r"'data.coil_maps' must be one of 'acs', 'espirit', 'none'"),
        ("data.mask.center_fractions", [0.0], r"'data.mask.center_fractions' has a 0: .*coil_maps: acs"),
        ("data.batch_size", 2, None),  # with a mixed mask: below
        ("trainer.max_steps", 0, r"'trainer.max_steps' must be at least 1, or -1 for no limit, got 0"),
        ("trainer.check_val_every_n_epoch", 0, r"'trainer.check_val_every_n_epoch' must be at least 1"),
        ("trainer.log_every_n_steps", 0, r"'trainer.log_every_n_steps' must be at least 1"),
        ("trainer.threads", 0, r"'trainer.threads' must be at least 1, or null"),
        ("model.name", "unet3000", r"unknown model 'unet3000'.*known models: .*tiny"),
        (
            "model.params",
            {"chanels": 4},
            r"unknown key 'model.params.chanels'.*allowed keys in model.params: cascades",
        ),
        ("model.params", {"channels": "many"}, r"'model.params.channels' must be an integer"),
        ("optim.lr", float("nan"), r"'optim.lr' must be a positive number, got nan"),
        ("optim.betas", [1.5, 0.999], r"'optim.betas' must be two numbers in \[0, 1\), got \[1.5, 0.999\]"),
        ("optim.weight_decay", -1.0, r"'optim.weight_decay' must be 0 or more"),
        ("optim.gamma", -2.0, r"'optim.gamma' \(the step schedule's decay\) must be in \(0, 1\]"),
        ("loss.terms", {"l1": float("nan")}, r"'loss.terms.l1' must be a finite weight of 0 or more"),
        ("loss.terms", {"l1": 0.0}, r"weighs no term that every slice has: every weight is 0"),
        ("loss.terms", {"lesion_l1": 1.0, "l1": 0.0}, r"no term that every slice has: only the lesion terms"),
        (
            "trainer.check_val_every_n_epoch",
            3,
            r"is more than 'trainer.max_epochs' \(2\): the run would never",
        ),
    ],
)
def test_bad_values_name_the_key_and_the_allowed_ones(
    tiny_registered: str, path: str, value: Any, message: str | None
) -> None:
    mapping = _with(path, value)
    if message is None:  # data.batch_size 2 is fine with one mask type, not with a mixed one
        train_config_from_mapping(mapping)
        mapping["data"]["mask"] = {"type": "mixed", "accelerations": [4], "center_fractions": [0]}
        message = r"'data.mask.type: mixed' needs 'data.batch_size' and 'data.val_batch_size' of 1"
    with pytest.raises(ConfigError, match=message):
        train_config_from_mapping(mapping)


def test_a_yaml_number_that_is_a_string_choice_reads_as_that_choice(
    tiny_registered: str, tmp_path: Path
) -> None:
    assert train_config_from_mapping(_with("trainer.precision", 32)).trainer.precision == "32"
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(base_mapping()))
    assert load_train_config(path, ["trainer.precision=32"]).trainer.precision == "32"  # YAML: the number 32


def test_a_mask_option_written_in_exponent_form_is_a_number(tiny_registered: str, tmp_path: Path) -> None:
    """YAML 1.1 reads ``1e-3`` as a string; the mask would have failed at its first draw."""
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(base_mapping()))
    mask = ["data.mask.type=poisson2d", "data.mask.accelerations=[6]", "data.mask.center_fractions=[0.08]"]
    config = load_train_config(path, [*mask, "data.mask.options.tol=1e-3"])
    assert config.data.mask.options == {"tol": 0.001}


def test_yaml_file_and_overrides(tiny_registered: str, tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(base_mapping()))
    config = load_train_config(path, ["optim.lr=3e-4", "trainer.max_epochs=5", "loss.terms.ssim=0.5"])
    assert config.optim.lr == 3e-4 and config.trainer.max_epochs == 5
    assert config.loss.terms == {"l1": 1.0, "ssim": 0.5}
    assert load_train_config(path) == train_config_from_mapping(yaml.safe_load(path.read_text()))
    with pytest.raises(ConfigError, match=r"run.yaml: 'trainer.seed' must be an integer"):
        load_train_config(path, ["trainer.seed=abc"])
    with pytest.raises(ConfigError, match="key=value"):
        load_train_config(path, ["trainer.seed"])


def test_run_level_checks_happen_before_training(tiny_registered: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="16-mixed needs a GPU"):
        resolve_precision(
            train_config_from_mapping(_with("trainer.precision", "16-mixed")).trainer, on_gpu=False
        )
    assert resolve_precision(train_config_from_mapping(base_mapping()).trainer, on_gpu=False) == "32-true"
    missing = _with("data.train", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"the train data '.*nowhere' does not exist"):
        train(train_config_from_mapping(missing), output_dir=tmp_path / "run", echo=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_cli_reports_a_bad_config_on_one_line_with_exit_code_2(tiny_registered: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_with("optim.scheduler", "linear")))
    result = CliRunner().invoke(cli, ["train", "--config", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"Error: {path}: 'optim.scheduler' must be one of" in result.output
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(cli, ["train", "--config", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and "config file not found" in result.output
    result = CliRunner().invoke(
        cli, ["train", "--config", str(path), "optim.scheduler=cosine", "optim.lr=-1"]
    )
    assert result.exit_code == 2 and "'optim.lr' must be a positive number" in result.output


@pytest.mark.parametrize(
    "path",
    sorted(REPO.glob("configs/*.yaml")) + sorted(REPO.glob("configs/pretrained/*.yaml")),
    ids=lambda p: p.name,
)
def test_shipped_configs_are_valid(path: Path) -> None:
    config = load_train_config(path)  # <model>_<dataset>.yaml; no model name has an underscore
    assert path.name.split("_")[0] == config.model.name


@pytest.mark.parametrize(
    "name", ["rim_fastmri_brain.yaml", "rim_fastmri_knee.yaml", "rim_calgary_campinas.yaml"]
)
def test_rim_recipes_weight_the_time_steps_as_atommic(name: str) -> None:
    config = load_train_config(REPO / "configs" / name)
    assert config.loss.time_weighting == "logspace"  # ATOMMIC's rim.yaml: logspace(−1, 0, T)
    assert config.loss.normalize == "none"  # ATOMMIC's per-slice maxima: an override away
    atommic = load_train_config(REPO / "configs" / name, ["loss.normalize=per_slice_max"])
    assert atommic.loss.normalize == "per_slice_max"
    with pytest.raises(ConfigError, match=r"'loss.normalize' must be one of 'none', 'per_slice_max'"):
        load_train_config(REPO / "configs" / name, ["loss.normalize=volume"])


def test_recurrentvarnet_knee_recipe_has_atommics_single_scale_initializer() -> None:
    from mrirecon.training.model_setup import model_config

    config = load_train_config(REPO / "configs" / "recurrentvarnet_fastmri_knee.yaml")
    model = model_config(config)
    assert (model.initializer_multiscale, model.hidden_channels) == (1, 64)


def test_model_presets_and_the_fft_convention() -> None:
    def config(model: dict[str, Any], **data: Any) -> Any:
        mapping = base_mapping()
        mapping["model"] = model
        mapping["data"].update(data)
        return train_config_from_mapping(mapping)

    from mrirecon.training.model_setup import model_config

    cc = model_config(
        config({"name": "cirim", "preset": "cirim_cc", "params": {"cascades": 2}}, centered=False)
    )
    assert (cc.channels, cc.cascades, cc.fft_centered) == (128, 2, False)  # preset, then params
    with pytest.raises(ConfigError, match=r"'cirim_knee' configures model 'cirim', not 'rim'"):
        config({"name": "rim", "preset": "cirim_knee"})
    with pytest.raises(ConfigError, match=r"FFT convention \(fft_centered: False\).*'data.centered': True"):
        config({"name": "cirim", "preset": "cirim_cc"}, centered=True)
    with pytest.raises(ConfigError, match="no model config named 'cirim_nowhere'"):
        config({"name": "cirim", "preset": "cirim_nowhere"})


def test_own_train_and_val_data_are_not_tested_on_the_recipes_manifest() -> None:
    """A fine-tune of cirim_synthetic on one's own files simulated the recipe's phantom and reported
    its test scores as if they were the user's data."""
    from mrirecon.training.config import train_config_from_mapping
    from mrirecon.training.sources import ensure_synthetic

    recipe: dict[str, Any] = {
        "model": {"name": "cirim"},
        "data": {
            "manifest": "data/never_made/manifest.csv",
            "synthetic": {"volumes": 4},
        },
    }
    own: dict[str, Any] = {**recipe, "data": {**recipe["data"], "train": "mine/train", "val": "mine/val"}}
    config = train_config_from_mapping(own)
    assert config.data.source("test") is None and config.data.source("train") == "mine/train"
    assert ensure_synthetic(config.data, echo=lambda _: None) is None  # nothing simulated
    tested = {**own, "data": {**own["data"], "test": "mine/test"}}
    assert train_config_from_mapping(tested).data.source("test") == "mine/test"
    shared = train_config_from_mapping(recipe).data
    assert shared.source("test") == shared.source("train") == "data/never_made/manifest.csv"
