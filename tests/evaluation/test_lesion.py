"""Lesion measures (known answers, preservation verdicts) and lesion insertion into coil k-space."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from mrirecon.data.lesions import Lesion, apply_lesions
from mrirecon.evaluation.lesion import (
    LesionTally,
    PreservationCriteria,
    RingGeometry,
    contrast_stats,
    insert_lesions,
    lesion_table_json,
    lesions_from_table,
    measure_lesions,
    measure_region,
    place_lesions,
    ring_mask,
    tally,
)
from mrirecon.physics import fft2c, ifft2c, rss
from tests.evaluation.synthetic import coil_maps, phantom

# ------------------------------------------------------------------------------------------ geometry


def test_ring_of_one_pixel_is_the_annulus_of_integer_points() -> None:
    region = np.zeros((41, 41), dtype=bool)
    region[20, 20] = True
    ring = ring_mask(region, RingGeometry(gap=2, width=3))
    yy, xx = np.mgrid[0:41, 0:41]
    d2 = (yy - 20) ** 2 + (xx - 20) ** 2
    np.testing.assert_array_equal(ring, (d2 > 4) & (d2 <= 25))


def test_ring_of_a_disk_matches_brute_force_distances_and_respects_exclusions() -> None:
    yy, xx = np.mgrid[0:48, 0:48]
    region = (yy - 24) ** 2 + (xx - 22) ** 2 <= 16
    points = np.argwhere(region)
    distance = np.min(np.hypot(yy[..., None] - points[:, 0], xx[..., None] - points[:, 1]), axis=-1)
    expected = (distance > 2) & (distance <= 5)
    np.testing.assert_array_equal(ring_mask(region, RingGeometry()), expected)
    exclude = np.zeros_like(region)
    exclude[:, 26:] = True
    ring = ring_mask(region, RingGeometry(), exclude)
    np.testing.assert_array_equal(ring, expected & ~exclude)


# ------------------------------------------------------------------------------------------ known answers


def _disk_image(
    radius: float = 4.0, lesion: float = 150.0, tissue: float = 100.0
) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:40, 0:40]
    region = (yy - 20) ** 2 + (xx - 20) ** 2 <= radius**2
    image = np.where(region, lesion, tissue).astype(np.float64)
    return image, region


def test_contrast_ratio_and_cnr_known_answer() -> None:
    image, region = _disk_image()
    ring = ring_mask(region, RingGeometry())
    # ring pixels alternate 95, 105 in raster order: mean 100, sample SD known in closed form
    n = int(ring.sum())
    values = np.where(np.arange(n) % 2 == 0, 95.0, 105.0)
    if n % 2:
        values[-1] = 100.0
    image[ring] = values
    stats = contrast_stats(image, region, ring)
    expected_sd = math.sqrt(25.0 * (n - n % 2) / (n - 1))
    assert stats.lesion_mean == 150.0 and stats.ring_mean == pytest.approx(100.0)
    assert stats.contrast_ratio == pytest.approx(1.5) and stats.contrast == pytest.approx(0.5)
    assert stats.ring_sd == pytest.approx(expected_sd)
    assert stats.cnr == pytest.approx(50.0 / expected_sd)


def test_hypointense_lesion_and_flat_ring() -> None:
    image, region = _disk_image(lesion=60.0)
    ring = ring_mask(region, RingGeometry())
    stats = contrast_stats(image, region, ring)
    assert stats.contrast_ratio == pytest.approx(0.6) and stats.contrast == pytest.approx(-0.4)
    assert stats.cnr == math.inf  # no spread in the ring and a real difference
    small = np.zeros_like(region)
    small[0, :3] = True
    assert math.isnan(contrast_stats(image, region, small).cnr)  # too few ring pixels


def _textured(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A one-slice volume of textured tissue with a hyperintense lesion of contrast 1.6, and its labels."""
    rng = np.random.default_rng(seed)
    tissue = 100 + ndimage.gaussian_filter(rng.standard_normal((1, 64, 64)), (0, 1, 1)) * 8
    return apply_lesions(tissue, [Lesion((0, 32, 32), radius=5, contrast=1.6, irregularity=0.2)])


