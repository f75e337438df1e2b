"""The baselines in the registry: built from their config files, output shapes for single- and
multi-coil inputs of odd and even sizes, saving and reloading, and classical models without weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mrirecon.config import load_yaml
from mrirecon.errors import CheckpointError, ConfigError
from mrirecon.models import load_model_config
from mrirecon.models.io import load_model, model_from_payload, model_payload, save_model
from mrirecon.models.registry import (
    build_model,
    build_model_from_mapping,
    config_mapping,
    default_config,
    model_names,
    parameter_count,
)
from tests.models.baselines_scenes import birdcage_maps, measure, project_mask, sparse_phantom

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "models"
BASELINES = ["zero_filled", "sense", "cs_l1wavelet", "unet", "e2e_varnet"]
CLASSICAL = ["zero_filled", "sense", "cs_l1wavelet"]
LEARNED = ["unet", "e2e_varnet"]
#: Small but complete variants for the shape tests (the defaults run in the gradient tests).
FAST = {
    "cs_l1wavelet": {"iterations": 5, "espirit_calib_width": 10, "espirit_kernel_width": 4},
    "e2e_varnet": {"num_cascades": 2, "chans": 4, "sens_chans": 4},
    "unet": {"chans": 8},
}


def scene(
    coils: int, height: int, width: int, device: torch.device | str = "cpu", batch: int = 1
) -> tuple[torch.Tensor, ...]:
    maps = (
        birdcage_maps(coils, height, width)
        if coils > 1
        else torch.ones(1, 1, height, width, dtype=torch.complex64)
    )
    mask = project_mask("poisson2d", height, width, 3, 0.4)
    kspace = measure(sparse_phantom(height, width), maps, mask, noise=0.01)
    expand = (batch, -1, -1, -1)
    return tuple(t.expand(*expand).contiguous().to(device) for t in (kspace, mask, maps))


def test_every_baseline_is_registered_with_its_kind() -> None:
    names = model_names()
    for name in BASELINES:
        assert name in names
        model = build_model(name)
        assert model.trainable is (name in LEARNED)
        assert (parameter_count(model) > 0) is (name in LEARNED)


@pytest.mark.parametrize("name", BASELINES)
def test_config_file_holds_the_defaults_and_builds_the_model(name: str) -> None:
    mapping = load_yaml(CONFIGS / f"{name}.yaml")
    assert mapping.pop("model") == name
    assert mapping == config_mapping(default_config(name))
    assert load_model_config(name) == (name, default_config(name))
    model = build_model_from_mapping(name, mapping)
    assert type(model) is type(build_model(name))
    assert model.config == default_config(name)


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("sense", "iterations", 0),
        ("sense", "regularization", -1.0),
        ("cs_l1wavelet", "wavelet", "no-such-wavelet"),
        ("cs_l1wavelet", "coil_maps", "guessed"),
        ("unet", "drop_prob", 1.5),
        ("e2e_varnet", "num_cascades", 0),
        ("e2e_varnet", "colormaps", "learned"),
        ("zero_filled", "combine", "mean"),
    ],
)
def test_bad_config_values_are_config_errors(name: str, key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key if key != "colormaps" else "unknown key"):
        build_model_from_mapping(name, {key: value})


def test_default_parameter_counts_are_pinned() -> None:
    """fastMRI's U-Net (2 channels in and out) and E2E-VarNet at their papers' settings."""
    counts = {name: parameter_count(build_model(name)) for name in LEARNED}
    print("baseline parameter counts:", counts)
    assert counts == {"unet": 7_756_418, "e2e_varnet": 29_936_966}


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize(
    ("coils", "height", "width"), [(1, 24, 20), (6, 25, 19)], ids=["1coil-even", "6coil-odd"]
)
def test_output_shapes(name: str, coils: int, height: int, width: int, device: torch.device) -> None:
    torch.manual_seed(0)
    model = build_model_from_mapping(name, FAST.get(name, {})).to(device).eval()
    kspace, mask, maps = scene(coils, height, width, device, batch=2)
    with torch.no_grad():
        out = model(kspace, mask, maps)
    assert out.image.shape == (2, height, width)
    assert out.image.dtype == torch.complex64
    assert out.image.device.type == device.type
    assert len(out.steps) == 1 and out.steps[-1][-1] is out.image
    assert bool(torch.isfinite(out.image).all())
    assert float(out.image.abs().max()) > 0


@pytest.mark.parametrize("name", BASELINES)
def test_wrong_shapes_are_refused(name: str) -> None:
    model = build_model_from_mapping(name, FAST.get(name, {}))
    kspace, mask, maps = scene(4, 24, 20)
    with pytest.raises(ValueError, match="coil_maps"):
        model(kspace, mask, maps[:, :3])
    with pytest.raises(ValueError, match="mask"):
        model(kspace, mask[..., :10], maps)
    with pytest.raises(TypeError, match="complex"):
        model(kspace.abs(), mask, maps)


@pytest.mark.parametrize("name", CLASSICAL)
def test_classical_models_need_no_weights(name: str) -> None:
    config = build_model_from_mapping(name, FAST.get(name, {})).config
    payload = model_payload(name, config)
    assert "state_dict" not in payload
    built_name, model = model_from_payload(payload)
    assert built_name == name and model.config == config
    kspace, mask, maps = scene(4, 24, 20)
    assert torch.equal(model(kspace, mask, maps).image, build_model(name, config)(kspace, mask, maps).image)


@pytest.mark.parametrize("name", LEARNED)
def test_learned_models_refuse_a_payload_without_weights(name: str) -> None:
    with pytest.raises(CheckpointError, match="no weights"):
        model_from_payload(model_payload(name, default_config(name)))


@pytest.mark.parametrize("name", LEARNED)
def test_save_and_reload_give_identical_outputs(name: str, tmp_path: Path, device: torch.device) -> None:
    torch.manual_seed(0)
    model = build_model_from_mapping(name, FAST[name]).to(device)
    with torch.no_grad():  # move the weights away from their initial values (dc weights start at 1)
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    kspace, mask, maps = scene(4, 25, 19, device)
    with torch.no_grad():
        before = model(kspace, mask, maps).image
    path = save_model(tmp_path / "model.pt", name, model.config, model)
    loaded_name, loaded = load_model(path, map_location=device)
    assert loaded_name == name
    with torch.no_grad():
        after = loaded.to(device)(kspace, mask, maps).image
    assert torch.equal(before, after)


def test_register_model_adds_and_removes_a_plugin_model() -> None:
    from dataclasses import dataclass

    from mrirecon.errors import ConfigError
    from mrirecon.models.baselines import ZeroFilled
    from mrirecon.models.registry import build_model, model_names, register_model, unregister_model

    @dataclass(frozen=True)
    class PluginConfig:
        pass

    class Plugin(ZeroFilled):
        def __init__(self, config: PluginConfig) -> None:
            super().__init__()

    register_model("plugin", Plugin, PluginConfig, "a plug-in")
    try:
        assert "plugin" in model_names() and isinstance(build_model("plugin"), Plugin)
        with pytest.raises(ConfigError, match="registered already"):
            register_model("plugin", ZeroFilled, PluginConfig)
        with pytest.raises(ConfigError, match="must be a dataclass"):
            register_model("other", Plugin, object)
    finally:
        unregister_model("plugin")
    assert "plugin" not in model_names()
    with pytest.raises(ConfigError, match="built in"):
        unregister_model("cirim")
