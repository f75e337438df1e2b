"""Every registered model trains one step and validates once (fast_dev_run) at a tiny size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl

from mrirecon.errors import ConfigError
from mrirecon.models.registry import get_entry, model_names
from mrirecon.training.config import train_config_from_mapping
from mrirecon.training.datamodule import ReconDataModule
from mrirecon.training.model_setup import model_config
from mrirecon.training.module import ReconModule
from mrirecon.training.run import train
from tests.training.conftest import base_mapping

#: Tiny settings per registered model (32×32 slices, 4 coils). A new model needs an entry here.
TINY_PARAMS: dict[str, dict[str, Any]] = {
    "rim": {"time_steps": 2, "channels": 4},
    "cirim": {"cascades": 2, "time_steps": 2, "channels": 4},
    "recurrentvarnet": {"steps": 2, "hidden_channels": 4, "layers": 2, "initializer_channels": [4, 4, 4, 4]},
    "unet": {"chans": 4, "num_pool_layers": 2},
    "e2e_varnet": {"num_cascades": 2, "chans": 4, "pools": 2, "sens_chans": 4, "sens_pools": 2},
    "zero_filled": {},
    "sense": {"iterations": 3},
    "cs_l1wavelet": {"iterations": 3, "coil_maps": "given"},
}


@pytest.mark.parametrize("name", model_names())
def test_one_training_step_and_one_validation_pass(name: str, phantom_data: dict, tmp_path: Path) -> None:
    assert name in TINY_PARAMS, f"add tiny settings for the new model '{name}' to TINY_PARAMS"
    mapping = base_mapping(fast_dev_run=True)
    mapping["model"] = {"name": name, "params": TINY_PARAMS[name]}
    config = train_config_from_mapping(mapping)
    if getattr(get_entry(name).model_class, "trainable", True):
        result = train(config, output_dir=tmp_path, datasets=phantom_data, echo=lambda _: None)
        metrics = result.val_metrics
    else:
        with pytest.raises(ConfigError, match="nothing to train"):
            train(config, output_dir=tmp_path, datasets=phantom_data, echo=lambda _: None)
        module = ReconModule(name, model_config(config))
        trainer = pl.Trainer(
            accelerator="cpu",
            fast_dev_run=True,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.validate(module, datamodule=ReconDataModule({"val": phantom_data["val"]}), verbose=False)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert 0 < metrics["val_ssim"] <= 1
    assert metrics["val_psnr"] > 0 and metrics["val_nmse"] > 0


@pytest.mark.parametrize("name", model_names())
def test_uncentred_k_space_gives_the_image_centred_k_space_gives(name: str) -> None:
    """The module hands a batch over in the model's FFT convention: a model without the setting
    (U-Net, E2E-VarNet, the baselines: centred) trained on uncentred data (Calgary-Campinas) sees
    the same image as on centred data, not one shifted by half the field of view."""
    from types import SimpleNamespace

    import torch

    from mrirecon.models.registry import build_model_from_mapping
    from mrirecon.physics import fft2c, sampled_in_convention

    generator = torch.Generator().manual_seed(0)
    shape = (1, 4, 32, 32)
    maps = torch.randn(shape, dtype=torch.complex64, generator=generator)
    maps = maps / maps.abs().square().sum(1, keepdim=True).sqrt()
    image = torch.randn(shape[:1] + shape[2:], dtype=torch.complex64, generator=generator)
    mask = torch.zeros(1, 1, 1, 32)
    mask[..., ::2] = 1
    mask[..., 13:19] = 1
    kspace = fft2c(maps * image[:, None]) * mask
    config = build_model_from_mapping(name, TINY_PARAMS[name]).config
    images = []
    for centered in (True, False):
        module = ReconModule(name, config, centered=centered).eval()
        torch.manual_seed(1)
        for parameter in module.parameters():  # the same weights in both conventions
            parameter.data.normal_(0, 0.1)
        k, m = sampled_in_convention(kspace, mask, centered=True, to_centered=centered)
        with torch.no_grad():
            images.append(module(SimpleNamespace(masked_kspace=k, mask=m, coil_maps=maps)).image)
    torch.testing.assert_close(images[1], images[0], rtol=1e-4, atol=1e-4 * float(images[0].abs().max()))
