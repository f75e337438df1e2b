"""fastMRI's five mask functions: identical to fastMRI 0.3.0 (golden masks) and its documented behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mrirecon.errors import ConfigError
from mrirecon.masks import MASK_TYPES, apply_mask, create_mask_func, describe_mask, volume_seed

GOLDEN = json.loads((Path(__file__).parent / "fastmri_golden.json").read_text())
FASTMRI_TYPES = ["random", "equispaced", "equispaced_fraction", "magic", "magic_fraction"]


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: f"{c['type']}-{c['width']}-s{c['seed']}")
def test_same_seed_same_mask_as_fastmri(case: dict) -> None:
    func = create_mask_func(
        case["type"],
        case["center_fractions"],
        case["accelerations"],
        seed=case["seed"],
        allow_any_combination=case["allow_any_combination"],
    )
    for draw in case["draws"]:
        seed = draw["call_seed"]
        seed = volume_seed(seed) if isinstance(seed, str) else seed
        mask, num_low = func((16, 640, case["width"]), offset=case["offset"], seed=seed)
        assert mask.shape == (1, 1, case["width"])
        assert mask.dtype == torch.float32
        assert np.flatnonzero(mask.numpy().reshape(-1)).tolist() == draw["columns"]
        assert num_low == draw["num_low"]


@pytest.mark.parametrize("name", FASTMRI_TYPES)
def test_centre_lines_are_sampled_where_fastmri_puts_them(name: str) -> None:
    func = create_mask_func(name, [0.08], [4], seed=0)
    for width in (368, 369, 320):
        mask, num_low = func((15, 640, width))
        line = mask.reshape(-1)
        pad = (width - num_low + 1) // 2
        assert torch.all(line[pad : pad + num_low] == 1)
        assert describe_mask(mask).num_low_frequencies >= num_low


@pytest.mark.parametrize("name", ["random", "equispaced_fraction", "magic_fraction"])
@pytest.mark.parametrize("acceleration", [4, 8])
def test_fraction_masks_hit_their_acceleration(name: str, acceleration: int) -> None:
    func = create_mask_func(name, [0.08 if acceleration == 4 else 0.04], [acceleration], seed=1)
    accs = [describe_mask(func((1, 368))[0]).acceleration for _ in range(50)]
    mean = float(np.mean(accs))
    # random is exact in expectation, equispaced_fraction up to rounding; magic_fraction rounds the
    # outer spacing to an integer and its lines overlap the centre, so fastMRI lands within 10 %.
    tolerance = {"random": 0.12, "equispaced_fraction": 0.03, "magic_fraction": 0.1}[name]
    assert abs(mean - acceleration) / acceleration < tolerance, (name, mean)


def test_equispaced_undershoots_and_spacing_is_regular() -> None:
    func = create_mask_func("equispaced", [0.08], [4], seed=0)
    mask, _ = func((1, 368), offset=1)
    line = mask.reshape(-1).numpy()
    outer = np.zeros_like(line)
    outer[1::4] = 1
    assert np.all(line[outer == 1] == 1)
    assert describe_mask(mask).acceleration < 4


def test_worked_example_equispaced_fraction() -> None:
    """W=10, 20 % centre, R=2 by hand: num_low = 2 at columns 4-5, adjusted R = 2·(2−10)/(2·2−10) = 8/3,
    offset 0 → round([0, 2.67, 5.33, 8]) = [0, 3, 5, 8]."""
    func = create_mask_func("equispaced_fraction", [0.2], [2], seed=0)
    mask, num_low = func((1, 10), offset=0)
    assert num_low == 2
    assert np.flatnonzero(mask.reshape(-1).numpy()).tolist() == [0, 3, 4, 5, 8]


def test_per_call_seed_restores_the_generator() -> None:
    a = create_mask_func("random", [0.08], [4], seed=5)
    b = create_mask_func("random", [0.08], [4], seed=5)
    a((1, 100), seed=123)  # a seeded call must not advance the generator
    assert torch.equal(a((1, 100))[0], b((1, 100))[0])


def test_per_volume_seed_is_deterministic_and_differs_between_files() -> None:
    func = create_mask_func("random", [0.08], [4])
    m1 = func((1, 368), seed=volume_seed("file1000001.h5"))[0]
    m2 = create_mask_func("random", [0.08], [4])((1, 368), seed=volume_seed("/elsewhere/file1000001.h5"))[0]
    m3 = func((1, 368), seed=volume_seed("file1000002.h5"))[0]
    assert torch.equal(m1, m2)
    assert not torch.equal(m1, m3)


def test_fresh_randomness_without_seed() -> None:
    func = create_mask_func("random", [0.08], [4])
    assert not torch.equal(func((1, 368))[0], func((1, 368))[0])


def test_apply_mask_has_no_negative_zeros_and_respects_padding() -> None:
    kspace = -torch.ones(2, 8, 20, dtype=torch.complex64)
    func = create_mask_func("equispaced", [0.1], [4], seed=0)
    masked, mask, _ = apply_mask(kspace, func, offset=0, padding=(2, 18))
    assert torch.all(mask[..., :2] == 0) and torch.all(mask[..., 18:] == 0)
    unsampled = masked[..., mask.reshape(-1) == 0]
    assert not torch.any(torch.signbit(unsampled.real)) and not torch.any(torch.signbit(unsampled.imag))


def test_unknown_type_and_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="choose one of: random"):
        create_mask_func("radial", [0.08], [4])
    with pytest.raises(ConfigError, match="one centre fraction per acceleration"):
        create_mask_func("random", [0.08, 0.04], [4])
    with pytest.raises(ConfigError, match="greater than 1"):
        create_mask_func("random", [0.08], [1])
    assert set(FASTMRI_TYPES) <= set(MASK_TYPES)


def test_equispaced_fraction_refuses_a_centre_that_already_reaches_the_acceleration() -> None:
    """fastMRI divides by zero when centre fraction × acceleration = 1; we name the fix instead."""

    with pytest.raises(
        ConfigError, match=r"a centre fraction of 0\.25 alone .* acceleration 4 .*smaller centre"
    ):
        create_mask_func("equispaced_fraction", [0.25], [4], seed=0)  # refused when made, not when drawn
    with pytest.raises(ConfigError, match="acceleration 8 leaves none"):
        create_mask_func("equispaced_fraction", [0.04, 0.2], [4, 8], allow_any_combination=True)
    create_mask_func("equispaced_fraction", [0.08, 0.2], [8, 4])  # paired: 0.64 and 0.8
    # the same rule checked when a mixed mask is made, not in a data-loader worker at its first slice
    with pytest.raises(ConfigError, match="acceleration 4 leaves none"):
        create_mask_func("mixed", [0.3], [4], families=["equispaced_fraction"])


def test_a_random_mask_whose_centre_is_every_column_is_refused() -> None:
    """fastMRI divides by zero when the centre fraction rounds to the whole width (narrow grids)."""
    with pytest.raises(ConfigError, match=r"rounds to all 40 columns.*smaller centre fraction"):
        create_mask_func("random", [0.99], [2], seed=0)((1, 8, 40))
    create_mask_func("random", [0.95], [2], seed=0)((1, 8, 40))  # 38 of 40: fastMRI's mask


def test_bad_variable_density_options_are_config_errors() -> None:
    for name, options in (
        ("gaussian1d", {"fwhm": 0}),
        ("gaussian2d", {"fwhm": -1}),
        ("poisson2d", {"calibration_size": 0}),
    ):
        with pytest.raises(ConfigError, match=r"fwhm|calibration_size"):
            create_mask_func(name, [0.08], [4], **options)


@pytest.mark.parametrize("name", ["equispaced", "magic"])
def test_masks_that_step_by_whole_lines_refuse_a_fractional_acceleration(name: str) -> None:
    with pytest.raises(ConfigError, match=r"R must be a whole number, got 2\.5"):
        create_mask_func(name, [0.08], [2.5])
    mask, _ = create_mask_func(name, [0.08], [4.0], seed=1)((1, 320, 2))  # 4.0 from YAML is whole
    assert 320 / float(mask.sum()) > 3
    for fractional in ("equispaced_fraction", "magic_fraction", "random"):
        create_mask_func(fractional, [0.08], [2.5])
