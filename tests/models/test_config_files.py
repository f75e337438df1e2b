"""Model config files: every file builds its model; the base files hold the dataclass defaults;
names, paths and overrides resolve; unknown keys and bad values are ConfigErrors naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrirecon.errors import ConfigError
from mrirecon.models import load_model_config
from mrirecon.models.config_files import CONFIG_DIR_ENV, model_config_files
from mrirecon.models.recurrentvarnet import RecurrentVarNetConfig
from mrirecon.models.registry import build_model, default_config
from mrirecon.models.rim import CIRIMConfig, RIMConfig

REPO = Path(__file__).resolve().parents[2]
OURS = {"rim", "cirim", "recurrentvarnet"}


def test_every_config_file_builds_its_model() -> None:
    files = model_config_files()
    assert {"rim", "cirim", "recurrentvarnet", "cirim_knee", "rim_cc", "rim_direct"} <= set(files)
    for config_name, path in files.items():
        name, config = load_model_config(path)
        assert build_model(name, config) is not None, config_name


@pytest.mark.parametrize("name", sorted(OURS))
def test_base_files_hold_the_defaults(name: str) -> None:
    """configs/models/<model>.yaml writes out the dataclass defaults (the papers' settings)."""
    assert load_model_config(REPO / "configs" / "models" / f"{name}.yaml") == (name, default_config(name))


def test_paper_variants() -> None:
    assert load_model_config("cirim_knee")[1] == CIRIMConfig(cascades=8)
    assert load_model_config("cirim_cc")[1] == CIRIMConfig(channels=128, fft_centered=False)
    assert load_model_config("rim_cc")[1] == RIMConfig(channels=128, fft_centered=False)
    assert load_model_config("rim_direct")[1] == RIMConfig(channels=128, time_steps=16)
    assert load_model_config("cirim_mridc")[1] == CIRIMConfig(
        cascade_gradients=False, carry_hidden_state=False
    )
    assert load_model_config("recurrentvarnet_cc")[1] == RecurrentVarNetConfig(
        refine_coil_maps=True, fft_centered=False
    )


def test_registry_name_without_a_file_gives_the_defaults(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    (tmp_path / "rim.yaml").write_text("model: rim\nchannels: 32\n")
    assert load_model_config("rim") == ("rim", RIMConfig(channels=32))  # the first folder wins
    (tmp_path / "rim.yaml").unlink()
    assert load_model_config("rim") == ("rim", RIMConfig())


def test_overrides() -> None:
    name, config = load_model_config("cirim", ["cascades=2", "cell=gru", "data_consistency=soft"])
    assert (name, config) == ("cirim", CIRIMConfig(cascades=2, cell="gru", data_consistency="soft"))
    assert load_model_config("rim", ["time_steps=3"])[1] == RIMConfig(time_steps=3)


def test_errors_name_the_file_and_what_is_allowed(tmp_path: Path) -> None:
    bad_key = tmp_path / "bad_key.yaml"
    bad_key.write_text("model: cirim\ncascade: 8\n")
    with pytest.raises(ConfigError, match="unknown key 'cascade'") as error:
        load_model_config(bad_key)
    assert str(bad_key) in error.value.one_line() and "cascades" in error.value.one_line()

    bad_value = tmp_path / "bad_value.yaml"
    bad_value.write_text("model: rim\ncell: lstm\n")
    with pytest.raises(ConfigError, match="'gru', 'mgu', 'indrnn'") as error:
        load_model_config(bad_value)
    assert str(bad_value) in error.value.one_line()

    negative = tmp_path / "negative.yaml"
    negative.write_text("model: recurrentvarnet\nsteps: 0\n")
    with pytest.raises(ConfigError, match="steps must be a positive integer"):
        load_model_config(negative)

    no_model = tmp_path / "no_model.yaml"
    no_model.write_text("channels: 3\n")
    with pytest.raises(ConfigError, match="needs a 'model' key"):
        load_model_config(no_model)

    unknown_model = tmp_path / "unknown_model.yaml"
    unknown_model.write_text("model: transformer\n")
    with pytest.raises(ConfigError, match="unknown model 'transformer'") as error:
        load_model_config(unknown_model)
    assert "cirim" in error.value.one_line()

    with pytest.raises(ConfigError, match="no model config named 'cirrim'") as error:
        load_model_config("cirrim")
    assert "cirim_knee" in error.value.one_line()

    with pytest.raises(ConfigError, match="config file not found"):
        load_model_config(tmp_path / "missing.yaml")

    with pytest.raises(ConfigError, match="initializer_multiscale"):
        RecurrentVarNetConfig(initializer_multiscale=5)
    with pytest.raises(ConfigError, match="data_consistency"):
        CIRIMConfig(data_consistency="hard")  # type: ignore[arg-type]
