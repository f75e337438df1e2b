"""fastMRI metrics agree with scikit-image's fastMRI-style computation, and known answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mrirecon.evaluation.aggregate import group_statistics, statistic
from mrirecon.evaluation.metrics import (
    atommic_metrics,
    calgary_campinas_psnr,
    calgary_campinas_ssim,
    nmse,
    psnr,
    ssim,
    ssim_slice,
    volume_metrics,
)


def skimage_fastmri_ssim(gt: np.ndarray, pred: np.ndarray) -> float:
    maxval = gt.max()
    return float(np.mean([structural_similarity(g, p, data_range=maxval) for g, p in zip(gt, pred)]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_agrees_with_skimage_on_random_volumes(dtype: type) -> None:
    rng = np.random.default_rng(0)
    gt: np.ndarray = rng.random((4, 48, 40)).astype(dtype)
    pred: np.ndarray = (gt + 0.05 * rng.standard_normal(gt.shape)).astype(dtype)
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


def _real_brain_volume(shared_data) -> tuple[np.ndarray, np.ndarray]:
    """A real anatomical image (zero-filled RSS of the SigPy brain) as 2 slices, and a degraded copy."""
    from scipy import ndimage

    kspace = np.load(shared_data / "sigpy_tutorial_brain_poisson" / "cartesian_ksp.npy")
    coil_images = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    image = np.sqrt((np.abs(coil_images) ** 2).sum(0)).astype(np.float32)
    gt = np.stack([image, image[:, ::-1]])
    rng = np.random.default_rng(3)
    pred = ndimage.gaussian_filter(gt, (0, 0.8, 0.8)) + 0.02 * gt.max() * rng.standard_normal(gt.shape)
    return gt, pred.astype(np.float32)


def test_agrees_with_skimage_on_a_real_brain_volume(shared_data) -> None:
    gt, pred = _real_brain_volume(shared_data)
    assert ssim(gt, pred) == pytest.approx(skimage_fastmri_ssim(gt, pred), abs=1e-6)
    assert psnr(gt, pred) == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=gt.max()), abs=1e-6)
    expected_nmse = np.sum((gt.astype(np.float64) - pred) ** 2) / np.sum(gt.astype(np.float64) ** 2)
    assert nmse(gt, pred) == pytest.approx(expected_nmse, rel=1e-5, abs=1e-6)
    assert 0.3 < ssim(gt, pred) < 0.99  # a degraded image: the test is not trivially at 1


def test_atommic_convention_normalises_each_image_by_its_own_maximum() -> None:
    """ATOMMIC's per-slice metrics by hand: |x|/max|x| each, SSIM range max(r, 1), PSNR range r."""
    rng = np.random.default_rng(2)
    gt = rng.random((3, 24, 20)) * np.array([1.0, 5.0, 20.0])[:, None, None]
    pred = gt * (1 + 0.1 * rng.standard_normal(gt.shape)) * 3.0  # a global scale: invisible here
    expected: dict[str, list[float]] = {"ssim": [], "psnr": [], "nmse": []}
    for g, p in zip(gt, pred):
        t, q = np.abs(g) / np.abs(g).max(), np.abs(p) / np.abs(p).max()
        r = max(t.max(), q.max()) - min(t.min(), q.min())
        expected["ssim"].append(structural_similarity(t, q, data_range=max(r, 1.0)))
        expected["psnr"].append(peak_signal_noise_ratio(t, q, data_range=r))
        expected["nmse"].append(float(np.linalg.norm(t - q) ** 2 / np.linalg.norm(t) ** 2))
    got = atommic_metrics(gt, pred)
    for name in ("ssim", "psnr", "nmse"):
        assert got[f"{name}_atommic"] == pytest.approx(np.mean(expected[name]), rel=1e-9, abs=1e-9)
    assert abs(got["ssim_atommic"] - ssim(gt, pred)) > 1e-3  # fastMRI's convention sees the scale
    with pytest.raises(ValueError, match="all zero"):
        atommic_metrics(np.zeros((1, 8, 8)), np.ones((1, 8, 8)))


