"""Losses: fastMRI's SSIM agrees with scikit-image, weighted sums, and the multi-step weighting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from mrirecon.shapes import center_crop
from mrirecon.training.losses import (
    ReconLoss,
    crop_to_target,
    image_loss,
    l1_loss,
    l2_loss,
    per_slice_max,
    ssim_loss,
    step_weights,
)


def _smooth_pair(seed: int, shape: tuple[int, int] = (40, 36)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]] / 10.0
    ref = np.abs(np.sin(x * rng.uniform(0.5, 2)) * np.cos(y * rng.uniform(0.5, 2))) * rng.uniform(0.5, 3)
    rec = ref + 0.1 * rng.standard_normal(shape)
    return ref.astype(np.float32), np.abs(rec).astype(np.float32)


def test_ssim_loss_agrees_with_scikit_image_per_sample_data_range() -> None:
    pairs = [_smooth_pair(s) for s in range(3)]
    ranges = [float(ref.max()) * f for (ref, _), f in zip(pairs, (1.0, 1.3, 2.0))]
    target = torch.from_numpy(np.stack([p[0] for p in pairs]))
    pred = torch.from_numpy(np.stack([p[1] for p in pairs]))
    expected = [structural_similarity(ref, rec, data_range=r) for (ref, rec), r in zip(pairs, ranges)]
    # one sample at a time: 1 − loss is that sample's SSIM
    for i in range(3):
        loss = ssim_loss(pred[i : i + 1], target[i : i + 1], torch.tensor([ranges[i]]))
        assert abs((1 - float(loss)) - expected[i]) < 1e-4
    # the batch: the mean over samples, each with its own data range
    loss = ssim_loss(pred, target, torch.tensor(ranges))
    assert abs((1 - float(loss)) - float(np.mean(expected))) < 1e-4


def test_ssim_loss_is_differentiable() -> None:
    ref, rec = _smooth_pair(4, (12, 11))
    target = torch.from_numpy(ref).double()[None]
    pred = torch.from_numpy(rec).double()[None].requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: ssim_loss(p, target, float(ref.max())), (pred,))
    assert float(ssim_loss(target, target, 1.0)) == pytest.approx(0.0, abs=1e-12)


def test_l1_l2_and_weighted_sum_known_values() -> None:
    target = torch.zeros(2, 8, 8)
    pred = torch.full((2, 8, 8), 0.5)
    assert float(l1_loss(pred, target)) == pytest.approx(0.5)
    assert float(l2_loss(pred, target)) == pytest.approx(0.25)
    ref, rec = (torch.from_numpy(a)[None] for a in _smooth_pair(5))
    total = image_loss(rec, ref, 3.0, {"l1": 0.2, "l2": 2.0, "ssim": 0.7})
    parts = 0.2 * l1_loss(rec, ref) + 2.0 * l2_loss(rec, ref) + 0.7 * ssim_loss(rec, ref, 3.0)
    assert float(total) == pytest.approx(float(parts), rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        image_loss(rec[:, :10], ref, 1.0, {"l1": 1.0})


def test_step_weights_match_cirim_rim_and_recurrentvarnet() -> None:
    # ATOMMIC's CIRIM: logspace(-1, 0, 8) / 8
    expected = [0.1, 0.139, 0.193, 0.268, 0.373, 0.518, 0.72, 1.0]
    got = [w * 8 for w in step_weights(8, "logspace")]
    assert got == pytest.approx(expected, abs=1e-3)
    assert [w * 5 for w in step_weights(5, "logspace")] == pytest.approx(
        [0.1, 0.178, 0.316, 0.562, 1.0], abs=1e-3
    )
    assert step_weights(4, "uniform") == [0.25] * 4
    assert step_weights(3, "final") == [0.0, 0.0, 1.0]
    assert step_weights(1, "logspace") == [1.0]
    with pytest.raises(ValueError):
        step_weights(0, "uniform")


def test_multi_step_loss_is_the_weighted_sum_over_cascades_and_time_steps() -> None:
    torch.manual_seed(0)
    target = torch.rand(2, 10, 10) + 0.5
    data_range = target.flatten(1).amax(1)
    # estimates (B, 12, 12) complex, larger than the target: the loss crops them
    steps = [[torch.randn(2, 12, 12, dtype=torch.complex64) for _ in range(3)] for _ in range(2)]
    terms = {"l1": 1.0, "ssim": 0.5}
    loss = ReconLoss(terms, time_weighting="logspace", cascade_weighting="uniform")
    expected = 0.0
    for v, cascade in zip(step_weights(2, "uniform"), steps):
        for w, est in zip(step_weights(3, "logspace"), cascade):
            expected += v * w * float(image_loss(center_crop(est.abs(), (10, 10)), target, data_range, terms))
    assert float(loss(steps, target, data_range)) == pytest.approx(expected, rel=1e-5)


def test_per_slice_max_normalisation_is_atommics_loss() -> None:
    """ATOMMIC: |p|/max|p| and |t|/max|t| per slice, then L1 and SSIM with data range 1 (by hand)."""
    refs, recs = zip(*(_smooth_pair(seed) for seed in (3, 4)))
    target = torch.from_numpy(np.stack(refs)) * 7.0  # any scale: the normalisation removes it
    pred = torch.from_numpy(np.stack(recs)).to(torch.complex64) * (0.5 - 0.5j)
    loss = ReconLoss({"l1": 0.1, "ssim": 0.9}, normalize="per_slice_max")
    got = float(loss([[pred]], target, target.flatten(1).amax(1)))
    expected = []
    for rec, ref in zip(np.abs(pred.numpy()), target.numpy()):
        p, t = rec / rec.max(), ref / ref.max()
        ssim = structural_similarity(t, p, win_size=7, data_range=1.0)
        expected.append((np.abs(p - t).mean(), ssim))
    l1 = float(np.mean([e[0] for e in expected]))
    ssim = float(np.mean([e[1] for e in expected]))
    assert got == pytest.approx(0.1 * l1 + 0.9 * (1 - ssim), rel=1e-4)
    # the default compares in the network's scale
    plain = float(ReconLoss({"l1": 1.0})([[pred]], target, 1.0))
    assert plain == pytest.approx(float((pred.abs() - target).abs().mean()), rel=1e-5)
    assert per_slice_max(torch.zeros(1, 3, 3)).abs().sum() == 0  # an empty slice stays empty
    with pytest.raises(ValueError, match="unknown normalize"):
        ReconLoss({"l1": 1.0}, normalize="volume")  # type: ignore[arg-type]


def test_final_weighting_gives_no_gradient_to_earlier_steps() -> None:
    target = torch.rand(1, 8, 8)
    steps = [
        [torch.randn(1, 8, 8, dtype=torch.complex64, requires_grad=True) for _ in range(2)] for _ in range(2)
    ]
    ReconLoss({"l2": 1.0}, "final", "final")(steps, target, 1.0).backward()
    assert steps[1][1].grad is not None and float(steps[1][1].grad.abs().sum()) > 0
    assert all(s.grad is None for s in (steps[0][0], steps[0][1], steps[1][0]))
    with pytest.raises(ValueError, match="no estimates"):
        ReconLoss({"l1": 1.0})([[]], target, 1.0)
    with pytest.raises(ValueError, match="unknown loss"):
        ReconLoss({"huber": 1.0})


def test_center_crop_and_crop_to_target() -> None:
    x = torch.arange(6 * 7).reshape(1, 6, 7)
    crop = center_crop(x, (2, 3))
    assert crop.tolist() == [[[16, 17, 18], [23, 24, 25]]]
    # an estimate narrower than the target crops the target too (fastMRI's rule)
    a, b = crop_to_target(torch.zeros(1, 10, 4), torch.zeros(1, 6, 6))
    assert a.shape == b.shape == (1, 6, 4)
    with pytest.raises(ValueError):
        center_crop(x, (7, 7))
    assert math.isfinite(float(ssim_loss(torch.rand(1, 7, 7), torch.rand(1, 7, 7), 1.0)))


def test_the_lesion_term_weighs_the_error_around_lesions_only() -> None:
    from mrirecon.training.losses import lesion_l1_loss

    target = torch.ones(1, 32, 32)
    labels = torch.zeros(1, 32, 32, dtype=torch.int16)
    labels[0, 10:13, 10:13] = 1
    blurred = target.clone()
    blurred[0, 10:13, 10:13] = 0.5  # the lesion's contrast lost
    far = target.clone()
    far[0, 25:28, 25:28] = 0.5  # the same error away from any lesion
    assert float(lesion_l1_loss(blurred, target, labels)) == pytest.approx(9 * 0.5 / 81)
    assert float(lesion_l1_loss(far, target, labels)) == 0.0
    assert float(lesion_l1_loss(blurred, target, torch.zeros((1, 0, 0)))) == 0.0
    loss = ReconLoss({"l1": 1.0, "lesion_l1": 2.0})
    with_labels = float(loss([[blurred]], target, 1.0, labels))
    assert with_labels == pytest.approx(float(loss([[blurred]], target, 1.0)) + 2 * 9 * 0.5 / 81)


def test_the_lesion_terms_follow_the_crop_of_an_estimate_smaller_than_its_target() -> None:
    """fastMRI crops the target to a smaller estimate; the labels are cropped with it (they were
    dropped, and the lesion terms with them)."""
    target, labels = _lesion_scene(2)  # (1, 64, 64)
    blurred = torch.nn.functional.avg_pool2d(target[None], 3, stride=1, padding=1, count_include_pad=False)[0]
    small = blurred[:, 4:-4, 4:-4]  # (1, 56, 56): the target and labels are cropped to it
    loss = ReconLoss({"l1": 1.0, "lesion_l1": 1.0, "lesion_contrast": 0.5})
    cropped = ReconLoss({"l1": 1.0, "lesion_l1": 1.0, "lesion_contrast": 0.5})
    got = float(loss([[small]], target, 1.0, labels))
    expected = float(cropped([[small]], target[:, 4:-4, 4:-4], 1.0, labels[:, 4:-4, 4:-4]))
    assert got == pytest.approx(expected, rel=1e-6)
    assert got > float(loss([[small]], target, 1.0))  # the lesion terms count


def _lesion_scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A textured 64 × 64 slice with three lesions (one touching air), ``(1, h, w)`` each."""
    gen = torch.Generator().manual_seed(seed)
    target = 1.0 + 0.1 * torch.rand(1, 64, 64, generator=gen)
    target[0, :, :6] = 0.01  # air at the left edge: not ring
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    labels = torch.zeros(1, 64, 64, dtype=torch.int16)
    lesions = [(20, 20, 3.0, 1.8), (40, 44, 4.5, 0.5), (30, 9, 2.5, 1.5)]  # row, column, radius, factor
    for k, (r, c, radius, factor) in enumerate(lesions, 1):
        inside = (yy - r) ** 2 + (xx - c) ** 2 <= radius**2
        labels[0][inside] = k
        target[0][inside] *= factor
    return target, labels


