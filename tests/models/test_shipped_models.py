"""Every shipped pretrained model loads by name and reconstructs a simulated brain clearly better than
zero-filling (on CUDA too when one is present)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mrirecon.data.realistic import RealisticOptions
from mrirecon.data.realistic_dataset import simulate_realistic_dataset
from mrirecon.data.transforms import ReconTransform
from mrirecon.data.volume import open_volume
from mrirecon.evaluation.metrics import head_mask, masked_metrics
from mrirecon.inference.loading import load_reconstructor
from mrirecon.masks import create_mask_func
from mrirecon.models.base import Reconstructor
from mrirecon.models.pretrained import PRETRAINED, read_safetensors_model
from mrirecon.models.registry import build_model
from mrirecon.shapes import center_crop

#: Head PSNR a shipped model must gain over the zero-filled image at equispaced 4x (dB).
MARGIN_DB = 2.0
MAX_TOTAL_MB = 25.0


@pytest.fixture(scope="module")
def brain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One held-out simulated brain volume (2 slices, 8 coils, lesions), seeds unlike training's."""
    folder = tmp_path_factory.mktemp("shipped")
    options = RealisticOptions(rows=(144, 144), coils=(8, 8), lesion_probability=1.0)
    (path,) = simulate_realistic_dataset(
        folder,
        anatomy="mni",
        volumes=1,
        slices=2,
        seed=4242,
        options=options,
        split=(0, 0, 1),
        progress=False,
    )
    return path


def _head_psnr(model: Reconstructor, path: Path, device: torch.device) -> float:
    transform = ReconTransform(
        create_mask_func("equispaced_fraction", [0.08], [4], seed=0), deterministic_mask=True, coil_maps="acs"
    )
    model = model.to(device).eval()
    recons, targets = [], []
    with open_volume(path) as vol:
        for s in range(vol.num_slices):
            sample = transform(vol, s)
            with torch.no_grad():
                out = model(
                    sample.masked_kspace[None].to(device),
                    sample.mask[None].to(device),
                    sample.coil_maps[None].to(device),
                )
            recons.append(center_crop((out.image[0].abs().cpu() * sample.scale).numpy(), sample.crop_size))
            target = vol.read_target(s)
            assert target is not None
            targets.append(target)
    reference = np.stack(targets).astype(np.float32)
    return masked_metrics(reference, np.stack(recons), head_mask(reference))["psnr"]


def test_the_shipped_weights_are_all_there_and_small() -> None:
    sizes = {name: entry.path.stat().st_size for name, entry in PRETRAINED.items() if entry.path.is_file()}
    assert set(sizes) == set(PRETRAINED), f"missing weights: {set(PRETRAINED) - set(sizes)}"
    assert sum(sizes.values()) / 1e6 <= MAX_TOTAL_MB


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PRETRAINED))
def test_a_shipped_model_beats_zero_filling_by_name(
    name: str, brain: Path, device: torch.device, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle or torch.load was used")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    loaded = load_reconstructor(name)
    registry_name, _, card = read_safetensors_model(PRETRAINED[name].path)
    assert loaded.name == registry_name and loaded.checkpoint == PRETRAINED[name].path
    assert card["name"] == name and "not for diagnosis" in card["use"]
    zero_filled = build_model("zero_filled")
    learned, baseline = _head_psnr(loaded.model, brain, device), _head_psnr(zero_filled, brain, device)
    assert learned >= baseline + MARGIN_DB, f"{name}: {learned:.2f} dB vs zero-filled {baseline:.2f} dB"
