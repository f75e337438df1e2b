"""The classical baselines against known truths: zero-filled vs RSS, SENSE normal equations and
accuracy, L1-wavelet CS accuracy, scale and data consistency (phantoms and the real Poisson brain)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch

from mrirecon.errors import ModelError, Notice
from mrirecon.masks import describe_mask, mask_from_kspace
from mrirecon.models.baselines import (
    L1WaveletConfig,
    L1WaveletCS,
    SenseCG,
    SenseConfig,
    ZeroFilled,
    ZeroFilledConfig,
)
from mrirecon.physics import (
    MultiCoilOperator,
    espirit_calibration_width,
    espirit_kernel_width,
    estimate_coil_maps_espirit,
    ifft2c,
    rss,
)
from tests.models.baselines_scenes import (
    birdcage_maps,
    measure,
    nrmse,
    project_mask,
    smooth_phantom,
    sparse_phantom,
)

BRAIN = "sigpy_tutorial_brain_poisson/cartesian_ksp.npy"


# ---------------------------------------------------------------- zero-filled


def test_zero_filled_sense_is_the_adjoint_and_bounded_by_rss() -> None:
    maps = birdcage_maps(8, 40, 36)
    mask = project_mask("equispaced", 40, 36, 4, 0.1)
    kspace = measure(smooth_phantom(40, 36), maps, mask, noise=0.02)
    sense = ZeroFilled()(kspace, mask, maps).image
    assert torch.allclose(sense, MultiCoilOperator(maps, mask).adjoint(kspace))
    root = ZeroFilled(ZeroFilledConfig(combine="rss"))(kspace, mask, maps).image
    assert torch.equal(root.imag, torch.zeros_like(root.imag))
    assert torch.allclose(root.real, rss(ifft2c(kspace)))
    # Cauchy-Schwarz with Σ|S|² = 1: the SENSE combination never exceeds the RSS ...
    assert bool((sense.abs() <= root.real * (1 + 1e-5) + 1e-7).all())
    # ... and with undersampling it is strictly smaller somewhere (the coils alias differently).
    assert float((root.real - sense.abs()).max()) > 0.01 * float(root.real.max())


def test_zero_filled_sense_equals_rss_for_full_sampling_with_matching_maps() -> None:
    maps = birdcage_maps(6, 32, 30)
    image = smooth_phantom(32, 30).abs().to(torch.complex64)  # real, non-negative: RSS keeps no phase
    full = torch.ones(1, 1, 1, 30)
    kspace = measure(image, maps, full)
    sense = ZeroFilled()(kspace, full, maps).image
    root = ZeroFilled(ZeroFilledConfig(combine="rss"))(kspace, full, maps).image
    assert torch.allclose(sense, root, atol=1e-5)
    assert torch.allclose(sense, image, atol=1e-5)


# ---------------------------------------------------------------- SENSE


def test_sense_with_full_sampling_returns_the_truth_up_to_lambda() -> None:
    maps = birdcage_maps(8, 33, 28)
    image = smooth_phantom(33, 28)
    full = torch.ones(1, 1, 1, 28)
    kspace = measure(image, maps, full)
    for lam in (0.0, 0.01, 0.1):
        out = SenseCG(SenseConfig(regularization=lam))(kspace, full, maps).image
        assert torch.allclose(out, image / (1 + lam), atol=1e-5), lam


@pytest.mark.parametrize("lam", [0.0, 0.01])
def test_sense_result_satisfies_the_normal_equations(lam: float) -> None:
    maps = birdcage_maps(8, 48, 40)
    mask = project_mask("equispaced", 48, 40, 4, 0.08)
    kspace = measure(smooth_phantom(48, 40), maps, mask, noise=0.01)
    x = SenseCG(SenseConfig(iterations=60, regularization=lam, tolerance=0.0))(kspace, mask, maps).image
    op = MultiCoilOperator(maps, mask)
    rhs = op.adjoint(kspace)
    residual = op.normal(x) + lam * x - rhs
    final = float(residual.norm() / rhs.norm())
    assert final < 1e-4
    # and the iterations did the work: after one the residual is orders of magnitude larger
    x1 = SenseCG(SenseConfig(iterations=1, regularization=lam))(kspace, mask, maps).image
    assert float((op.normal(x1) + lam * x1 - rhs).norm() / rhs.norm()) > 100 * final


def test_sense_beats_zero_filled_at_4x_equispaced(device: torch.device) -> None:
    maps = birdcage_maps(8, 64, 56).to(device)
    image = smooth_phantom(64, 56).to(device)
    mask = project_mask("equispaced", 64, 56, 4, 0.08).to(device)
    kspace = measure(image, maps, mask, noise=0.005)
    zero_filled = nrmse(ZeroFilled()(kspace, mask, maps).image, image)
    sense = nrmse(SenseCG()(kspace, mask, maps).image, image)
    assert sense < 0.3 * zero_filled, (sense, zero_filled)
    assert sense < 0.05


def test_sense_solves_each_slice_of_a_batch_independently() -> None:
    maps = birdcage_maps(4, 32, 32)
    masks = torch.cat([project_mask("equispaced", 32, 32, r, 0.1) for r in (2, 4)])
    images = torch.cat([smooth_phantom(32, 32), sparse_phantom(32, 32)])
    kspace = measure(images, maps.expand(2, -1, -1, -1), masks)
    together = SenseCG()(kspace, masks, maps.expand(2, -1, -1, -1)).image
    for i in range(2):
        alone = SenseCG()(kspace[i : i + 1], masks[i : i + 1], maps).image
        assert torch.allclose(together[i : i + 1], alone, atol=1e-5)


# ---------------------------------------------------------------- L1-wavelet CS


def cs_scene(noise: float = 0.01) -> tuple[torch.Tensor, ...]:
    maps = birdcage_maps(8, 64, 56)
    image = sparse_phantom(64, 56)
    mask = project_mask("poisson2d", 64, 56, 4, 0.25)
    return measure(image, maps, mask, noise=noise), mask, maps, image


@pytest.mark.slow
def test_cs_beats_zero_filled_on_a_sparse_phantom() -> None:
    kspace, mask, maps, image = cs_scene()
    support = (image.abs() > 0).to(torch.float32)
    zero_filled = nrmse(ZeroFilled()(kspace, mask, maps).image, image)
    given = nrmse(L1WaveletCS(L1WaveletConfig(coil_maps="given"))(kspace, mask, maps).image, image)
    assert given < 0.5 * zero_filled, (given, zero_filled)
    # With ESPIRiT maps the phase is ESPIRiT's own: compare magnitudes.
    espirit = L1WaveletCS()(kspace, mask, maps).image
    assert nrmse(espirit.abs(), image.abs()) < 0.5 * nrmse(
        ZeroFilled()(kspace, mask, maps).image.abs(), image.abs()
    )
    assert nrmse(espirit.abs(), image.abs(), support) < 0.05


def test_cs_output_is_on_the_scale_of_the_input() -> None:
    """λ is relative: scaling the k-space scales the image, and the image matches SENSE's scale."""
    kspace, mask, maps, _ = cs_scene(noise=0.0)
    model = L1WaveletCS(L1WaveletConfig(coil_maps="given", iterations=30))
    out = model(kspace, mask, maps).image
    scaled = model(1000.0 * kspace, mask, maps).image
    assert torch.allclose(scaled, 1000.0 * out, rtol=1e-3, atol=1e-3 * float(scaled.abs().max()))
    sense = SenseCG(SenseConfig(iterations=100, regularization=0.0))(kspace, mask, maps).image
    tiny = L1WaveletCS(L1WaveletConfig(coil_maps="given", regularization=1e-6))(kspace, mask, maps).image
    ratio = float((tiny.abs() * sense.abs()).sum() / (sense.abs() ** 2).sum())
    assert abs(ratio - 1) < 0.02, ratio
    assert nrmse(tiny, sense) < 0.05