def test_the_contrast_term_is_the_lesion_metric_p_minus_one() -> None:
    """Oracle: per lesion, the loss's contrast equals measure_lesions' on the same images."""
    from mrirecon.evaluation.lesion import RingGeometry, measure_lesions
    from mrirecon.training.losses import lesion_contrast_loss, lesion_ring_weights

    target, labels = _lesion_scene()
    pred = torch.nn.functional.avg_pool2d(target[None], 3, stride=1, padding=1, count_include_pad=False)[0]
    measures = measure_lesions(target.numpy(), pred.numpy(), labels.numpy())
    weights = lesion_ring_weights(target, labels)
    _, ring, valid = weights
    assert valid.tolist() == [[True, True, True]]
    expected = []
    for k, m in enumerate(measures):
        ring_k = ring[0, k].numpy().astype(bool)
        assert ring_k.sum() == m.ring_pixels  # the metric's ring, air and other lesions excluded
        expected.append(abs(m.preservation - 1))
    assert float(lesion_contrast_loss(pred, target, weights)) == pytest.approx(np.mean(expected), rel=1e-4)
    narrow = RingGeometry(gap=1.0, width=2.0)  # the metric's geometry object sets the loss's ring too
    _, ring, _ = lesion_ring_weights(target, labels, narrow)
    counts = [
        m.ring_pixels for m in measure_lesions(target.numpy(), pred.numpy(), labels.numpy(), geometry=narrow)
    ]
    assert ring[0].sum(dim=(-2, -1)).tolist() == counts
    assert float(lesion_contrast_loss(target, target, weights)) == pytest.approx(0.0, abs=1e-6)
    # blurring loses contrast: the loss grows with the blur and its gradient restores it
    wider = torch.nn.functional.avg_pool2d(target[None], 5, stride=1, padding=2, count_include_pad=False)[0]
    blur3 = float(lesion_contrast_loss(pred, target, weights))
    assert float(lesion_contrast_loss(wider, target, weights)) > blur3 > 0.05
    x = pred.clone().requires_grad_(True)
    lesion_contrast_loss(x, target, weights).backward()
    assert x.grad is not None
    hyper = labels[0] == 1
    assert float(x.grad[0][hyper].sum()) < 0  # raise the hyperintense lesion
    hypo = labels[0] == 2
    assert float(x.grad[0][hypo].sum()) > 0  # lower the hypointense one


