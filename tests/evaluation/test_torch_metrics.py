"""The batched torch metrics equal the NumPy reference (and scikit-image), and SSIM is differentiable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from mrirecon.evaluation.metrics import volume_metrics
from mrirecon.evaluation.torch_metrics import nmse_torch, psnr_torch, ssim_torch, volume_metrics_torch
from tests.evaluation.synthetic import phantom


def _volumes(dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    gt = phantom(4, 64, 56, seed=0).astype(dtype) * 3e-4  # fastMRI-like intensities (max about 3e-4)
    rng = np.random.default_rng(1)
    pred = (gt + 0.03 * gt.max() * rng.standard_normal(gt.shape)).astype(dtype)
    return gt, pred


def test_ssim_matches_skimage_per_sample_with_per_sample_ranges(device: torch.device) -> None:
    gt, pred = _volumes()
    ranges = np.array([s.max() for s in gt])
    out = ssim_torch(
        torch.from_numpy(pred).to(device), torch.from_numpy(gt).to(device), torch.from_numpy(ranges)
    )
    assert out.shape == (4,)
    expected = [structural_similarity(g, p, data_range=r) for g, p, r in zip(gt, pred, ranges)]
    np.testing.assert_allclose(out.cpu().numpy(), expected, atol=1e-5)
    # (B, 1, H, W) works the same
    again = ssim_torch(
        torch.from_numpy(pred)[:, None], torch.from_numpy(gt)[:, None], torch.from_numpy(ranges)
    )
    np.testing.assert_allclose(again.numpy(), out.cpu().numpy(), atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_volume_metrics_agree_with_the_numpy_reference(dtype: type, device: torch.device) -> None:
    gt, pred = _volumes(dtype)
    reference = volume_metrics(gt, pred)
    out = volume_metrics_torch(torch.from_numpy(gt).to(device), torch.from_numpy(pred).to(device))
    assert float(out["ssim"]) == pytest.approx(reference["ssim"], abs=1e-4 if dtype == np.float32 else 1e-10)
    assert float(out["psnr"]) == pytest.approx(reference["psnr"], abs=1e-4)
    assert float(out["nmse"]) == pytest.approx(reference["nmse"], rel=1e-4)


def test_known_values_and_batching() -> None:
    x = torch.rand(3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(ssim_torch(x, x, 1.0), torch.ones(3, dtype=torch.float64))
    pred = x * 0.9
    # NMSE of a 10 % scaling is 0.01; PSNR with peak 1 is 10·log10(1/MSE)
    torch.testing.assert_close(nmse_torch(pred, x), torch.full((3,), 0.01, dtype=torch.float64))
    mse = ((x - pred) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(psnr_torch(pred, x, 1.0), 10 * torch.log10(1 / mse))
    # each sample is scored on its own: a batch equals its parts
    single = torch.stack([ssim_torch(pred[i : i + 1], x[i : i + 1], 1.0)[0] for i in range(3)])
    torch.testing.assert_close(ssim_torch(pred, x, 1.0), single)


def test_ssim_is_differentiable_and_usable_as_a_loss() -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 12, 12, dtype=torch.float64, generator=generator)
    pred = (target + 0.1 * torch.rand(2, 12, 12, dtype=torch.float64, generator=generator)).requires_grad_()
    data_range = torch.tensor([1.0, 1.2], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: ssim_torch(p, target, data_range), (pred,))
    loss = (1 - ssim_torch(pred, target, data_range)).mean()
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_bad_input_is_rejected() -> None:
    x = torch.rand(2, 16, 16)
    with pytest.raises(TypeError, match="magnitude"):
        ssim_torch(x.to(torch.complex64), x, 1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        ssim_torch(x, torch.rand(2, 16, 15), 1.0)
    with pytest.raises(ValueError, match="one value per sample"):
        ssim_torch(x, x, torch.ones(3))
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        ssim_torch(torch.rand(16, 16), torch.rand(16, 16), 1.0)
    with pytest.raises(ValueError, match="window"):
        ssim_torch(torch.rand(1, 5, 5), torch.rand(1, 5, 5), 1.0)