def test_calgary_campinas_convention_is_per_slice_normalised() -> None:
    """The CC numbers equal scikit-image on each slice divided by its own maximum, range max−min of both."""
    rng = np.random.default_rng(1)
    gt = (
        rng.random((3, 32, 32)).astype(np.float32)
        * np.array([1.0, 5.0, 20.0], dtype=np.float32)[:, None, None]
    )
    pred = (gt * (1 + 0.1 * rng.standard_normal(gt.shape))).astype(np.float32)
    expected_ssim, expected_psnr = [], []
    for g, p in zip(gt, pred):
        g_n, p_n = g / g.max(), p / g.max()
        rng_ = max(g_n.max(), p_n.max()) - min(g_n.min(), p_n.min())
        expected_ssim.append(structural_similarity(g_n, p_n, data_range=rng_))
        expected_psnr.append(peak_signal_noise_ratio(g_n, p_n, data_range=rng_))
    assert calgary_campinas_ssim(gt, pred) == pytest.approx(np.mean(expected_ssim), abs=1e-6)
    assert calgary_campinas_psnr(gt, pred) == pytest.approx(np.mean(expected_psnr), abs=1e-6)
    # the slices differ 20-fold in intensity: the fastMRI volume range gives another number
    assert abs(calgary_campinas_ssim(gt, pred) - ssim(gt, pred)) > 1e-3


def test_aggregation_is_mean_and_two_sample_sd_over_volumes() -> None:
    import statistics

    values = [0.91, 0.93, 0.88, 0.95]
    stat = statistic(values)
    assert stat.n == 4
    assert stat.mean == pytest.approx(statistics.mean(values))
    assert stat.two_sd == pytest.approx(2 * statistics.stdev(values))  # ddof 1, like runstats
    assert stat.format() == f"{statistics.mean(values):.4g} ± {2 * statistics.stdev(values):.4g}"
    single = statistic([0.9, float("nan")])
    assert single.n == 1 and math.isnan(single.sd) and single.to_json()["sd"] is None
    # a volume that failed (NaN) is not in the mean, and the figure says so
    assert single.left_out == 1 and single.to_json()["left_out"] == 1
    assert single.format() == "0.9 (1 not finite)" and stat.left_out == 0
    failed = statistic([0.9, 0.8, float("nan")])
    assert failed.format().endswith(" (1 not finite)") and failed.n == 2
    assert statistic([float("nan")]).format() == "– (1 not finite)"
    assert statistic([float("nan")]).count == 1 and failed.count == 3  # the volumes scored, all of them


def test_groups_per_model_acquisition_and_acceleration_with_pooled_rows() -> None:
    rows = [
        {"model": "cirim", "acquisition": "AXT1", "acceleration": "4", "ssim": 0.9},
        {"model": "cirim", "acquisition": "AXT1", "acceleration": "4", "ssim": 0.8},
        {"model": "cirim", "acquisition": "AXT1", "acceleration": "8", "ssim": 0.7},
        {"model": "sense", "acquisition": "AXT1", "acceleration": "4", "ssim": 0.6},
    ]
    groups = group_statistics(rows, ["ssim"])
    keys = [(g["model"], g["acquisition"], g["acceleration"]) for g in groups]
    # cirim has two accelerations, so it gets a pooled group first; sense has one, so no copy of it
    assert keys == [
        ("cirim", "all", "all"),
        ("cirim", "AXT1", "4"),
        ("cirim", "AXT1", "8"),
        ("sense", "AXT1", "4"),
    ]
    assert groups[0]["ssim"].mean == pytest.approx(0.8) and groups[0]["ssim"].n == 3
    assert groups[1]["ssim"].mean == pytest.approx(0.85)


