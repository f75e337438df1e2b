"""ReconTransform: sampling (retrospective, deterministic per volume, prospective), the documented and
invertible normalisation, crops, coil maps, uncentred data, and batching with the default collate."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, cast

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from mrirecon.data.header import EncodingLimits, build_ismrmrd_header
from mrirecon.data.raw import ArrayVolume
from mrirecon.data.sample import ReconSample
from mrirecon.data.transforms import ReconTransform, normalize_slice, zero_filled_rms
from mrirecon.data.volume import open_volume
from mrirecon.errors import ConfigError, DataError
from mrirecon.masks import create_mask_func, describe_mask
from mrirecon.masks.seeding import mask_seed
from mrirecon.physics import fftnc, ifft2c, ifftnc, rss
from tests.data.helpers import multicoil_kspace, raw_h5, rss_target, write_fastmri


@pytest.fixture
def padded_file(tmp_path: Path) -> Path:
    """Fully sampled, 40×28 k-space, reference cropped to 32×24, columns outside [2, 26) zero-padded."""
    kspace = multicoil_kspace(slices=3, coils=4, height=40, width=28)
    kspace[..., :2] = 0
    kspace[..., 26:] = 0
    header = build_ismrmrd_header(
        encoded_matrix=(40, 28, 1), recon_matrix=(32, 24, 1), e1_limits=EncodingLimits(0, 23, 12)
    )
    return write_fastmri(tmp_path / "padded.h5", kspace, crop=(32, 24), header_xml=header)


def _mask_func(seed: int = 0):
    return create_mask_func("random", [0.2], [3], seed=seed)


def test_normalisation_is_documented_and_invertible(padded_file: Path) -> None:
    transform = ReconTransform(mask_func=_mask_func(), deterministic_mask=True)
    with open_volume(padded_file) as volume:
        sample = transform(volume, 1)
        kspace = torch.from_numpy(volume.read_kspace(1))
        target = volume.read_target(1)
        assert target is not None
        attrs_max = volume.attrs["max"]
    assert isinstance(sample, ReconSample)
    masked = kspace * sample.mask + 0.0
    # scale = RMS over the H×W grid of the zero-filled RSS image of the measured k-space (by FFT here)
    zero_filled = rss(ifft2c(masked.to(torch.complex128)), dim=0)
    assert sample.scale == pytest.approx(float(zero_filled.square().mean().sqrt()), rel=1e-6)
    torch.testing.assert_close(sample.masked_kspace * sample.scale, masked, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(sample.target.numpy() * sample.scale, target, rtol=1e-5)
    assert sample.max_value * sample.scale == pytest.approx(attrs_max, rel=1e-6)
    assert sample.target.shape == (32, 24) and sample.crop_size == (32, 24)
    normalised = rss(ifft2c(sample.masked_kspace), dim=0)
    assert float(normalised.square().mean().sqrt()) == pytest.approx(1.0, rel=1e-5)
    unsampled = sample.masked_kspace[..., sample.mask.reshape(-1) == 0]
    assert (unsampled == 0).all() and not torch.signbit(torch.view_as_real(unsampled)).any()  # no -0.0


def test_padding_columns_are_never_sampled(padded_file: Path) -> None:
    transform = ReconTransform(mask_func=_mask_func())
    with open_volume(padded_file) as volume:
        for index in range(3):
            mask = transform(volume, index).mask
            assert mask.shape == (1, 1, 28) and mask[..., :2].sum() == 0 and mask[..., 26:].sum() == 0
        full = ReconTransform()(volume, 0)  # no mask function: fully sampled over the acquired columns
    assert (
        full.mask[..., 2:26].all() and full.mask.sum() == 24 and full.acceleration == pytest.approx(28 / 24)
    )


def test_a_stored_mask_is_not_served_in_the_padding_columns(tmp_path: Path) -> None:
    # a fastMRI test file: its mask was drawn on the full (padded) width, as fastMRI draws it
    kspace = multicoil_kspace(slices=1, coils=2, height=40, width=28)
    kspace[..., :2] = 0
    kspace[..., 26:] = 0
    stored = np.zeros(28, dtype=bool)
    stored[[0, 1, 5, 9, 12, 13, 14, 15, 19, 23, 26, 27]] = True
    header = build_ismrmrd_header(
        encoded_matrix=(40, 28, 1), recon_matrix=(32, 24, 1), e1_limits=EncodingLimits(0, 23, 12)
    )
    path = raw_h5(tmp_path / "test.h5", kspace=kspace * stored, mask=stored, ismrmrd_header=header)
    with open_volume(path) as volume:
        assert volume.padding == (2, 26)
        mask = ReconTransform()(volume, 0).mask.reshape(-1)
    expected = stored.copy()
    expected[:2] = expected[26:] = False  # what fastMRI's VarNet transform serves
    np.testing.assert_array_equal(mask.numpy().astype(bool), expected)


def test_deterministic_masks_per_volume_and_fresh_masks_for_training(
    padded_file: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other_name.h5"
    other.write_bytes(padded_file.read_bytes())
    fixed = ReconTransform(mask_func=_mask_func(), deterministic_mask=True)
    with open_volume(padded_file) as volume, open_volume(other) as twin:
        masks = [fixed(volume, i).mask for i in range(3)] + [fixed(volume, 0).mask]
        assert all(torch.equal(m, masks[0]) for m in masks)  # every slice and call: one mask per volume
        assert not torch.equal(fixed(twin, 0).mask, masks[0])  # another file name, another mask
        again = ReconTransform(mask_func=_mask_func(seed=99), deterministic_mask=True)
        assert torch.equal(again(volume, 2).mask, masks[0])  # the file name decides, not the generator
        fresh = ReconTransform(mask_func=_mask_func())
        drawn = {tuple(fresh(volume, 0).mask.flatten().tolist()) for _ in range(6)}
        assert len(drawn) > 1


def test_prospective_input_keeps_its_own_mask(tmp_path: Path) -> None:
    kspace = multicoil_kspace(slices=2, coils=3)
    mask = np.zeros(24, dtype=bool)
    mask[[1, 5, 9, 10, 11, 12, 13, 14, 18, 22]] = True
    path = raw_h5(tmp_path / "pro.h5", kspace=kspace * mask, mask=mask)
    with open_volume(path) as volume:
        sample = ReconTransform(mask_func=_mask_func())(volume, 1)  # the mask function is not used
    np.testing.assert_array_equal(sample.mask.reshape(-1).numpy().astype(bool), mask)
    assert sample.num_low_frequencies == 6 and sample.acceleration == pytest.approx(2.4)
    assert sample.target.shape == (32, 24) and not sample.target.any() and sample.max_value == 0.0
    assert sample.lesion_labels.shape == (0, 0)


def test_acs_maps_of_a_mask_without_a_centre_are_a_data_error(tmp_path: Path) -> None:
    kspace = multicoil_kspace(slices=1, coils=3)
    mask = np.zeros(24, dtype=bool)
    mask[1::4] = True  # every fourth line, none at the centre
    path = raw_h5(tmp_path / "no_acs.h5", kspace=kspace * mask, mask=mask)
    with (  # measured data: a retrospective mask's centre fraction is no fix for it
        open_volume(path) as volume,
        pytest.raises(
            DataError, match=r"no_acs\.h5: slice 0: the scan measured no fully sampled centre"
        ) as error,
    ):
        ReconTransform(coil_maps="acs")(volume, 0)
    assert error.value.hint is not None and "center_fractions" not in error.value.hint
    full = raw_h5(tmp_path / "full.h5", kspace=kspace)  # a retrospective mask without a centre: its fix
    no_centre = create_mask_func("equispaced", [0.0], [4])
    # seeded from the file name: its offset (3) leaves the centre line (12) out; a random offset
    # hits it one time in four, and one sampled centre line is a (1-line) fully sampled centre
    drawn, _ = no_centre((32, 24), seed=mask_seed(full.name, deterministic=True))
    assert not drawn[..., 12].any() and drawn.sum() == 6
    with (
        open_volume(full) as volume,
        pytest.raises(DataError, match=r"slice 0: the mask samples no fully sampled centre") as error,
    ):
        ReconTransform(mask_func=no_centre, coil_maps="acs", deterministic_mask=True)(volume, 0)
    assert error.value.hint is not None and "center_fractions" in error.value.hint


def test_crop_and_lesion_labels(sim_dataset: list[Path]) -> None:
    with open_volume(sim_dataset[0]) as volume:
        labels = np.stack([cast(np.ndarray, volume.read_lesion_labels(i)) for i in range(3)])
        index = int(np.argmax(labels.reshape(3, -1).max(axis=1)))
        sample = ReconTransform(crop_size=(48, 40))(volume, index)
        full = ReconTransform()(volume, index)
    assert sample.target.shape == (48, 40) and sample.lesion_labels.shape == (48, 40)
    assert sample.lesion_labels.dtype == torch.int16
    np.testing.assert_array_equal(sample.lesion_labels.numpy(), labels[index, 8:56, 12:52])
    torch.testing.assert_close(sample.target, full.target[8:56, 12:52])
    with pytest.raises(ConfigError, match="larger than the k-space grid"):
        ReconTransform(crop_size=(80, 64))(open_volume(sim_dataset[0]), 0)
    with pytest.raises(ConfigError, match="unknown coil-map method 'sense'"):
        ReconTransform(coil_maps="sense")  # type: ignore[arg-type]


def test_acs_coil_maps_are_normalised_and_explain_the_data(sim_dataset: list[Path]) -> None:
    transform = ReconTransform(
        mask_func=create_mask_func("equispaced_fraction", [0.25], [3]), deterministic_mask=True
    )
    with open_volume(sim_dataset[1]) as volume:
        sample = transform(volume, 1)
    energy = (sample.coil_maps.abs() ** 2).sum(0)
    assert torch.allclose(energy, torch.ones_like(energy), atol=1e-4)
    # the low-resolution maps are close to the coil images' own ratios where the image is bright
    full = ifft2c(torch.from_numpy(open_volume(sim_dataset[1]).read_kspace(1)))
    truth = full / rss(full, dim=0).clamp_min(1e-12)
    bright = rss(full, dim=0) > 0.5 * rss(full, dim=0).max()
    similarity = (sample.coil_maps.conj() * truth).sum(0).abs()[bright]
    assert float(similarity.mean()) > 0.9


def test_acs_maps_of_an_exactly_zero_background_do_not_follow_float_rounding() -> None:
    """A noiseless object on a zero background: the low-resolution coil images there are float
    rounding (~1e-7 of the peak), which unit-norm scaling turned into maps of random phase, so a
    1e-7 change of the data changed the maps by ~1 and a learned model's output by 2 %."""
    from mrirecon.data.coilmaps import ACS_MAP_FLOOR, acs_coil_maps

    kspace = torch.from_numpy(multicoil_kspace(slices=1, coils=4, height=32, width=24)[0])
    mask = torch.zeros(1, 1, 24)
    mask[..., ::4] = 1
    mask[..., 10:14] = 1
    measured = kspace * mask
    measured = measured / measured.abs().pow(2).mean().sqrt()
    nudged = (
        measured
        + 1e-7
        * torch.randn(measured.shape, dtype=measured.dtype, generator=torch.Generator().manual_seed(0))
        * mask
    )
    maps, again = (acs_coil_maps(y, mask, centered=True) for y in (measured, nudged))
    assert float((maps - again).abs().max()) < 1e-3  # was 1.3
    low = rss(ifft2c(measured * (mask != 0)), dim=0)  # about the maps' own low-resolution images
    energy = (maps.abs() ** 2).sum(0)
    assert bool((energy[energy > 0] - 1).abs().max() < 1e-4)  # unit norm where kept
    assert bool((energy == 0).any()) and ACS_MAP_FLOOR < 1e-3  # the background's rounding is cut
    assert bool((energy[low > 0.01 * low.max()] > 0.99).all())  # the object keeps its maps


