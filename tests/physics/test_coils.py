"""Coil maps: normalisation, ACS estimation (recovers known maps), ESPIRiT through SigPy, RSS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrirecon.physics import (
    espirit_calibration_width,
    espirit_kernel_width,
    estimate_coil_maps_acs,
    estimate_coil_maps_espirit,
    fft2c,
    normalize_coil_maps,
    rss,
    sense_expand,
)
from tests.helpers import complex_randn


def birdcage_scene(size: int = 64, coils: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    import sigpy.mri

    maps = torch.from_numpy(sigpy.mri.birdcage_maps((coils, size, size), r=1.3, dtype=np.complex64))[None]
    maps = normalize_coil_maps(maps)
    y, x = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    image = torch.from_numpy(((x**2 / 0.7 + y**2 / 0.9) < 0.8).astype(np.complex64) * (1 + 0.5 * x))[None]
    kspace = fft2c(sense_expand(image, maps))
    return kspace, maps, image


def test_normalised_maps_have_unit_sum_of_squares() -> None:
    maps = complex_randn(2, 4, 6, 7, generator=torch.Generator().manual_seed(0))
    maps[:, :, 0, 0] = 0
    out = normalize_coil_maps(maps)
    energy = rss(out) ** 2
    assert torch.allclose(energy[:, 1:, 1:], torch.ones_like(energy[:, 1:, 1:]), atol=1e-5)
    assert torch.all(energy[:, 0, 0] == 0)


def test_rss_matches_definition() -> None:
    x = complex_randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(rss(x), torch.sqrt((x.abs() ** 2).sum(1)), atol=1e-6)


@pytest.mark.parametrize("taper", [True, False])
def test_acs_estimate_recovers_smooth_maps_inside_the_object(taper: bool) -> None:
    kspace, maps, image = birdcage_scene()
    acs = torch.zeros(1, 1, 1, 64)
    acs[..., 24:40] = 1
    est = estimate_coil_maps_acs(kspace * acs, acs, taper=taper)
    assert est.shape == maps.shape and est.dtype == torch.complex64
    support = image.abs()[0] > 0
    # Maps are defined up to one common phase per pixel: compare |⟨S_true, S_est⟩| over coils.
    agreement = (maps.conj() * est).sum(1).abs()[0][support]
    assert agreement.mean() > 0.97
    assert torch.allclose(rss(est)[0][support], torch.ones(int(support.sum())), atol=1e-4)


@pytest.mark.parametrize("taper", [True, False])
def test_uncentred_acs_estimate_equals_the_centred_one_rolled(taper: bool) -> None:
    """Uncentred k-space holds its ACS lines at both edges: the taper must still span that block."""
    kspace, _, _ = birdcage_scene()
    acs = torch.zeros(1, 1, 1, 64)
    acs[..., 24:40] = 1
    centred = estimate_coil_maps_acs(kspace * acs, acs, taper=taper)
    spatial = (-2, -1)
    uncentred = estimate_coil_maps_acs(
        torch.fft.ifftshift(kspace * acs, dim=spatial),
        torch.fft.ifftshift(acs, dim=(-1,)),
        taper=taper,
        centered=False,
    )
    # the uncentred image is the centred one rolled by half the grid, its maps likewise
    torch.testing.assert_close(torch.fft.fftshift(uncentred, dim=spatial), centred, rtol=1e-4, atol=1e-5)


def test_acs_threshold_zeroes_background() -> None:
    kspace, _, _ = birdcage_scene()
    acs = torch.zeros(1, 1, 1, 64)
    acs[..., 24:40] = 1
    est = estimate_coil_maps_acs(kspace * acs, acs, threshold=0.2)
    corner = rss(est)[0, :4, :4]
    assert torch.all(corner == 0)


def test_acs_rejects_an_empty_region() -> None:
    kspace, _, _ = birdcage_scene(16, 2)
    with pytest.raises(ValueError, match="empty"):
        estimate_coil_maps_acs(kspace, torch.zeros(1, 1, 1, 16))


@pytest.mark.slow
def test_espirit_recovers_maps() -> None:
    kspace, maps, image = birdcage_scene(48, 4)
    est = estimate_coil_maps_espirit(kspace, calib_width=20, max_iter=30)
    support = image.abs()[0] > 0
    agreement = (maps.conj() * est).sum(1).abs()[0][support]
    assert agreement.mean() > 0.97


def test_espirit_calibration_width_is_the_largest_sigpy_centred_block_inside_the_centre() -> None:
    # 12 centre lines [14, 26) of 40: SigPy's block of w starts at 20 - w // 2
    assert espirit_calibration_width((slice(14, 26),), (64, 40), 24) == 12
    assert espirit_calibration_width((slice(14, 26),), (64, 40), 8) == 8
    # [14, 25): a block of 11 or 12 would start at 15 or 14 and end at 26 > 25; 10 fits
    assert espirit_calibration_width((slice(14, 25),), (64, 40), 24) == 10
    # 2-D: 8 rows around row 15 of 30 and 20 columns around column 20 of 40
    assert espirit_calibration_width((slice(11, 19), slice(10, 30)), (30, 40), 24) == 8
    # no fully sampled centre
    assert espirit_calibration_width((slice(20, 20),), (64, 40), 24) == 0


def test_espirit_kernel_width_is_half_the_calibration_and_never_below_two() -> None:
    assert espirit_kernel_width(24) == 6
    assert espirit_kernel_width(7) == 3
    assert espirit_kernel_width(4) == 2
    assert espirit_kernel_width(3) == 0
    assert espirit_kernel_width(24, limit=4) == 4


def test_the_acs_taper_is_a_hann_window_that_keeps_every_measured_line() -> None:
    """The taper over a 7-line centre is Hann(9) without its two zero ends: every measured
    calibration line keeps a weight above 0 (a narrow 8× centre has no line to spare)."""
    from mrirecon.physics.coils import _acs_window

    acs = torch.zeros(1, 1, 1, 32, dtype=torch.bool)
    acs[..., 12:19] = True
    window = _acs_window(acs, 2)[0, 0, 0]
    np.testing.assert_allclose(window[12:19].numpy(), np.hanning(9)[1:-1], rtol=1e-6, atol=1e-7)
    assert bool((window[12:19] > 0).all()) and not window[:12].any() and not window[19:].any()
