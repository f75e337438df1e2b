"""The realistic simulator: real anatomy, determinism, the noise it claims, normalised coils, lesions,
the real-anatomy evaluation set, the on-the-fly stream and the files it writes."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mrirecon.data.anatomy import ORIENTATIONS, load_template, sample_tissue_slice
from mrirecon.data.coil_arrays import coil_noise, noise_covariance, simulate_array
from mrirecon.data.real_anatomy import real_images, simulate_real_anatomy
from mrirecon.data.realistic import (
    RealisticOptions,
    acquire,
    expected_target,
    simulate_realistic_slice,
    simulate_realistic_volume,
)
from mrirecon.data.realistic_dataset import noise_covariance_of
from mrirecon.data.simulate import simulate_dataset
from mrirecon.data.stream import SimulatedSliceDataset
from mrirecon.data.transforms import ReconTransform
from mrirecon.data.volume import open_volume
from mrirecon.errors import ConfigError
from mrirecon.masks import create_mask_func
from mrirecon.physics import ifft2c
from mrirecon_cli.main import cli

SMALL = RealisticOptions(rows=(96, 96), aspect=(0.75, 0.75), coils=(6, 6), multiple=8)


def test_the_same_seed_gives_the_same_slice_and_another_seed_another() -> None:
    a = simulate_realistic_slice(RealisticOptions(rows=(96, 128)), (3, 1))
    b = simulate_realistic_slice(RealisticOptions(rows=(96, 128)), (3, 1))
    c = simulate_realistic_slice(RealisticOptions(rows=(96, 128)), (3, 2))
    assert np.array_equal(a.kspace, b.kspace) and np.array_equal(a.labels, b.labels)
    assert a.params == b.params
    assert a.kspace.shape != c.kspace.shape or not np.allclose(a.kspace, c.kspace)


def test_an_odd_matrix_keeps_the_zero_frequency_at_its_centre() -> None:
    """The kept block of the fine spectrum is centred on its zero frequency for odd sizes too (it sat
    one sample off: a 2π phase ramp across the field of view)."""
    from mrirecon.physics import fft2c

    offsets = []
    for seed in range(4):
        sim = simulate_realistic_slice(RealisticOptions(rows=(65, 65), aspect=(1.0, 1.0), multiple=1), seed)
        power = fft2c(torch.from_numpy(sim.image)).abs().numpy() ** 2
        rows = np.arange(power.shape[0])[:, None]
        offsets.append(float((rows * power).sum() / power.sum()) - power.shape[0] // 2)
    assert sim.image.shape == (65, 65)
    assert abs(np.mean(offsets)) < 0.4  # the smooth phase moves each a little; the bug moved all by 1


def test_sizes_coils_and_choices_stay_in_the_ranges_asked_for() -> None:
    options = RealisticOptions(rows=(160, 200), aspect=(0.75, 1.0), coils=(4, 10), multiple=8)
    seen: dict[str, set[Any]] = {"orientation": set(), "contrast": set(), "coil_array": set()}
    for seed in range(16):
        sim = simulate_realistic_slice(options, seed)
        coils, height, width = sim.kspace.shape
        assert 160 <= height <= 200 and height % 8 == 0 and width % 8 == 0
        assert 0.7 * height <= width <= 1.05 * height
        assert 4 <= coils <= 10 and sim.target.shape == (height, width)
        for key in seen:
            seen[key].add(sim.params[key])
    assert seen["orientation"] == set(ORIENTATIONS)
    assert seen["coil_array"] == {"birdcage", "surface"}
    assert len(seen["contrast"]) >= 4


def test_the_anatomy_is_a_brain_from_the_template() -> None:
    template = load_template()
    assert template.tissues.shape[0] == 3 and float(template.tissues.max()) <= 1.0
    rng = np.random.default_rng(0)
    tissue = sample_tissue_slice(rng, (128, 128), (220.0, 220.0), orientation="axial", depth=0.1)
    brain = tissue.brain
    assert 0.15 < float((brain > 0.5).mean()) < 0.6  # the brain fills part of the field of view
    inside = brain > 0.5
    assert float(tissue.wm[inside].mean()) > 0.2 and float(tissue.gm[inside].mean()) > 0.2
    assert float(brain[0].max()) == 0.0 and float(brain[:, 0].max()) == 0.0  # background at the edge


def test_coil_maps_are_normalised_for_both_array_kinds() -> None:
    rng = np.random.default_rng(1)
    for kind in ("birdcage", "surface"):
        maps, raw = simulate_array(kind, 12, (80, 64), (220.0, 176.0), rng)
        assert maps.shape == (12, 80, 64) and maps.dtype == np.complex64
        np.testing.assert_allclose((np.abs(maps) ** 2).sum(axis=0), 1.0, atol=1e-5)
        magnitude = np.abs(raw)
        assert float(magnitude.max() / magnitude.min()) > 2  # the sensitivities vary across the FOV
    with pytest.raises(ConfigError, match="unknown coil array"):
        simulate_array("helmet", 4, (32, 32), (220.0, 220.0), rng)


def test_noise_covariance_looks_like_a_real_scan() -> None:
    rng = np.random.default_rng(2)
    _, raw = simulate_array("surface", 14, (96, 96), (220.0, 220.0), rng)
    psi = noise_covariance(raw, rng)
    assert np.allclose(psi, psi.conj().T) and np.all(np.linalg.eigvalsh(psi) > 0)
    assert float(np.real(np.trace(psi))) == pytest.approx(14.0)
    diag = np.sqrt(np.real(np.diag(psi)))
    correlation = np.abs(psi / np.outer(diag, diag))[~np.eye(14, dtype=bool)]
    assert 0.01 < float(correlation.mean()) < 0.4  # the real 14-coil scan: mean 0.11
    noise = coil_noise(psi, (200, 200), 0.5, rng)
    estimate = noise.reshape(14, -1) @ noise.reshape(14, -1).conj().T / noise[0].size
    np.testing.assert_allclose(estimate, 0.25 * psi, atol=0.01)


def test_the_noise_covariance_and_snr_written_are_recovered_from_the_kspace(tmp_path: Path) -> None:
    options = RealisticOptions(rows=(192, 192), aspect=(1.0, 1.0), coils=(8, 8), skull=0.0, snr=(20, 20))
    [path] = simulate_dataset(
        tmp_path, volumes=1, slices=2, coils=8, seed=5, anatomy="mni", realistic=options
    )
    with open_volume(path) as volume:
        covariance = noise_covariance_of(volume.attrs)
        per_slice = [noise_covariance_of(volume.attrs, s) for s in range(volume.num_slices)]
        sigmas = np.asarray(volume.attrs["mrirecon_noise_std_slices"])
        snr, sigma = float(volume.attrs["mrirecon_snr"]), float(volume.attrs["mrirecon_noise_std"])
        kspace = np.stack([volume.read_kspace(s) for s in range(volume.num_slices)])
        target = np.stack([cast(np.ndarray, volume.read_target(s)) for s in range(volume.num_slices)])
    assert covariance is not None and covariance.shape == (8, 8)
    assert snr == pytest.approx(20.0)
    assert float(np.real(np.trace(covariance))) / 8 == pytest.approx(sigma**2, rel=1e-6)
    images = ifft2c(torch.from_numpy(kspace)).numpy()  # (S, C, H, W) coil images
    # background: far from the head (the skull-stripped brain and its Gibbs ringing)
    from scipy import ndimage

    smooth = np.stack([ndimage.gaussian_filter(t, 3.0) for t in target])
    head = np.stack([ndimage.binary_dilation(t > 0.25 * smooth.max(), iterations=12) for t in smooth])
    # each slice's own σ (it follows the slice's brain signal; the file recorded slice 0's only,
    # and other slices of a volume carried up to 5 times that variance)
    assert sigmas[0] == sigma and np.ptp(sigmas) > 0
    for s, expected in enumerate(per_slice):
        assert expected is not None
        noise = images[s][:, ~head[s]]  # (C, N)
        assert noise.shape[1] > 10000
        estimate = noise @ noise.conj().T / noise.shape[1]
        assert np.abs(estimate - expected).max() < 0.08 * np.abs(np.diag(expected)).max()
        # SNR: mean brain magnitude over σ, σ² the mean noise variance per coil
        assert float(np.sqrt(np.real(np.trace(estimate)) / 8)) == pytest.approx(sigmas[s], rel=0.04)
    assert per_slice[0] is not None and np.array_equal(per_slice[0], covariance)


def test_lesions_are_hypo_and_hyperintense_and_labelled() -> None:
    options = RealisticOptions(
        rows=(128, 128), aspect=(1, 1), coils=(4, 4), lesion_probability=1.0, lesion_count=(4, 6)
    )
    contrasts = []
    for seed in range(6):
        sim = simulate_realistic_slice(options, seed)
        assert int(sim.labels.max()) == len(sim.lesions)
        for k, lesion in enumerate(sim.lesions, start=1):
            assert (sim.labels == k).any()
            contrasts.append(lesion.contrast)
    assert min(contrasts) < 1.0 < max(contrasts)


def test_volume_slices_share_array_and_contrast_and_move_along_the_normal() -> None:
    slices = simulate_realistic_volume(SMALL, (0, 4), slices=3)
    assert len({s.kspace.shape for s in slices}) == 1
    assert all(np.array_equal(s.coil_maps, slices[0].coil_maps) for s in slices)
    assert len({s.params["contrast"] for s in slices}) == 1
    depths = [s.params["depth"] for s in slices]
    assert depths[0] < depths[1] < depths[2]


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="rows"):
        RealisticOptions(rows=(200, 100))
    with pytest.raises(ConfigError, match="contrasts"):
        RealisticOptions(contrasts=("t3",))
    with pytest.raises(ConfigError, match="probability"):
        RealisticOptions(skull=1.5)
    with pytest.raises(ConfigError, match="sharpen"):
        RealisticOptions(sharpen=(0.5, 2.0))
    with pytest.raises(ConfigError, match="sulci"):
        RealisticOptions(sulci=(0.5, 1.5))
    with pytest.raises(ConfigError, match="texture"):
        RealisticOptions(texture=(0.1, 0.05))
    # sizes that allocated without bound, numbers that failed later (overflow, NaN), a silent
    # matrix outside the rows asked for, and arrays whose covariance HDF5 cannot store
    for bad, words in (
        ({"rows": (100000, 100000)}, r"'rows' must be a range .* <= 1024"),
        ({"coils": (4, 100)}, r"'coils' must be a range .* <= 64"),
        ({"snr": (10.0, float("inf"))}, "'snr' must be a range"),
        ({"fov_mm": (float("nan"), 200.0)}, "'fov_mm' must be a range"),
        ({"oversampling": float("nan")}, "'oversampling' must be a number from 1 to 4"),
        ({"oversampling": 1000.0}, "'oversampling' must be a number from 1 to 4"),
        ({"rows": (64, 64), "multiple": 1000}, r"'multiple' must be from 1 to the least rows \(64\)"),
    ):
        with pytest.raises(ConfigError, match=words):
            RealisticOptions(**bad)


def _fine_energy(image: np.ndarray) -> float:
    """Share of an image's energy beyond 1/8 of k-space's extent in either direction."""
    power = np.abs(np.fft.fftshift(np.fft.fft2(image))) ** 2
    ky, kx = (np.abs(np.fft.fftshift(np.fft.fftfreq(n))) for n in image.shape)
    return float(power[np.maximum(ky[:, None], kx[None, :]) > 0.125].sum() / power.sum())


def test_sharper_tissue_and_deeper_sulci_give_finer_structure() -> None:
    """The anatomy options act on the image: the same draws, sharpened more, carry more fine detail."""
    base = RealisticOptions(rows=(96, 96), aspect=(1.0, 1.0), coils=(4, 4), lesion_probability=0.0)
    sharp = replace(base, sharpen=(4.0, 5.0), sulci=(0.8, 1.0))
    smooth = replace(base, sharpen=(1.0, 1.0), sulci=(0.0, 0.0))
    shares = {
        name: np.mean([_fine_energy(simulate_realistic_slice(o, (5, i)).image) for i in range(4)])
        for name, o in (("sharp", sharp), ("smooth", smooth))
    }
    assert shares["sharp"] > 1.1 * shares["smooth"], shares


def test_the_simulator_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    load_template.cache_clear()
    sim = simulate_realistic_slice(SMALL, 9)
    assert np.isfinite(sim.kspace).all()
    assert len(real_images()) == 7


def test_the_real_anatomy_set_is_real_images_with_simulated_coils_and_lesions() -> None:
    images = real_images()
    assert images[0].image.shape == (256, 256) and images[1].image.shape == (128, 128)
    sim = simulate_real_anatomy(images[0], 0)
    assert sim.kspace.shape[1:] == (256, 256) and 8 <= sim.kspace.shape[0] <= 16
    assert 3 <= len(sim.lesions) <= 6 and int(sim.labels.max()) == len(sim.lesions)
    again = simulate_real_anatomy(images[0], 0)
    assert np.array_equal(sim.kspace, again.kspace)


def test_the_stream_gives_new_slices_each_epoch_and_the_same_for_the_same_key() -> None:
    mask = create_mask_func("mixed", [0] * 3, [2, 4, 8], seed=0)
    dataset = SimulatedSliceDataset(4, 7, SMALL, ReconTransform(mask, deterministic_mask=True))
    first, again, later = dataset[(0, 1)], dataset[(0, 1)], dataset[(1, 1)]
    assert torch.equal(first.masked_kspace, again.masked_kspace)
    assert not torch.equal(first.target, later.target)
    assert first.target.shape == (96, 72) and first.max_value > 0
    assert dataset[2].fname == "sim_s7_000002.h5"


def test_the_training_loader_asks_the_stream_for_each_epochs_slices() -> None:
    """Through the training wrapper (:class:`SeededDataset`) item ``(epoch, index)`` is the
    stream's: new slices every epoch, not epoch 0's again and again."""
    from mrirecon.training.samplers import SeededDataset

    mask = create_mask_func("equispaced_fraction", [0.08], [4], seed=0)
    stream = SimulatedSliceDataset(4, 7, SMALL, ReconTransform(mask, deterministic_mask=True))
    loader = SeededDataset(stream, seed=3)
    assert not torch.equal(loader[(0, 1)].target, loader[(1, 1)].target)
    assert torch.equal(loader[(1, 1)].target, stream[(1, 1)].target)


def test_the_simulated_noise_gives_the_snr_asked_for() -> None:
    """``snr``: the mean magnitude inside the brain over the noise's standard deviation per coil."""
    sim = simulate_realistic_slice(replace(SMALL, snr=(8.0, 8.0)), 4)
    assert sim.snr == pytest.approx(8.0)
    assert float(np.abs(sim.image)[sim.brain > 0.5].mean()) / sim.noise_std == pytest.approx(8.0, rel=1e-5)