def test_a_reconstruction_that_keeps_the_lesion_passes() -> None:
    reference, labels = _textured()
    rng = np.random.default_rng(1)
    kept = reference + rng.standard_normal(reference.shape) * 1.0
    (measure,) = measure_lesions(reference, kept, labels)
    assert measure.preservation == pytest.approx(1.0, abs=0.05)
    assert measure.preserved
    assert measure.reference.contrast_ratio == pytest.approx(1.6, abs=0.1)


def test_a_reconstruction_that_blurs_the_lesion_fails() -> None:
    reference, labels = _textured()
    blurred = ndimage.gaussian_filter(reference, (0, 2.0, 2.0))
    (measure,) = measure_lesions(reference, blurred, labels)
    assert measure.preservation < 0.9
    assert not measure.preserved
    # the verdict follows the band: with a generous band the same blur counts as kept
    (lenient,) = measure_lesions(reference, blurred, labels, criteria=PreservationCriteria(band=(0.3, 1.5)))
    assert lenient.preserved and lenient.preservation == measure.preservation


def test_exaggerated_contrast_and_low_cnr_fail() -> None:
    reference, labels = _textured()
    region = labels == 1
    doubled = reference.copy()
    ring_mean = measure_lesions(reference, reference, labels)[0].reference.ring_mean
    doubled[region] = ring_mean + 2 * (reference[region] - ring_mean)
    assert measure_lesions(reference, doubled, labels)[0].preservation > 1.5
    # same contrast on average, but drowned in noise: CNR below the threshold
    rng = np.random.default_rng(2)
    noisy = reference + rng.standard_normal(reference.shape) * 80
    (m,) = measure_lesions(
        reference, noisy, labels, criteria=PreservationCriteria(band=(0.0, 10.0), min_cnr=1.0)
    )
    assert m.reconstruction.cnr < 1.0 and not m.preserved


def test_a_lesion_the_reference_does_not_show_is_not_judged() -> None:
    # a faint lesion (contrast 1.01) in texture of SD about 2: CNR below 1 in the reference itself
    rng = np.random.default_rng(0)
    tissue = 100 + ndimage.gaussian_filter(rng.standard_normal((1, 64, 64)), (0, 1, 1)) * 8
    faint = Lesion((0, 20, 20), radius=4, contrast=1.01, irregularity=0.0)
    clear = Lesion((0, 44, 44), radius=5, contrast=1.6, irregularity=0.0, seed=1)
    reference, labels = apply_lesions(tissue, [faint, clear])
    hidden, shown = measure_lesions(reference, reference, labels)
    assert hidden.reference.cnr < 1.0 <= shown.reference.cnr
    # the reference itself would fail the CNR test on the faint one: it is not judged, not lost
    assert not hidden.visible and not hidden.preserved and hidden.preservation == pytest.approx(1.0)
    assert shown.visible and shown.preserved
    assert tally([hidden, shown]) == LesionTally(kept=1, judged=1, not_visible=1)
    # a lesion blurred away counts as lost only where the reference shows it
    blurred = ndimage.gaussian_filter(reference, (0, 3.0, 3.0))
    measures = measure_lesions(reference, blurred, labels)
    assert tally(measures) == LesionTally(kept=0, judged=1, not_visible=1)
    # a stricter threshold hides the clear one too; an unmeasurable lesion (NaN) stays judged
    strict = measure_lesions(reference, reference, labels, criteria=PreservationCriteria(min_cnr=1e6))
    assert tally(strict) == LesionTally(kept=0, judged=0, not_visible=2)
    edge = np.zeros_like(labels)
    edge[0, 0, 0] = 1
    (nan,) = measure_lesions(reference, reference, edge, geometry=RingGeometry(min_pixels=10_000))
    assert math.isnan(nan.reference.cnr) and nan.visible and not nan.preserved


def test_ring_skips_other_lesions_and_air() -> None:
    tissue = np.full((1, 64, 64), 100.0)
    tissue[:, :, :20] = 0.0  # air on the left
    volume, labels = apply_lesions(
        tissue, [Lesion((0, 32, 27), 4, 1.5, irregularity=0), Lesion((0, 32, 36), 3, 3.0, irregularity=0)]
    )
    (first, _) = measure_lesions(volume, volume, labels)
    # neither the bright second lesion nor the air enters the first lesion's ring: it is flat tissue
    assert first.reference.ring_mean == pytest.approx(100.0)
    assert first.reference.ring_sd == pytest.approx(0.0)
    without = measure_region(volume, volume, labels == 1)  # no exclusions: the bright lesion leaks in
    assert without.reference.ring_mean > 100.0


