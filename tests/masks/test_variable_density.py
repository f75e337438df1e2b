"""Gaussian 1-D/2-D and Poisson-disc masks: acceleration, fully sampled centre, determinism."""

from __future__ import annotations

import pytest
import torch

from mrirecon.errors import ConfigError
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


def test_a_calibration_size_gives_a_square_fully_sampled_centre_of_that_many_samples() -> None:
    for kind in ("poisson2d", "gaussian2d"):
        mask, num_low = create_mask_func(kind, [0.08], [8], seed=0, calibration_size=20)((1, 230, 180))
        info = describe_mask(mask)
        assert info.acs_shape[0] >= 20 and info.acs_shape[1] >= 20 and num_low == 20
        block = mask[0, 105:125, 80:100]
        assert bool((block == 1).all())
    with pytest.raises(ConfigError, match="calibration_size"):
        create_mask_func("poisson2d", [0.08], [8], calibration_size=0)


def test_the_mixed_mask_draws_every_family_acceleration_and_a_realistic_calibration() -> None:
    from mrirecon.masks.mixed import MixedMaskFunc, line_center_fraction

    accelerations = [2, 4, 8, 10]
    func = create_mask_func("mixed", [0] * 4, accelerations, seed=3)
    assert isinstance(func, MixedMaskFunc)
    kinds, rates = set(), []
    for _ in range(60):
        mask, _ = func((1, 160, 144))
        info = describe_mask(mask)
        kinds.add(info.kind)
        rates.append(info.acceleration)
        if info.kind == "1d":
            assert mask.shape == (1, 1, 144)
            assert info.acs_shape[0] >= round(144 * 0.04) - 1
        else:
            assert mask.shape == (1, 160, 144)
            assert min(info.acs_shape) >= 16
    assert kinds == {"1d", "2d"}
    assert min(rates) < 2.5 and max(rates) > 7
    assert line_center_fraction(4) == 0.08 and line_center_fraction(8) == 0.04
    assert line_center_fraction(2) == 0.16 and line_center_fraction(20) == 0.04
    again = create_mask_func("mixed", [0] * 4, accelerations, seed=3)
    assert torch.equal(
        again((1, 160, 144))[0], create_mask_func("mixed", [0] * 4, accelerations, seed=3)((1, 160, 144))[0]
    )
    with pytest.raises(ConfigError, match="unknown mixed mask families"):
        create_mask_func("mixed", [0], [4], families=["spiral"])


def test_gaussian1d_density_has_the_stated_full_width_at_half_maximum() -> None:
    """``fwhm`` is the density's full width at half maximum on [−1, 1]: columns half a width from
    the centre are drawn about half as often as those near it (σ = FWHM/√(8 ln 2))."""
    import numpy as np

    func = create_mask_func("gaussian1d", [0.04], [12], seed=0, fwhm=0.5)
    hits = torch.stack([func((1, 400))[0].reshape(-1) for _ in range(400)]).mean(0).numpy()
    distance = np.abs(np.linspace(-1.0, 1.0, 400))
    near = hits[(distance >= 0.05) & (distance < 0.12)].mean()
    half_width = hits[(distance >= 0.22) & (distance < 0.28)].mean()
    sigma = 0.5 / np.sqrt(8 * np.log(2))
    expected = np.exp(-0.5 * (0.25 / sigma) ** 2) / np.exp(-0.5 * (0.085 / sigma) ** 2)  # 0.54
    assert half_width / near == pytest.approx(expected, abs=0.1)


@pytest.mark.parametrize("size", [10, 11])
def test_the_2d_centre_block_sits_where_fastmri_puts_centre_lines(size: int) -> None:
    """A block of odd or even width covers the columns (and rows) fastMRI's centre lines do, so
    the zero frequency at ``size // 2`` is inside it, with the extra sample on the same side."""
    import numpy as np

    from mrirecon.masks.cartesian import center_line_mask
    from mrirecon.masks.variable_density import center_block_mask

    for block in (3, 4):
        mask, width = center_block_mask(size, size, 0.0, size=block)
        lines = center_line_mask(size, block).astype(bool)
        assert width == block
        np.testing.assert_array_equal(mask, np.outer(lines, lines))


def test_gaussian2d_density_is_centred_on_a_non_square_grid() -> None:
    """On a 160 × 96 grid the sampling density is exp(−(ky² + kx²)/2σ²) over both axes: the hit
    rate outside the centre block follows it and is symmetric about the centre along each axis."""
    import numpy as np

    func = create_mask_func("gaussian2d", [0.08], [6], seed=0)
    hits = np.mean([func((1, 160, 96))[0].reshape(160, 96).numpy() for _ in range(200)], axis=0)
    sigma = 0.7 / np.sqrt(8 * np.log(2))
    ky, kx = np.meshgrid(np.linspace(-1, 1, 160), np.linspace(-1, 1, 96), indexing="ij")
    density = np.exp(-0.5 * (ky**2 + kx**2) / sigma**2)
    outside = hits < 1.0  # the fully sampled block is sampled every time
    assert np.corrcoef(hits[outside], density[outside])[0, 1] > 0.9
    rows, cols = hits.mean(axis=1), hits.mean(axis=0)
    assert np.abs(rows - rows[::-1]).max() < 0.08 and np.abs(cols - cols[::-1]).max() < 0.08