def test_no_coil_maps_and_batches_collate(sim_dataset: list[Path]) -> None:
    transform = ReconTransform(mask_func=_mask_func(), coil_maps="none")
    with open_volume(sim_dataset[0]) as volume:
        batch = default_collate([transform(volume, 0), transform(volume, 2)])
    assert batch.masked_kspace.shape == (2, 4, 64, 64) and batch.masked_kspace.dtype == torch.complex64
    assert batch.mask.shape == (2, 1, 1, 64) and batch.coil_maps.shape == (2, 0, 0, 0)
    assert batch.target.shape == (2, 64, 64) and batch.lesion_labels.shape[0] == 2
    assert list(batch.fname) == [sim_dataset[0].name] * 2 and batch.slice_num.tolist() == [0, 2]
    assert batch.scale.shape == (2,) and [int(c[0]) for c in batch.crop_size] == [64, 64]


def test_uncentred_data_end_to_end(tmp_path: Path) -> None:
    """Calgary-Campinas-style k-space stored uncentred gives the sample of its centred twin, in the
    uncentred layout: |u| = ifftshift(|c|) for even sizes, masks with their centre at the corners."""
    kspace = multicoil_kspace(slices=2, coils=3)
    images = ifftnc(torch.from_numpy(kspace), 2, centered=True)
    uncentred = fftnc(images, 2, centered=False).numpy()
    (tmp_path / "c").mkdir()
    (tmp_path / "u").mkdir()
    write_fastmri(tmp_path / "c" / "vol.h5", kspace, attrs={})
    write_fastmri(
        tmp_path / "u" / "vol.h5", uncentred, centered=False, reconstruction_rss=rss_target(kspace), attrs={}
    )
    with h5py.File(tmp_path / "u" / "vol.h5") as f:
        assert not f.attrs["mrirecon_fft_centered"]
    transform = ReconTransform(mask_func=create_mask_func("equispaced", [0.25], [2]), deterministic_mask=True)
    with open_volume(tmp_path / "c" / "vol.h5") as centred, open_volume(tmp_path / "u" / "vol.h5") as plain:
        assert centred.centered and not plain.centered
        for make in (transform, ReconTransform()):
            a, b = make(centred, 1), make(plain, 1)
            torch.testing.assert_close(b.mask, torch.fft.ifftshift(a.mask, dim=-1))
            assert b.scale == pytest.approx(a.scale, rel=1e-5)
            assert (b.num_low_frequencies, b.acceleration) == (a.num_low_frequencies, a.acceleration)
            shifted = torch.fft.ifftshift(a.masked_kspace.abs(), dim=(-2, -1))
            torch.testing.assert_close(b.masked_kspace.abs(), shifted, atol=1e-5, rtol=1e-4)
            signal = a.target > 0.1 * a.target.max()  # maps are arbitrary where there is no signal
            torch.testing.assert_close(b.coil_maps[:, signal], a.coil_maps[:, signal], atol=2e-4, rtol=1e-3)
            torch.testing.assert_close(b.target, a.target)
    with open_volume(tmp_path / "u" / "vol.h5", centered=True) as forced:  # the option overrides the file
        assert forced.centered


