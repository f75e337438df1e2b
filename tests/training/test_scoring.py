"""Per-volume scores from per-slice records equal fastMRI's metrics on the assembled volumes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mrirecon.evaluation.metrics import volume_metrics
from mrirecon.training.scoring import gather_scores, mean_scores, slice_scores, unique_slices, volume_scores


def _volumes(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, slices in (("a.h5", 3), ("b.h5", 5)):
        y, x = np.mgrid[0:24, 0:20] / 6.0
        ref = np.stack([np.abs(np.sin(x + s) * np.cos(y * (1 + s / 4))) * 100 for s in range(slices)])
        rec = np.abs(ref + 5 * rng.standard_normal(ref.shape))
        out[name] = (ref.astype(np.float32), rec.astype(np.float32))
    return out


def test_volume_scores_match_fastmri_metrics_with_shuffled_batches_and_duplicates() -> None:
    volumes = _volumes()
    rows = [(name, s) for name, (ref, _) in volumes.items() for s in range(ref.shape[0])]
    rng = np.random.default_rng(1)
    order = [*rng.permutation(len(rows)).tolist(), 0, 3]  # two slices seen twice (a padded sampler)
    scores = []
    for start in range(0, len(order), 3):  # batches of 3 slices from different volumes
        batch = [rows[i] for i in order[start : start + 3]]
        ref_batch = torch.from_numpy(np.stack([volumes[n][0][s] for n, s in batch]))
        rec_batch = torch.from_numpy(np.stack([volumes[n][1][s] for n, s in batch]))
        peak = torch.tensor([float(volumes[n][0].max()) for n, _ in batch])
        scores += slice_scores(
            rec_batch, ref_batch, peak, [n for n, _ in batch], [s for _, s in batch], torch.ones(len(batch))
        )
    assert len(unique_slices(scores)) == len(rows)
    by_name = {v.fname: v for v in volume_scores(gather_scores(scores))}
    assert set(by_name) == set(volumes)
    for name, (ref, rec) in volumes.items():
        expected = volume_metrics(ref, rec)
        got = by_name[name]
        assert got.slices == ref.shape[0]
        assert got.ssim == pytest.approx(expected["ssim"], abs=1e-5)
        assert got.psnr == pytest.approx(expected["psnr"], abs=1e-4)
        assert got.nmse == pytest.approx(expected["nmse"], rel=1e-5)
        assert got.loss == pytest.approx(1.0)
    means = mean_scores(list(by_name.values()))
    assert means["volumes"] == 2
    assert means["ssim"] == pytest.approx(
        np.mean([volume_metrics(*v)["ssim"] for v in volumes.values()]), abs=1e-5
    )


def test_volumes_without_reference_are_left_out_and_empty_means_are_nan() -> None:
    zeros = torch.zeros(1, 8, 8)
    scores = slice_scores(torch.rand(1, 8, 8), zeros, torch.tensor([0.0]), ["p.h5"], [0])
    assert math.isnan(scores[0].loss)
    assert volume_scores(scores) == []
    assert math.isnan(mean_scores([])["ssim"])
    with pytest.raises(ValueError, match="file names"):
        slice_scores(torch.rand(2, 8, 8), torch.rand(2, 8, 8), torch.ones(2), ["x"], [0])


def test_the_modules_validation_scores_are_fastmris_on_the_input_scale(tiny_registered: str) -> None:
    """What a run logs as val_ssim/psnr/nmse (and their zero-filled twins) is fastMRI's
    volume_metrics of its reconstructions against the reference, both in the input's intensity
    scale: each slice has its own normalisation scale here, so a score taken on the normalised
    images, or with a data range not scaled back, differs."""
    from mrirecon.data.dataset import collate_samples
    from mrirecon.physics import ifft2c, rss
    from mrirecon.training.config import train_config_from_mapping
    from mrirecon.training.model_setup import model_config
    from mrirecon.training.module import ReconModule
    from tests.training.conftest import base_mapping
    from tests.training.phantoms import PhantomSlices

    config = train_config_from_mapping(base_mapping())
    torch.manual_seed(0)
    module = ReconModule("tiny", model_config(config), loss=config.loss, optim=config.optim).eval()
    data = PhantomSlices(volumes=2, slices=3, train=False, seed=2, prefix="val")
    samples = [data[i] for i in range(len(data))]
    assert len({round(s.scale, 6) for s in samples}) == len(samples)  # a scale per slice
    with torch.no_grad():
        module._score("val", collate_samples(samples))
        images = [
            module.model(s.masked_kspace[None], s.mask[None], s.coil_maps[None]).image.abs()[0] * s.scale
            for s in samples
        ]
    zero_filled = [rss(ifft2c(s.masked_kspace[None]))[0] * s.scale for s in samples]
    for key, recons in (("val", images), ("val_zero_filled", zero_filled)):
        got = {v.fname: v for v in volume_scores(module._scores[key])}
        for name in ("val000.h5", "val001.h5"):
            rows = [i for i, s in enumerate(samples) if s.fname == name]
            target = np.stack([(samples[i].target * samples[i].scale).numpy() for i in rows])
            expected = volume_metrics(target, np.stack([recons[i].numpy() for i in rows]))
            assert got[name].ssim == pytest.approx(expected["ssim"], rel=1e-4), key
            assert got[name].psnr == pytest.approx(expected["psnr"], abs=1e-3), key
            assert got[name].nmse == pytest.approx(expected["nmse"], rel=1e-4), key


def test_a_nan_reconstruction_scores_nan_not_a_perfect_psnr() -> None:
    """A NaN mse passed `mse > 0` as False and scored PSNR +inf, the figure of a perfect volume."""
    target = torch.rand(1, 8, 8) + 0.5
    pred = target.clone()
    pred[0, 0, 0] = math.nan
    [volume] = volume_scores(slice_scores(pred, target, torch.tensor([1.5]), ["v.h5"], [0]))
    assert math.isnan(volume.psnr) and math.isnan(volume.nmse)
    [perfect] = volume_scores(slice_scores(target, target, torch.tensor([1.5]), ["v.h5"], [0]))
    assert perfect.psnr == math.inf