def test_cs_is_deterministic_and_leaves_numpy_random_state_alone() -> None:
    kspace, mask, maps, _ = cs_scene()
    model = L1WaveletCS(L1WaveletConfig(iterations=10))
    # SigPy draws from NumPy's legacy global generator: that is the state to leave untouched.
    np.random.seed(123)  # noqa: NPY002
    first = model(kspace, mask, maps).image
    after = np.random.random()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    assert after == np.random.random()  # noqa: NPY002
    assert torch.equal(first, model(kspace, mask, maps).image)


def test_cs_default_uses_espirit_maps_and_is_zero_where_they_vanish() -> None:
    kspace, mask, maps, _ = cs_scene()
    model = L1WaveletCS()
    espirit = model.coil_maps_for(kspace, mask, maps)
    width = espirit_calibration_width(
        describe_mask(mask).acs_slices, cast(tuple[int, int], tuple(kspace.shape[-2:])), 24
    )
    assert torch.allclose(espirit, estimate_coil_maps_espirit(kspace, calib_width=width), atol=1e-4)
    out = model(kspace, mask, maps).image
    given = L1WaveletCS(L1WaveletConfig(coil_maps="given"))
    assert torch.equal(given.coil_maps_for(kspace, mask, maps), maps)
    assert torch.allclose(out, given(kspace, mask, espirit).image, atol=1e-5)
    outside = rss(espirit) == 0
    assert bool(outside.any())
    assert bool((out[outside] == 0).all())