def test_the_expected_target_is_the_noisy_references_level_without_its_noise() -> None:
    sim = simulate_realistic_slice(replace(SMALL, snr=(8.0, 8.0)), 4)
    expected = expected_target(sim)
    rng = np.random.default_rng(0)
    draws = np.stack(
        [acquire(sim.image, sim.coil_maps, sim.noise_covariance, 1.0, rng)[1] for _ in range(400)]
    )
    # E[RSS²] over the noise is the expected target squared, pixel by pixel (400 draws: ~2 % scatter)
    relative = (draws**2).mean(0) / expected**2 - 1
    assert abs(float(relative.mean())) < 0.005 and float(np.median(np.abs(relative))) < 0.03
    clean = acquire(sim.image, sim.coil_maps, sim.noise_covariance, 0.0, rng)[1]  # the noiseless RSS
    background = clean < 0.05 * clean.max()
    floor = float((draws.mean(0) - clean)[background].mean())
    assert floor > 0.02 * float(clean.max())  # the noisy reference has a noise floor ...
    assert abs(float((draws.mean(0) - expected)[background].mean())) < 0.05 * floor  # ... and it has it
    # the stream serves it for the same k-space when asked
    mask = create_mask_func("mixed", [0] * 3, [2, 4, 8], seed=0)
    noisy = SimulatedSliceDataset(2, 7, SMALL, ReconTransform(mask, deterministic_mask=True))
    quiet = SimulatedSliceDataset(
        2, 7, SMALL, ReconTransform(mask, deterministic_mask=True), target="expected"
    )
    assert torch.equal(noisy[1].masked_kspace, quiet[1].masked_kspace)
    np.testing.assert_allclose(
        quiet[1].target.numpy() * quiet[1].scale, expected_target(quiet.volume(1).simulation), rtol=1e-5
    )
    assert not torch.equal(noisy[1].target, quiet[1].target)
    with pytest.raises(ValueError, match="target must be one of"):
        SimulatedSliceDataset(2, 7, SMALL, ReconTransform(mask), target="clean")


