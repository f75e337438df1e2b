"""Gaussian 1-D/2-D and Poisson-disc masks: acceleration, fully sampled centre, determinism."""

from __future__ import annotations

import pytest
import torch

from mrirecon.masks import create_mask_func, describe_mask, volume_seed


@pytest.mark.parametrize("acceleration", [4, 8])
def test_gaussian1d_exact_acceleration_and_centre(acceleration: int) -> None:
    func = create_mask_func("gaussian1d", [0.08], [acceleration], seed=0)
    mask, num_low = func((8, 256, 256))
    assert mask.shape == (1, 1, 256)
    assert int(mask.sum()) == round(256 / acceleration)
    info = describe_mask(mask)
    assert info.num_low_frequencies >= num_low == round(256 * 0.08)


def test_gaussian1d_density_is_higher_near_the_centre() -> None:
    func = create_mask_func("gaussian1d", [0.04], [6], seed=0, fwhm=0.5)
    hits = torch.stack([func((1, 200))[0].reshape(-1) for _ in range(200)]).mean(0)
    inner = torch.cat([hits[60:90], hits[110:140]]).mean()
    outer = torch.cat([hits[:30], hits[170:]]).mean()
    assert inner > 2 * outer


@pytest.mark.parametrize("name", ["gaussian2d", "poisson2d"])
@pytest.mark.parametrize("acceleration", [5, 8])
def test_2d_masks_acceleration_and_centre_block(name: str, acceleration: int) -> None:
    func = create_mask_func(name, [0.08], [acceleration], seed=3)
    mask, num_low = func((4, 120, 100))
    assert mask.shape == (1, 120, 100)
    info = describe_mask(mask)
    assert info.kind == "2d"
    tolerance = 0.01 if name == "gaussian2d" else 0.15
    assert abs(info.acceleration - acceleration) / acceleration < tolerance
    assert info.acs_shape[0] >= round(120 * 0.08) and info.acs_shape[1] >= num_low


@pytest.mark.parametrize("name", ["gaussian1d", "gaussian2d", "poisson2d"])
def test_seeded_masks_are_deterministic(name: str) -> None:
    seed = volume_seed("file_brain_AXFLAIR_200_6002425.h5")
    a = create_mask_func(name, [0.08], [6])((1, 64, 64), seed=seed)[0]
    b = create_mask_func(name, [0.08], [6], seed=99)((1, 64, 64), seed=seed)[0]
    c = create_mask_func(name, [0.08], [6])((1, 64, 64), seed=volume_seed("other.h5"))[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
