"""fastMRI metrics agree with scikit-image's fastMRI-style computation, and known answers."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mrirecon.evaluation.metrics import nmse, psnr, ssim, ssim_slice


def skimage_fastmri_ssim(gt: np.ndarray, pred: np.ndarray) -> float:
    maxval = gt.max()
    return float(np.mean([structural_similarity(g, p, data_range=maxval) for g, p in zip(gt, pred)]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_agrees_with_skimage_on_random_volumes(dtype: type) -> None:
    rng = np.random.default_rng(0)
    gt = rng.random((4, 48, 40)).astype(dtype)
    pred = (gt + 0.05 * rng.standard_normal(gt.shape)).astype(dtype)
    assert ssim(gt, pred) == pytest.approx(skimage_fastmri_ssim(gt, pred), abs=1e-6)
    assert psnr(gt, pred) == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=gt.max()), abs=1e-6)
    expected_nmse = np.sum((gt.astype(np.float64) - pred) ** 2) / np.sum(gt.astype(np.float64) ** 2)
    assert nmse(gt, pred) == pytest.approx(expected_nmse, rel=1e-5)


def test_agrees_with_skimage_on_a_structured_image() -> None:
    """A smooth phantom-like volume whose slices differ in maximum: the volume max is the range."""
    y, x = np.mgrid[-1:1:64j, -1:1:64j]
    base = np.exp(-(x**2 + y**2) * 3)
    gt = np.stack([base * s for s in (0.5, 1.0, 2.0)]).astype(np.float32)
    pred = np.stack([np.roll(s, 1, axis=1) for s in gt]).astype(np.float32)
    assert ssim(gt, pred) == pytest.approx(skimage_fastmri_ssim(gt, pred), abs=1e-6)
    # the data range is the volume's maximum (2.0), not each slice's
    assert ssim_slice(gt[0], pred[0], gt.max()) == pytest.approx(
        structural_similarity(gt[0], pred[0], data_range=gt.max()), abs=1e-7
    )


def test_known_answers() -> None:
    gt = np.ones((2, 16, 16), dtype=np.float64)
    assert ssim(gt, gt) == pytest.approx(1.0)
    assert nmse(gt, gt) == 0.0
    pred = gt * 0.9  # error 0.1 everywhere: MSE 0.01, peak 1 → PSNR 20 dB, NMSE 0.01
    assert psnr(gt, pred) == pytest.approx(20.0)
    assert nmse(gt, pred) == pytest.approx(0.01)


def test_rejects_complex_and_mismatched_input() -> None:
    gt = np.ones((1, 8, 8))
    with pytest.raises(ValueError, match="magnitude"):
        ssim(gt.astype(complex), gt.astype(complex))
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(gt, np.ones((1, 8, 9)))
    with pytest.raises(ValueError, match="slices"):
        nmse(np.ones((8, 8)), np.ones((8, 8)))
