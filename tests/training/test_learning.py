"""The whole chain learns: a short training lifts the validation SSIM clearly above zero-filled."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrirecon.training.config import train_config_from_mapping
from mrirecon.training.run import train
from tests.training.conftest import base_mapping
from tests.training.phantoms import PhantomSlices


@pytest.mark.slow
def test_short_training_beats_zero_filled(tiny_registered: str, tmp_path: Path) -> None:
    datasets = {
        "train": PhantomSlices(volumes=8, slices=2, train=True, seed=11, prefix="train"),
        "val": PhantomSlices(volumes=3, slices=2, train=False, seed=12, prefix="val"),
    }
    mapping = base_mapping(max_epochs=6)
    mapping["optim"] = {"lr": 3e-3}
    result = train(
        train_config_from_mapping(mapping), output_dir=tmp_path, datasets=datasets, echo=lambda _: None
    )
    val = result.val_metrics
    assert val["val_ssim"] > val["val_ssim_zero_filled"] + 0.03, val
    assert val["val_nmse"] < val["val_nmse_zero_filled"], val