def test_head_mask_and_masked_metrics_score_only_the_head() -> None:
    from mrirecon.evaluation.metrics import head_mask, masked_metrics, ssim_map

    rng = np.random.default_rng(0)
    reference = np.zeros((1, 64, 64), dtype=np.float32)
    reference[0, 16:48, 20:44] = 1.0
    noisy_background = reference + (reference == 0) * rng.random((1, 64, 64), dtype=np.float32) * 0.05
    head = head_mask(noisy_background)
    assert head[0, 32, 32] and not head[0, 2, 2] and head.sum() < 0.4 * head.size
    # a reconstruction that differs only outside the head is perfect inside it
    recon = noisy_background.copy()
    recon[~head] = 0
    inside = masked_metrics(noisy_background, recon, head)
    assert inside["psnr"] == float("inf") and inside["nmse"] == 0.0
    assert volume_metrics(noisy_background, recon)["psnr"] < 60
    # the SSIM map's mean is fastMRI's slice SSIM
    assert float(ssim_map(reference[0], recon[0], 1.0).mean()) == pytest.approx(ssim(reference, recon, 1.0))
    blurred = recon.copy()
    blurred[0, 30:34, 30:34] = 0.5
    assert masked_metrics(noisy_background, blurred, head)["ssim"] < 1.0
    empty = masked_metrics(noisy_background, blurred, np.zeros_like(head))  # nothing to score
    assert all(np.isnan(v) for v in empty.values())


def test_the_head_mask_rises_above_a_high_noise_floor() -> None:
    from mrirecon.evaluation.metrics import head_mask

    # the RSS of 16 noisy coils: a background floor at 12 % of the maximum (chi with 32 degrees of freedom)
    rng = np.random.default_rng(1)
    coils = 16
    head = np.zeros((2, 96, 96))
    head[:, 24:72, 28:68] = 1.0
    noise = rng.normal(0, 0.021, (2, coils, 2, 96, 96))
    coil_images = head[:, None] / np.sqrt(coils) + noise[:, :, 0] + 1j * noise[:, :, 1]
    rss = np.sqrt((np.abs(coil_images) ** 2).sum(axis=1)).astype(np.float32)
    assert np.median(rss[:, :8, :]) > 0.1 * rss.max()  # a fraction of the maximum alone: all of it
    mask = head_mask(rss)
    clean = head_mask(head.astype(np.float32))  # without noise: 10 % of the maximum
    assert mask.mean() < 0.35 and clean[:, 24:72, 28:68].all()  # the head and its rim, not the image
    assert (mask != clean).mean() < 0.03  # a pixel at the rim here and there


def test_masked_metrics_against_skimages_ssim_map_and_numpy() -> None:
    """Inside an irregular region: SSIM is the mean of scikit-image's fastMRI-style SSIM map over
    the region's pixels (its valid part, aligned), PSNR and NMSE NumPy's over the same pixels."""
    from mrirecon.evaluation.metrics import masked_metrics

    rng = np.random.default_rng(4)
    gt = rng.random((2, 40, 36)).astype(np.float32)
    pred = (gt + 0.2 * rng.standard_normal(gt.shape)).astype(np.float32)
    yy, xx = np.mgrid[:40, :36]
    region = np.stack([(yy - 18) ** 2 + (xx - 14) ** 2 < 120, (yy > 25) & (xx > 8)])
    got = masked_metrics(gt, pred, region)
    maxval, pad = float(gt.max()), 3
    pooled = []
    for g, p, m in zip(gt, pred, region, strict=True):
        _, full = structural_similarity(g, p, data_range=maxval, full=True)
        pooled.append(full[pad:-pad, pad:-pad][m[pad:-pad, pad:-pad]])
    assert got["ssim"] == pytest.approx(float(np.concatenate(pooled).mean()), rel=1e-5)
    a, b = gt[region].astype(np.float64), pred[region].astype(np.float64)
    assert got["nmse"] == pytest.approx(float(np.sum((a - b) ** 2) / np.sum(a**2)), rel=1e-9)
    assert got["psnr"] == pytest.approx(float(10 * np.log10(maxval**2 / np.mean((a - b) ** 2))), rel=1e-9)


def test_a_tall_target_is_scored_on_fastmris_width_by_width_crop(tmp_path: Path) -> None:
    """fastMRI's evaluate.py crops a target (S, H, W) to its centre W × W: rows outside it (the
    readout oversampling band of knee data) are not scored."""
    import h5py

    from mrirecon.evaluation.volumes import read_target

    rng = np.random.default_rng(5)
    volume = rng.random((2, 100, 80)).astype(np.float32)
    path = tmp_path / "tall.h5"
    with h5py.File(path, "w") as f:
        f["reconstruction_rss"] = volume
    target = read_target(path)
    assert target.image.shape == (2, 80, 80) and target.full_shape == (2, 100, 80)
    np.testing.assert_array_equal(target.image, volume[:, 10:90])