@pytest.mark.slow
def test_espirit_maps_are_cached_per_volume(
    sim_dataset: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mrirecon.data.coilmaps as coilmaps

    calls: list[int] = []
    real = coilmaps.estimate_coil_maps_espirit

    def counting(kspace: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        calls.append(int(kwargs["calib_width"]))
        return real(kspace, **kwargs)

    monkeypatch.setattr(coilmaps, "estimate_coil_maps_espirit", counting)
    transform = ReconTransform(
        mask_func=create_mask_func("equispaced_fraction", [0.25], [3]),
        deterministic_mask=True,
        coil_maps="espirit",
        espirit_cache_dir=tmp_path / "cache",
    )
    with open_volume(sim_dataset[0]) as volume:
        first = transform(volume, 0)
        second = transform(volume, 0)
        assert len(calls) == 1 and torch.equal(first.coil_maps, second.coil_maps)
        acs_lines = describe_mask(first.mask).num_low_frequencies
        assert 16 <= acs_lines < 24 and calls[0] == acs_lines  # the fully sampled centre, not more
        fresh = pickle.loads(pickle.dumps(transform))  # a worker's copy: empty memory, shared disk cache
        assert torch.equal(fresh(volume, 0).coil_maps, first.coil_maps) and len(calls) == 1
        transform(volume, 1)
        assert len(calls) == 2
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2
    energy = (first.coil_maps.abs() ** 2).sum(0)
    assert torch.allclose(energy[energy > 0], torch.ones(()), atol=1e-4)


@pytest.mark.parametrize("shape", [(3, 32, 24), (2, 31, 17)])
def test_scale_is_the_zero_filled_rms_whatever_the_fft_centring(shape: tuple[int, int, int]) -> None:
    """Parseval: sqrt(Σ|y|² / (H·W)) is the RMS of the zero-filled RSS image, centred FFT or plain."""
    kspace = torch.randn(*shape, dtype=torch.complex64) * 3.0
    kspace[..., ::3] = 0
    for centered in (True, False):
        image = rss(ifftnc(kspace.to(torch.complex128), 2, centered=centered), dim=0)
        assert zero_filled_rms(kspace) == pytest.approx(float(image.square().mean().sqrt()), rel=1e-9)


@pytest.fixture(params=[1, 2], ids=["torch-1-thread", "numpy-2-threads"])
def threads(request: pytest.FixtureRequest):  # the two implementations of the masking pass
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("two_d", [False, True])
def test_normalize_slice_masks_and_scales_in_place(two_d: bool, threads: int) -> None:
    generator = torch.Generator().manual_seed(0)
    kspace = torch.randn(4, 30, 22, dtype=torch.complex64, generator=generator) * 1e-4  # raw-data-like
    shape = (1, 30, 22) if two_d else (1, 1, 22)
    mask = (torch.rand(shape, generator=generator) < 0.4).to(torch.float32)
    mask[..., 11] = 1
    data = kspace.numpy().copy()
    out, scale = normalize_slice(data, mask)
    assert out.data_ptr() == data.ctypes.data  # in place: no copy of the slice
    expected = kspace * mask + 0.0
    assert scale == pytest.approx(zero_filled_rms(expected), rel=1e-5)
    torch.testing.assert_close(out * scale, expected, rtol=1e-5, atol=1e-12)
    unsampled = torch.view_as_real(out[:, (mask[0] == 0).expand(30, 22)])
    assert unsampled.numel() > 0 and (unsampled == 0).all() and not torch.signbit(unsampled).any()
    read_only = kspace.numpy().copy()
    read_only.flags.writeable = False  # a memory-mapped file: read, never written
    again, same = normalize_slice(read_only, mask)
    assert (
        torch.equal(again, out) and same == scale and torch.equal(torch.from_numpy(read_only.copy()), kspace)
    )
    with pytest.raises(ValueError, match="mask"):
        normalize_slice(kspace.numpy().copy(), mask[..., :21])


def test_normalize_slice_checks_the_slice_like_the_reader() -> None:
    mask = torch.zeros(1, 1, 8)
    mask[..., 2:5] = 1
    for bad, message in ((np.nan, "NaN or Inf"), (np.inf, "NaN or Inf")):
        data = np.ones((2, 6, 8), dtype=np.complex64)
        data[1, 3, 7] = bad  # outside the mask: the whole slice is checked, as on reading
        with pytest.raises(DataError, match=message):
            normalize_slice(data, mask, Path("vol.h5"), 4)
    with pytest.raises(DataError, match="slice 4 of the k-space is all zeros"):
        normalize_slice(np.zeros((2, 6, 8), dtype=np.complex64), mask, Path("vol.h5"), 4)
    outside = np.zeros((2, 6, 8), dtype=np.complex64)
    outside[..., 0] = 1
    with pytest.raises(DataError, match="all zero after masking"):
        normalize_slice(outside, mask, Path("vol.h5"), 4)
    huge = np.full((2, 6, 8), 3e30, dtype=np.complex64)  # real, finite, but Σ|y|² overflows float32
    out, scale = normalize_slice(huge, mask)
    assert scale == pytest.approx(3e30 * np.sqrt(2 * 6 * 3 / 48), rel=1e-5)  # 36 samples on 6×8
    assert torch.isfinite(torch.view_as_real(out)).all()


def test_two_dimensional_masks(sim_dataset: list[Path]) -> None:
    transform = ReconTransform(mask_func=create_mask_func("gaussian2d", [0.1], [4]), deterministic_mask=True)
    with open_volume(sim_dataset[0]) as volume:
        sample = transform(volume, 1)
        kspace = torch.from_numpy(volume.read_kspace(1))
    assert sample.mask.shape == (1, 64, 64) and sample.acceleration == pytest.approx(4.0, rel=0.05)
    torch.testing.assert_close(
        sample.masked_kspace * sample.scale, kspace * sample.mask, rtol=1e-5, atol=1e-7
    )
    unsampled = sample.masked_kspace[:, sample.mask[0] == 0]
    assert (unsampled == 0).all() and not torch.signbit(torch.view_as_real(unsampled)).any()


def test_the_transform_never_writes_into_the_volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory-mapped files and in-memory arrays are only read; h5py reads give the same sample."""
    kspace = multicoil_kspace(slices=2, coils=3)
    path = write_fastmri(tmp_path / "vol.h5", kspace)
    before = path.read_bytes()
    transform = ReconTransform(mask_func=_mask_func(), deterministic_mask=True, coil_maps="none")
    array = ArrayVolume(path, kspace.copy())  # same name: same deterministic mask
    with open_volume(path) as mapped:
        samples = [transform(mapped, 1), transform(mapped, 1), transform(array, 1)]
    np.testing.assert_array_equal(array.kspace_array(), kspace)
    assert path.read_bytes() == before
    monkeypatch.setenv("MRIRECON_NO_MMAP", "1")
    with open_volume(path) as read:
        samples.append(transform(read, 1))
    for sample in samples[1:]:
        assert (
            torch.equal(sample.masked_kspace, samples[0].masked_kspace) and sample.scale == samples[0].scale
        )


def test_the_espirit_cache_keeps_maps_of_a_reference_scan_apart(tmp_path: Path) -> None:
    """Maps estimated from a separate reference scan and from the slice's own k-space are cached
    under different keys (a cache written before a file's reference scan was used never serves
    them for it)."""
    from mrirecon.data.coilmaps import EspiritCache

    kspace = torch.zeros(2, 24, 24, dtype=torch.complex64)
    kspace[0, 8:16, 8:16] = 1.0
    kspace[1, 8:16, 8:16] = torch.tensor(1j)
    other = kspace.roll(3, dims=-1)
    cache = EspiritCache(tmp_path / "cache")
    (tmp_path / "vol.h5").write_bytes(b"")
    own = cache.maps(tmp_path / "vol.h5", 0, kspace, 8, centered=True)
    reference = cache.maps(tmp_path / "vol.h5", 0, other, 8, centered=True, source="reference")
    assert not torch.equal(own, reference)
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*.npy")) == [
        "00000_8.npy",
        "00000_8_reference.npy",
    ]
    # a volume without a file (simulated in memory) is cached inside the cache folder too
    cache.maps(tmp_path / "nowhere" / "sim.h5", 0, kspace, 8, centered=True)
    assert not (tmp_path / "nowhere").exists() and len(list((tmp_path / "cache").rglob("*.npy"))) == 3