def test_the_contrast_term_in_the_recon_loss() -> None:
    target, labels = _lesion_scene(1)
    blurred = torch.nn.functional.avg_pool2d(target[None], 3, stride=1, padding=1, count_include_pad=False)[0]
    loss = ReconLoss({"l1": 1.0, "lesion_contrast": 0.5})
    assert loss.lesion_weight == 0.5
    plain = float(loss([[blurred]], target, 1.0))
    from mrirecon.training.losses import lesion_contrast_loss, lesion_ring_weights

    extra = float(lesion_contrast_loss(blurred, target, lesion_ring_weights(target, labels)))
    assert float(loss([[blurred]], target, 1.0, labels)) == pytest.approx(plain + 0.5 * extra)
    assert float(loss([[blurred]], target, 1.0, torch.zeros_like(labels))) == pytest.approx(plain)
    assert ReconLoss({"l1": 1.0}).lesion_weight == 0.0


def _consistency_scene(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random complex image (2, 12, 10), coil maps (2, 3, 12, 10), line mask and noisy data."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(2, 12, 10, dtype=torch.complex64, generator=gen)
    maps = torch.randn(2, 3, 12, 10, dtype=torch.complex64, generator=gen)
    mask = (torch.rand(2, 1, 1, 10, generator=gen) < 0.5).float()
    mask[..., 5] = 1.0
    noise = 0.1 * torch.randn(2, 3, 12, 10, dtype=torch.complex64, generator=gen)
    return image, maps, mask, noise


def test_the_consistency_term_is_the_relative_residual_against_numpy() -> None:
    from mrirecon.physics import MultiCoilOperator
    from mrirecon.training.losses import consistency_loss

    image, maps, mask, noise = _consistency_scene(3)

    def centred_fft(x: np.ndarray) -> np.ndarray:
        axes = (-2, -1)
        return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=axes), norm="ortho"), axes=axes)

    m = mask.numpy()
    clean = centred_fft(maps.numpy() * image.numpy()[:, None]) * m
    measured = clean + noise.numpy() * m
    other = image.numpy() + 0.3
    expected = np.mean(
        [
            np.linalg.norm(centred_fft(maps.numpy()[b] * other[b]) * m[b] - measured[b])
            / np.linalg.norm(measured[b])
            for b in range(2)
        ]
    )
    operator = MultiCoilOperator(maps, mask)
    got = consistency_loss(torch.from_numpy(other), operator, torch.from_numpy(measured))
    assert float(got) == pytest.approx(expected, rel=1e-4)
    # an estimate that reproduces every sample has no residual, whatever the unsampled k-space holds
    assert float(consistency_loss(image, operator, torch.from_numpy(clean))) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="complex"):
        consistency_loss(image.abs(), operator, torch.from_numpy(clean))