def test_a_target_with_float_lesion_labels_is_refused_by_name(tmp_path: Path) -> None:
    """Labels are integers: 0.5 would truncate to "no lesion" and the lesion would go unscored."""
    import h5py

    from mrirecon.errors import DataError
    from mrirecon.evaluation.volumes import read_target

    path = tmp_path / "labels.h5"
    with h5py.File(path, "w") as f:
        f["reconstruction_rss"] = np.ones((1, 16, 16), np.float32)
        f["lesion_labels"] = np.full((1, 16, 16), 0.5)
    with pytest.raises(DataError, match="'lesion_labels' holds float64; expected integer labels") as caught:
        read_target(path)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (np.ones((0, 16, 16), np.float32), r"must be a volume \(slices, height, width\), got \(0, 16, 16\)"),
        (None, "'reconstruction_rss' is a group, not a dataset"),
        (np.array([[[b"x"]]]), r"'reconstruction_rss' holds \|S1, not numbers"),
    ],
    ids=["no-slices", "group", "text"],
)
def test_a_target_that_is_not_a_volume_of_numbers_is_a_data_error(tmp_path: Path, value, words: str) -> None:
    import h5py

    from mrirecon.errors import DataError
    from mrirecon.evaluation.volumes import read_target

    path = tmp_path / "target.h5"
    with h5py.File(path, "w") as f:
        if value is None:
            f.create_group("reconstruction_rss")
        else:
            f["reconstruction_rss"] = value
    with pytest.raises(DataError, match=words):
        read_target(path)


@pytest.mark.parametrize("value", [0.0, float("nan")], ids=["all-zero", "nan"])
def test_a_reference_the_metrics_cannot_score_against_is_refused_by_name(
    tmp_path: Path, value: float
) -> None:
    """An all-zero reference scored SSIM 0 into the group mean (and PSNR -inf) with NumPy's division
    warnings; one with a NaN gave NaN figures: both are the target file's fault."""
    from mrirecon.errors import DataError
    from mrirecon.evaluation.evaluate import _check_scorable
    from mrirecon.evaluation.options import EvaluationOptions
    from mrirecon.evaluation.volumes import TargetVolume

    image = np.ones((2, 16, 16), np.float32)
    if math.isnan(value):
        image[1, 3, 3] = value  # one pixel
    else:
        image[:] = value  # all of it
    target = TargetVolume(path=tmp_path / "t.h5", image=image, full_shape=(2, 16, 16), labels=None, attrs={})
    with pytest.raises(
        DataError, match="the reference is all zero or holds values that are not finite"
    ) as caught:
        _check_scorable(target, np.ones_like(image), tmp_path / "r.h5", EvaluationOptions(progress=False))
    assert str(caught.value).startswith(str(tmp_path / "t.h5"))


def test_an_annotation_label_without_annotations_is_refused() -> None:
    from mrirecon.evaluation.options import EvaluationOptions

    with pytest.raises(ValueError, match="--annotation-label filters the boxes of --annotations"):
        EvaluationOptions(annotation_labels=("nodule",), progress=False)


def test_lesions_the_evaluation_crop_cuts_are_said(tmp_path: Path) -> None:
    """A tall target is cropped to W × W (fastMRI): a lesion outside the crop was dropped, one across
    its edge measured on the part inside, without a word."""
    import h5py

    from mrirecon.errors import Notice
    from mrirecon.evaluation.volumes import read_target

    labels = np.zeros((1, 80, 64), np.int16)
    labels[0, 2:6, 30:34] = 1  # outside the 64 × 64 crop (rows 8..71)
    labels[0, 6:12, 30:34] = 2  # across its edge
    labels[0, 40:44, 30:34] = 3  # inside
    path = tmp_path / "tall.h5"
    with h5py.File(path, "w") as f:
        f["reconstruction_rss"] = np.ones((1, 80, 64), np.float32)
        f["lesion_labels"] = labels
    with pytest.warns(
        Notice,
        match=r"tall\.h5: lesions cut by the 64 × 64 evaluation crop: 1 outside it, not measured; 1 partly",
    ):
        target = read_target(path)
    assert target.labels is not None and sorted(np.unique(target.labels).tolist()) == [0, 2, 3]
