"""The shared lesion model: area, contrast, partial volume, irregularity, depth, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from mrirecon.data.lesions import Lesion, apply_lesions, lesion_fraction


def test_round_lesion_has_the_area_of_its_circle() -> None:
    pv = lesion_fraction(Lesion((0, 32, 32), radius=8, contrast=2, irregularity=0), (64, 64), 0)
    assert pv.sum() == pytest.approx(np.pi * 64, rel=0.01)
    assert pv.max() == 1 and pv.min() == 0
    edge = (pv > 0) & (pv < 1)
    assert edge.sum() > 0  # partial-volume edges


def test_contrast_multiplies_the_tissue_and_keeps_phase() -> None:
    volume = np.full((1, 40, 40), 2.0 * np.exp(1j * 0.7), dtype=np.complex64)
    lesion = Lesion((0, 20, 20), radius=6, contrast=1.5, irregularity=0.1)
    out, labels = apply_lesions(volume, [lesion])
    core = labels[0] == 1
    inside = lesion_fraction(lesion, (40, 40), 0) == 1
    assert np.allclose(np.abs(out[0][inside]), 3.0)
    assert np.allclose(np.angle(out[0][core]), 0.7, atol=1e-6)
    assert np.allclose(out[0][labels[0] == 0][:5], volume[0][0, :5])


def test_irregular_outline_is_deterministic_per_seed_and_differs_between_seeds() -> None:
    a = lesion_fraction(Lesion((0, 32, 32), 10, 2, irregularity=0.4, seed=1), (64, 64), 0)
    b = lesion_fraction(Lesion((0, 32, 32), 10, 2, irregularity=0.4, seed=1), (64, 64), 0)
    c = lesion_fraction(Lesion((0, 32, 32), 10, 2, irregularity=0.4, seed=2), (64, 64), 0)
    round_ = lesion_fraction(Lesion((0, 32, 32), 10, 2, irregularity=0.0), (64, 64), 0)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.abs(a - round_).sum() > 10


def test_depth_spreads_the_lesion_over_slices() -> None:
    volume = np.ones((5, 32, 32), dtype=np.float32)
    _, labels = apply_lesions(volume, [Lesion((2, 16, 16), radius=6, contrast=0.5, depth=2.0)])
    areas = (labels == 1).sum(axis=(1, 2))
    assert areas[2] > areas[1] > 0 and areas[1] == pytest.approx(areas[3], abs=2) and areas[0] == 0


def test_a_label_covers_the_pixels_the_lesion_fills_at_least_half() -> None:
    """Labels are the pixels whose partial-volume fraction is at least 0.5: a round lesion's label
    has about the area of its circle, not the ring of edge pixels it grazes."""
    lesion = Lesion((0, 32, 32), radius=8, contrast=2.0, irregularity=0.3, seed=4)
    _, labels = apply_lesions(np.ones((1, 64, 64), dtype=np.float32), [lesion])
    fraction = lesion_fraction(lesion, (64, 64), 0)
    np.testing.assert_array_equal(labels[0] == 1, fraction >= 0.5)
    _, round_labels = apply_lesions(
        np.ones((1, 64, 64), dtype=np.float32), [Lesion((0, 32, 32), 8, 2.0, 0.0)]
    )
    assert (round_labels == 1).sum() == pytest.approx(np.pi * 64, rel=0.05)


def test_labels_number_the_lesions_and_bad_parameters_raise() -> None:
    volume = np.ones((1, 50, 50), dtype=np.float32)
    _, labels = apply_lesions(volume, [Lesion((0, 12, 12), 4, 2.0), Lesion((0, 36, 36), 4, 2.0)])
    assert set(np.unique(labels)) == {0, 1, 2}
    with pytest.raises(ValueError, match="radius"):
        Lesion((0, 1, 1), 0, 2.0)
    with pytest.raises(ValueError, match="irregularity"):
        Lesion((0, 1, 1), 1, 2.0, irregularity=1.2)
    with pytest.raises(ValueError, match="volume"):
        apply_lesions(np.ones((4, 4)), [])


def test_place_in_regions_keeps_outlines_inside_and_lesions_apart() -> None:
    from mrirecon.data.lesions import LesionDraw, place_in_regions

    region = np.zeros((3, 64, 64), dtype=bool)
    region[:, 8:56, 8:56] = True
    draw = LesionDraw(radius=4.0, contrast=1.5, irregularity=0.25, depth=1.0)
    placed = place_in_regions([region], lambda _: draw, 6, np.random.default_rng(0), margin=2.0)
    assert 1 <= len(placed) <= 6
    reach = 4.0 * 1.25 + 2.0
    for lesion in placed:
        _, r, c = lesion.center
        # the nearest pixel outside the region (7 or 56) is at least the reach away
        assert r - 7 >= reach and 56 - r >= reach and c - 7 >= reach and 56 - c >= reach
    for a in placed:
        for b in placed:
            if a is not b and abs(a.center[0] - b.center[0]) < a.depth + b.depth:
                assert np.hypot(a.center[1] - b.center[1], a.center[2] - b.center[2]) >= 2 * reach
    assert place_in_regions([np.zeros((1, 8, 8), bool)], lambda _: draw, 3, np.random.default_rng(0)) == []
    again = place_in_regions([region], lambda _: draw, 6, np.random.default_rng(0), margin=2.0)
    assert again == placed