def test_the_consistency_term_sees_the_phase_that_the_image_losses_do_not() -> None:
    from mrirecon.physics import MultiCoilOperator
    from mrirecon.training.losses import consistency_loss

    image, maps, mask, _ = _consistency_scene(4)
    operator = MultiCoilOperator(maps, mask)
    measured = operator.forward(image)
    rotated = image * complex(math.cos(0.3), math.sin(0.3))
    target = image.abs()
    plain, with_dc = ReconLoss({"l1": 1.0}), ReconLoss({"l1": 1.0, "dc": 0.5}, time_weighting="uniform")
    assert float(plain([[rotated]], target, 1.0)) == pytest.approx(0.0, abs=1e-6)
    steps = [[image, rotated]]
    # a global phase θ leaves a relative residual |e^{iθ} − 1| = 2 sin(θ / 2)
    assert float(consistency_loss(rotated, operator, measured)) == pytest.approx(2 * math.sin(0.15), rel=1e-5)
    expected = 0.5 * 0.5 * 2 * math.sin(0.15)  # the uniform weight of the second step, the dc weight
    assert float(with_dc(steps, target, 1.0, data=(operator, measured))) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="measured k-space"):
        with_dc(steps, target, 1.0)


def test_lesion_rings_of_a_batch_are_each_slices_own() -> None:
    """The ring's air threshold is each slice's (``background_fraction`` of its own maximum): a
    dim slice batched with a ten times brighter one keeps the ring it has alone."""
    from mrirecon.training.losses import lesion_ring_weights

    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    head = (((yy - 24) ** 2 + (xx - 24) ** 2) < 20**2).float()
    dim = head * (0.2 + 0.02 * xx / 48)  # tissue well above air, with a little texture
    labels = torch.zeros(48, 48, dtype=torch.int64)
    labels[((yy - 24) ** 2 + (xx - 30) ** 2) < 9] = 1
    alone = lesion_ring_weights(dim[None], labels[None])
    batched = lesion_ring_weights(torch.stack([dim, 10 * dim]), torch.stack([labels, labels]))
    for one, both in zip(alone, batched, strict=True):
        torch.testing.assert_close(both[:1], one)
        torch.testing.assert_close(both[1:], one)
    assert float(alone[1].sum()) > 0