def test_simulate_cli_writes_realistic_and_real_anatomy_sets(tmp_path: Path) -> None:
    args = ["--volumes", "2", "--slices", "2", "--size", "96", "80", "--coils", "6", "--lesions"]
    result = CliRunner().invoke(
        cli, ["simulate", str(tmp_path / "mni"), "--anatomy", "mni", *args, "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 2 volume(s)" in result.output
    files = sorted((tmp_path / "mni").glob("*.h5"))
    with h5py.File(files[0]) as f:
        assert f["kspace"].shape == (2, 6, 96, 80)
        assert f.attrs["mrirecon_noise_covariance_real"].shape == (6, 6)
        assert "lesion_labels" in f
    result = CliRunner().invoke(
        cli, ["simulate", str(tmp_path / "real"), "--anatomy", "dipy", "--volumes", "1", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "real").glob("*.h5"))) == 2
    ignored = CliRunner().invoke(
        cli, ["simulate", str(tmp_path / "real2"), "--anatomy", "dipy", "--size", "64", "64", "--coils", "4"]
    )
    assert ignored.exit_code == 2 and "--size, --coils would be ignored" in ignored.output


def test_every_slice_shows_anatomy_and_carries_noise() -> None:
    options = RealisticOptions(rows=(64, 64), aspect=(1.0, 1.0), coils=(2, 2))
    for seed in range(60):
        sim = simulate_realistic_slice(options, (0, 0, seed))
        assert float((sim.brain > 0.5).mean()) >= 0.02, seed
        assert sim.noise_std > 0 and float(np.abs(sim.kspace).max()) > 0