# ------------------------------------------------------------------------------------------ insertion


def _kspace(
    slices: int = 2, coils: int = 4, shape: tuple[int, int] = (72, 64)
) -> tuple[np.ndarray, np.ndarray]:
    image = phantom(slices, *shape, seed=3).astype(np.complex64)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = image * np.exp(1j * (0.02 * xx + 0.01 * yy)).astype(np.complex64)
    coil_images = image[:, None] * coil_maps(coils, *shape)[None]
    return fft2c(torch.from_numpy(coil_images)).numpy(), coil_images


def test_insertion_multiplies_every_coil_image_by_the_same_factor() -> None:
    kspace, coil_images = _kspace()
    crop = (56, 48)  # offsets (8, 8)
    lesions = [Lesion((0, 28, 20), 4, 1.8, seed=1), Lesion((1, 30, 30), 3, 0.5, depth=1.0, seed=2)]
    out = insert_lesions(kspace, lesions, crop_size=crop)
    assert out.kspace.shape == kspace.shape and out.kspace.dtype == np.complex64
    # labels on the crop grid equal the shared model's labels computed directly on that grid
    factor_crop, labels_crop = apply_lesions(np.ones((2, *crop), dtype=np.float32), lesions)
    np.testing.assert_array_equal(out.labels, labels_crop)
    # every coil image is multiplied by the factor map (positioned with the crop offsets), phase kept
    new_images = ifft2c(torch.from_numpy(out.kspace)).numpy()
    factor = np.ones((2, 72, 64), dtype=np.float32)
    factor[:, 8:64, 8:56] = factor_crop
    np.testing.assert_allclose(
        new_images, coil_images * factor[:, None], atol=2e-5 * np.abs(coil_images).max()
    )
    # the new target is the RSS of the new coil images, cropped: factor × old target
    old_target = rss(torch.from_numpy(coil_images), dim=1).numpy()[:, 8:64, 8:56]
    np.testing.assert_allclose(out.target, old_target * factor_crop, atol=2e-5 * old_target.max())


def test_insertion_keeps_unmeasured_samples_zero_and_handles_single_coil() -> None:
    kspace, _ = _kspace(slices=1)
    kspace[..., :5] = 0  # zero-padded columns, never measured
    out = insert_lesions(kspace, [Lesion((0, 36, 32), 5, 2.0)])
    assert np.all(out.kspace[..., :5] == 0) and np.any(out.kspace[..., 5:] != kspace[..., 5:])
    single = kspace[:, 0]
    out1 = insert_lesions(single, [Lesion((0, 36, 32), 5, 2.0)], keep_unmeasured=False)
    inside = out1.labels[0] == 1
    before = np.abs(ifft2c(torch.from_numpy(single)).numpy())[0]
    assert out1.target.shape == (1, 72, 64)
    assert np.median(out1.target[0][inside] / before[inside]) == pytest.approx(2.0, rel=0.02)


def test_lesion_table_round_trip_and_placement() -> None:
    lesions = [Lesion((1.0, 10.5, 12.0), 3.0, 1.7, irregularity=0.3, depth=1.5, seed=9)]
    assert lesions_from_table(lesion_table_json(lesions)) == lesions
    with pytest.raises(ValueError, match="lesion table"):
        lesions_from_table('[{"radius": 1}]')
    reference = phantom(5, 96, 96, seed=0)
    placed = place_lesions(reference, 4, radius=3, contrast=1.6, depth=1.0, seed=5, tissue_fraction=0.45)
    assert placed == place_lesions(
        reference, 4, radius=3, contrast=1.6, depth=1.0, seed=5, tissue_fraction=0.45
    )
    assert 1 <= len(placed) <= 4
    for lesion in placed:
        s, r, c = (int(v) for v in lesion.center)
        assert 1 <= s <= 3  # a depth-1 lesion is not put on the first or last slice
        assert reference[s, r, c] >= 0.45 * reference.max()
    for a in placed:
        for b in placed:
            if a is not b and abs(a.center[0] - b.center[0]) < a.depth + b.depth:  # they share a slice
                assert math.hypot(a.center[1] - b.center[1], a.center[2] - b.center[2]) >= 2 * (3 * 1.25 + 6)