def test_cs_without_a_usable_centre_falls_back_to_the_given_maps_with_a_warning() -> None:
    _, _, maps, image = cs_scene()
    mask = project_mask("equispaced", 64, 56, 4, 0.04)  # 2 centre lines: no ESPIRiT kernel fits
    kspace = measure(image, maps, mask, noise=0.01)
    model = L1WaveletCS(L1WaveletConfig(iterations=5))
    with pytest.warns(Notice, match=r"centre of the mask is 2 lines, too small for ESPIRiT.*data layer"):
        used = model.coil_maps_for(kspace, mask, maps)
    assert torch.equal(used, maps)
    with pytest.raises(ModelError, match="too small for ESPIRiT"):
        model(kspace, mask, torch.zeros_like(maps))


def test_cs_with_espirit_maps_runs_without_coil_maps() -> None:
    # `--coil-maps none` hands the model an empty tensor: CS estimates its own, as with maps given
    kspace, mask, maps, _ = cs_scene()
    model = L1WaveletCS(L1WaveletConfig(iterations=5))
    empty = torch.zeros(0, 0, 0, dtype=torch.complex64)
    assert torch.equal(model.coil_maps_for(kspace, mask, empty), model.coil_maps_for(kspace, mask, maps))
    assert torch.equal(model(kspace, mask, empty).image, model(kspace, mask, maps).image)
    small = project_mask("equispaced", 64, 56, 4, 0.04)  # no ESPIRiT kernel fits, and nothing to fall back on
    with pytest.raises(ModelError, match="too small for ESPIRiT"):
        model(kspace * small, small, empty)


def test_cs_calibrates_espirit_on_a_seven_line_centre_with_a_small_kernel() -> None:
    maps = birdcage_maps(8, 96, 180)
    image = sparse_phantom(96, 180)
    mask = torch.zeros(1, 1, 1, 180)
    mask[..., ::8] = 1
    mask[..., 87:94] = 1  # fastMRI's 8x centre of a 180-column scan: 7 lines around column 90
    kspace = measure(image, maps, mask, noise=0.01)
    width = espirit_calibration_width(
        describe_mask(mask).acs_slices, cast(tuple[int, int], tuple(kspace.shape[-2:])), 24
    )
    assert width == 7 and espirit_kernel_width(width) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fall-back: ESPIRiT itself found the maps
        espirit = L1WaveletCS().coil_maps_for(kspace, mask, maps)
    assert bool(rss(espirit).amax() > 0)


def test_cs_on_the_real_poisson_brain_stays_consistent_with_the_measurement(
    shared_data: Path, device: torch.device
) -> None:
    """8-coil 230×180 in-vivo brain, prospectively Poisson-undersampled: no truth, so check that the
    default CS (ESPIRiT maps, 100 iterations) runs and reproduces the measured samples."""
    kspace = torch.from_numpy(np.load(shared_data / BRAIN))[None].to(device)
    mask = mask_from_kspace(kspace[0]).reshape(1, 1, 230, 180).to(device)
    assert mask.shape == (1, 1, 230, 180)
    no_maps = torch.zeros_like(kspace)  # the default estimates ESPIRiT maps and ignores these
    default = L1WaveletCS()
    maps = default.coil_maps_for(kspace, mask, no_maps)
    assert maps.shape == kspace.shape and maps.device.type == device.type
    # The default model is ESPIRiT followed by CS with those maps (checked on a phantom above);
    # here the maps are estimated once and handed over, to save a second ESPIRiT.
    image = L1WaveletCS(L1WaveletConfig(coil_maps="given"))(kspace, mask, maps).image
    assert image.shape == (1, 230, 180) and image.device.type == device.type
    zero_filled = rss(ifft2c(kspace))
    # Same scale as the zero-filled RSS (CS restores signal that aliasing spread out, and removes noise).
    ratio = float(image.abs().max() / zero_filled.max())
    print("CS max / zero-filled RSS max", ratio)
    assert 0.7 < ratio < 1.6, ratio
    # Consistent with the measured samples: a bounded residual on the sampled locations (what the
    # L1 term trades for sparsity, noise included), relative to the measured k-space.
    operator = MultiCoilOperator(maps, mask)
    residual = float((operator(image) - kspace).norm() / kspace.norm())
    print("relative residual on the sampled locations", residual)
    assert residual < 0.1


def test_cs_with_espirit_maps_that_vanish_everywhere_falls_back_or_fails_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No coil sensitivity above the crop: the given maps with a warning, or without them a clear
    error, never FISTA dividing by a zero step size."""
    from mrirecon.models.baselines import compressed_sensing

    kspace, mask, maps, _ = cs_scene()
    monkeypatch.setattr(compressed_sensing, "estimate_coil_maps_espirit", lambda k, **_: torch.zeros_like(k))
    model = L1WaveletCS(L1WaveletConfig(iterations=3))
    with pytest.raises(ModelError, match=r"ESPIRiT found no coil sensitivity above espirit_crop 0\.95"):
        model(kspace, mask, torch.zeros_like(maps))
    with pytest.warns(UserWarning, match="ESPIRiT found no coil sensitivity.*data layer's coil maps"):
        assert torch.equal(model.coil_maps_for(kspace, mask, maps), maps)
