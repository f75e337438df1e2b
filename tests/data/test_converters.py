"""NumPy, BART and ISMRMRD inputs: round trips, recovered masks, 3-D decoupling, pre-whitening."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import ismrmrd
import numpy as np
import pytest
import torch

from mrirecon.data.bart import read_cfl, write_cfl
from mrirecon.data.convert import convert_volume
from mrirecon.data.header import EncodingLimits, build_ismrmrd_header, rewrite_encoding
from mrirecon.data.ismrmrd_raw import Frame, whitening_matrix
from mrirecon.data.raw import RawVolume
from mrirecon.data.volume import open_volume
from mrirecon.errors import DataError
from mrirecon.masks import create_mask_func
from mrirecon.physics import fft2c, fftnc, ifftnc
from tests.data.helpers import disc_image, multicoil_kspace, smooth_maps, write_ismrmrd


def _all_slices(path: Path, **kwargs: Any) -> tuple[np.ndarray, RawVolume]:
    volume = open_volume(path, **kwargs)
    data = np.stack([volume.read_kspace(i) for i in range(volume.num_slices)])
    for i in range(volume.num_slices):  # what loaders read: C-ordered complex64, whatever the file's order
        served = volume.kspace_slice(i)
        assert served.dtype == np.complex64 and served.flags.c_contiguous
        np.testing.assert_array_equal(served, data[i])
    return data, volume


@pytest.mark.parametrize(
    ("axes", "order"),
    [
        ("slices,coils,kx,ky", (0, 1, 2, 3)),
        ("coils,slices,kx,ky", (1, 0, 2, 3)),
        ("kx,ky,coils,slices", (2, 3, 1, 0)),
        ("ky,kx,slices,coils", (3, 2, 0, 1)),
    ],
)
def test_npy_axis_orders(tmp_path: Path, axes: str, order: tuple[int, ...]) -> None:
    kspace = multicoil_kspace(slices=2, coils=3)  # (S, C, H, W)
    path = tmp_path / "k.npy"
    np.save(path, np.transpose(kspace, order))
    data, volume = _all_slices(path, npy_axes=axes)
    np.testing.assert_array_equal(data, kspace)
    assert volume.mask is None and volume.has_target  # fully sampled: a reference is computed


@pytest.mark.parametrize(("axes", "order"), [("slices,kx,ky", (0, 1, 2)), ("kx,ky,slices", (1, 2, 0))])
def test_single_coil_slices_of_numpy_are_slices_not_coils(
    tmp_path: Path, axes: str, order: tuple[int, ...]
) -> None:
    """A single-coil multi-slice array: S slices of one coil (not one slice of S coils)."""
    kspace = multicoil_kspace(slices=3, coils=1)[:, 0]  # (S, H, W)
    np.save(tmp_path / "k.npy", np.transpose(kspace, order))
    data, volume = _all_slices(tmp_path / "k.npy", npy_axes=axes)
    assert volume.num_slices == 3 and volume.kspace_shape == (1, *kspace.shape[1:])
    np.testing.assert_array_equal(data, kspace[:, None])


def test_npy_defaults_by_rank(tmp_path: Path) -> None:
    kspace = multicoil_kspace(slices=1, coils=3)[0]
    np.save(tmp_path / "c.npy", kspace)  # coils,kx,ky
    np.save(tmp_path / "s.npy", kspace[0])  # kx,ky
    data, _ = _all_slices(tmp_path / "c.npy")
    np.testing.assert_array_equal(data[0], kspace)
    data, volume = _all_slices(tmp_path / "s.npy")
    assert volume.kspace_shape == (1, 32, 24)
    np.testing.assert_array_equal(data[0, 0], kspace[0])


def test_prospective_line_mask_is_recovered_from_zeros(tmp_path: Path) -> None:
    kspace = multicoil_kspace(slices=2, coils=3)
    mask, _ = create_mask_func("equispaced_fraction", [0.2], [3], seed=1)(kspace.shape)
    line = mask.numpy().reshape(-1).astype(bool)
    np.save(tmp_path / "u.npy", kspace * line)
    data, volume = _all_slices(tmp_path / "u.npy", npy_axes="slices,coils,kx,ky")
    np.testing.assert_array_equal(volume.mask, line)
    assert volume.attrs["acceleration"] == pytest.approx(24 / line.sum(), abs=0.01)
    assert not volume.has_target and volume.read_target(0) is None
    np.testing.assert_array_equal(data, kspace * line)


def test_prospective_2d_mask_is_recovered(tmp_path: Path) -> None:
    kspace = multicoil_kspace(slices=1, coils=3)[0]
    rng = np.random.default_rng(0)
    mask = rng.random((32, 24)) < 0.3
    mask[12:20, 8:16] = True
    np.save(tmp_path / "p.npy", kspace * mask)
    _, volume = _all_slices(tmp_path / "p.npy")
    np.testing.assert_array_equal(volume.mask, mask)
    assert volume.attrs["num_low_frequency"] == 8


@pytest.mark.parametrize("columns", [(3, 21), (6, 22)], ids=["even", "uneven"])
def test_zero_padded_columns_count_as_fully_sampled(tmp_path: Path, columns: tuple[int, int]) -> None:
    kspace = multicoil_kspace(slices=1, coils=2)
    kspace[..., : columns[0]] = 0
    kspace[..., columns[1] :] = 0
    np.save(tmp_path / "pad.npy", kspace)
    _, volume = _all_slices(tmp_path / "pad.npy", npy_axes="slices,coils,kx,ky")
    assert volume.mask is None and volume.padding == columns
    out = convert_volume(tmp_path / "pad.npy", tmp_path / "pad.h5", npy_axes="slices,coils,kx,ky")
    assert not out.undersampled
    with open_volume(out.output) as converted:  # the header written keeps the acquired columns
        assert converted.padding == columns and converted.mask is None


def test_slices_sampled_differently_are_refused(tmp_path: Path) -> None:
    kspace = multicoil_kspace(slices=2, coils=2)
    kspace[0, :, :, ::2] = 0
    kspace[1, :, :, 1::2] = 0
    np.save(tmp_path / "diff.npy", kspace)
    with pytest.raises(DataError, match="slice 1 is sampled with another pattern than slice 0"):
        open_volume(tmp_path / "diff.npy", npy_axes="slices,coils,kx,ky")


def test_bart_round_trip_2d(tmp_path: Path) -> None:
    kspace = multicoil_kspace(slices=2, coils=3)  # (S, C, H, W)
    bart = np.zeros((32, 24, 1, 3) + (1,) * 9 + (2,), dtype=np.complex64)
    # mypy types a subscript with slices and an unpacked list as tuple[object, ...]
    bart[:, :, 0, :, *([0] * 9), :] = np.transpose(kspace, (2, 3, 1, 0))  # type: ignore[index]
    write_cfl(tmp_path / "k", bart)
    assert read_cfl(tmp_path / "k.hdr").shape == bart.shape
    data, volume = _all_slices(tmp_path / "k.cfl")
    np.testing.assert_array_equal(data, kspace)
    assert volume.mask is None
    (tmp_path / "bad.hdr").write_text("# Dimensions\n4 4 1 1 2\n")
    np.zeros(32, np.complex64).tofile(tmp_path / "bad.cfl")
    with pytest.raises(DataError, match=r"axes mrirecon does not serve: maps \(2\)"):
        open_volume(tmp_path / "bad.cfl")


def test_a_bart_name_with_dots_is_its_own_pair(tmp_path: Path) -> None:
    """``scan.2024.cfl`` is not ``scan.cfl``: another file of the same stem is neither read nor written."""
    from mrirecon.data.bart import bart_pair

    first, second = np.full((4, 3), 1 + 1j, np.complex64), np.full((4, 3), 2 - 1j, np.complex64)
    write_cfl(tmp_path / "scan.cfl", first)
    write_cfl(tmp_path / "scan.2024.cfl", second)
    np.testing.assert_array_equal(read_cfl(tmp_path / "scan.cfl"), first)  # not overwritten
    for given in ("scan.2024.cfl", "scan.2024.hdr", "scan.2024"):
        np.testing.assert_array_equal(read_cfl(tmp_path / given), second)
        assert bart_pair(tmp_path / given) == (tmp_path / "scan.2024.hdr", tmp_path / "scan.2024.cfl")


@pytest.mark.parametrize("maps", ["1", ""], ids=["read", "memory-mapped"])
def test_bart_arrays_are_read_in_barts_own_column_major_order(
    tmp_path: Path, maps: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .cfl written the way BART writes it (the header's dimensions, then the samples with the
    first axis fastest), read with memory maps (infer) and without (batch runs turn them off)."""
    monkeypatch.setenv("MRIRECON_NO_MMAP", maps)
    kspace = multicoil_kspace(slices=2, coils=3, height=20, width=14)  # (S, C, H, W)
    dims = (20, 14, 1, 3) + (1,) * 9 + (2,)
    bart = np.zeros(dims, dtype=np.complex64)
    bart[:, :, 0, :, *([0] * 9), :] = np.transpose(kspace, (2, 3, 1, 0))  # type: ignore[index]
    (tmp_path / "k.hdr").write_text("# Dimensions\n" + " ".join(map(str, dims)) + "\n")
    np.ravel(bart, order="F").astype("<c8").tofile(tmp_path / "k.cfl")
    data, _ = _all_slices(tmp_path / "k.cfl")
    np.testing.assert_array_equal(data, kspace)


def _volume_3d(coils: int = 3, size: tuple[int, int, int] = (20, 16, 12)) -> tuple[np.ndarray, np.ndarray]:
    """A 3-D object (C, X, Y, Z) image and its centred 3-D k-space."""
    sx, sy, sz = size
    image = np.stack([disc_image(1, sy, sz, seed=x)[0] * (1 + 0.05 * x) for x in range(sx)])  # (X, Y, Z)
    maps = smooth_maps(coils, sy, sz)
    coil_images = image[None] * maps[:, None]  # (C, X, Y, Z)
    kspace = fftnc(torch.from_numpy(coil_images.astype(np.complex64)), 3).numpy()
    return coil_images, kspace


def test_3d_input_is_decoupled_along_the_readout(tmp_path: Path) -> None:
    coil_images, kspace = _volume_3d()
    rng = np.random.default_rng(3)
    mask = rng.random((16, 12)) < 0.35
    mask[6:10, 4:8] = True
    np.save(tmp_path / "k3.npy", np.transpose(kspace * mask, (1, 2, 3, 0)))  # kx,ky,kz,coils
    data, volume = _all_slices(tmp_path / "k3.npy", npy_axes="kx,ky,kz,coils")
    assert volume.num_slices == 20 and volume.kspace_shape == (3, 16, 12)
    np.testing.assert_array_equal(volume.mask, mask)
    # slice x holds the 2-D k-space of readout position x: its 2-D inverse FFT is the image there
    expected = fft2c(torch.from_numpy(np.moveaxis(coil_images, 1, 0).astype(np.complex64))).numpy() * mask
    np.testing.assert_allclose(data, expected, atol=2e-5 * np.abs(expected).max())
    assert (data[:, :, ~mask] == 0).all()  # exact zeros where nothing was measured
    # the same data as BART (RO, PE1, PE2, COIL)
    write_cfl(tmp_path / "k3", np.transpose(kspace * mask, (1, 2, 3, 0)))
    bart, bart_volume = _all_slices(tmp_path / "k3.cfl")
    np.testing.assert_allclose(bart, data, atol=1e-6 * np.abs(data).max())
    np.testing.assert_array_equal(bart_volume.mask, mask)


def test_3d_needs_a_fully_sampled_readout(tmp_path: Path) -> None:
    _, kspace = _volume_3d()
    kspace[:, ::2] = 0  # every other readout sample missing
    np.save(tmp_path / "bad3.npy", kspace)
    with pytest.raises(DataError, match="the readout is not fully sampled"):
        open_volume(tmp_path / "bad3.npy", npy_axes="coils,kx,ky,kz")


def test_whitening_matrix_whitens() -> None:
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4))
    noise = mixing @ (rng.standard_normal((4, 20000)) + 1j * rng.standard_normal((4, 20000)))
    matrix = whitening_matrix(noise.astype(np.complex64), scale=2.0)
    white = matrix @ noise
    covariance = white @ white.conj().T / noise.shape[1]
    np.testing.assert_allclose(covariance, np.eye(4) / 2.0, atol=1e-3)


def test_ismrmrd_conversion_matches_the_known_object(tmp_path: Path) -> None:
    """Partial Fourier, calibration lines, a reversed readout, 2× oversampling, correlated noise."""
    coils, size_x, size_y = 4, 64, 48
    obj = disc_image(1, size_x // 2, size_y, seed=5)[0]
    oversampled = np.zeros((size_x, size_y), dtype=np.complex64)
    oversampled[size_x // 4 : size_x // 4 + size_x // 2] = obj  # the object fits the recon field of view
    maps = smooth_maps(coils, size_x, size_y)
    coil_images = maps * oversampled[None]
    center = 18  # partial Fourier: lines 0..39 go to 6..45 of the 48-line matrix
    lines = np.array(sorted({*range(0, 42, 3), *range(14, 23)}))
    rng = np.random.default_rng(1)
    mixing = np.eye(coils) + 0.3 * (
        rng.standard_normal((coils, coils)) + 1j * rng.standard_normal((coils, coils))
    )
    covariance = 1e-6 * (mixing @ mixing.conj().T)
    written = write_ismrmrd(
        tmp_path / "raw.h5",
        coil_images,
        lines=lines,
        e1_center=center,
        noise_covariance=covariance,
        noise_samples=4096,
        calibration={15, 16, 17},
        reverse={21},
    )
    volume = open_volume(tmp_path / "raw.h5")
    assert volume.num_slices == 1 and volume.kspace_shape == (coils, size_x // 2, size_y)
    placed = lines + size_y // 2 - center
    expected_mask = np.zeros(size_y, dtype=bool)
    expected_mask[placed] = True
    np.testing.assert_array_equal(volume.mask, expected_mask)
    assert volume.padding == (6, 46)  # the encoding limits end at line 39
    assert volume.header is not None and volume.geometry is not None
    assert volume.header.encoded_matrix == (size_x // 2, size_y, 1)  # oversampling removed
    assert volume.header.patient_id == "RAW-1" and volume.attrs["acquisition"] == "TESTRAW"
    assert volume.attrs["mrirecon_prewhitened"] and "1 noise readout(s)" in volume.attrs["mrirecon_source"]
    np.testing.assert_allclose(volume.geometry["position"], [[1.0, 2.0, 3.0]])
    # expected: whiten with the noise readout (its dwell is 4× the imaging dwell), then crop the
    # readout in image space
    with h5py.File(tmp_path / "raw.h5") as f:
        noise = f["dataset/data"][0]["data"].view(np.complex64).reshape(coils, -1)
    whitening = whitening_matrix(noise, scale=4.0)
    truth = np.linalg.inv(np.linalg.cholesky(covariance))
    assert np.abs(whitening - truth).max() < 0.05 * np.abs(truth).max()  # the estimate is close
    white = np.einsum("dc,cxy->dxy", whitening, written)
    images = ifftnc(torch.from_numpy(white.astype(np.complex64)).transpose(-1, -2), 1).transpose(-1, -2)
    cropped = images[:, size_x // 4 : size_x // 4 + size_x // 2]
    expected = fftnc(cropped.transpose(-1, -2).contiguous(), 1).transpose(-1, -2).numpy() * expected_mask
    got = volume.read_kspace(0)
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())
    # lines never measured stay exact zeros
    assert (got[:, :, ~expected_mask] == 0).all()


def test_convert_writes_what_open_volume_serves(tmp_path: Path) -> None:
    coils, size_x, size_y = 3, 32, 24
    coil_images = smooth_maps(coils, size_x, size_y) * disc_image(1, size_x, size_y)[0][None]
    write_ismrmrd(tmp_path / "raw.h5", coil_images, lines=np.arange(0, 24, 2), e1_center=12)
    summary = convert_volume(tmp_path / "raw.h5", tmp_path / "out.h5")
    assert summary.undersampled and summary.mask_kind == "1d" and summary.shape == (1, 3, 16, 24)
    with open_volume(tmp_path / "raw.h5") as source, open_volume(tmp_path / "out.h5") as converted:
        np.testing.assert_array_equal(converted.read_kspace(0), source.read_kspace(0))
        np.testing.assert_array_equal(converted.mask, source.mask)
        assert converted.header_xml == source.header_xml
        assert converted.attrs["acceleration"] == source.attrs["acceleration"]
    with h5py.File(tmp_path / "out.h5") as f:
        assert "reconstruction_rss" not in f and f["mask"].dtype == bool and "geometry" in f
    with pytest.raises(DataError, match="would overwrite the input"):
        convert_volume(tmp_path / "out.h5", tmp_path / "out.h5")
    from mrirecon.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'\.npy' is not an HDF5 name"):  # HDF5 under a .npy name
        convert_volume(tmp_path / "raw.h5", tmp_path / "out.npy")
    with pytest.raises(ConfigError, match="--frame chooses among the frames of an ISMRMRD raw file"):
        convert_volume(tmp_path / "out.h5", tmp_path / "again.h5", frame=Frame(contrast=1))
    assert not (tmp_path / "out.npy").exists() and not (tmp_path / "again.h5").exists()


def test_readouts_of_other_contrasts_are_left_out_with_a_notice(tmp_path: Path) -> None:
    from mrirecon.errors import Notice

    coils, size_x, size_y = 2, 32, 24
    coil_images = smooth_maps(coils, size_x, size_y) * disc_image(1, size_x, size_y)[0][None]
    write_ismrmrd(tmp_path / "raw.h5", coil_images, lines=np.arange(size_y), e1_center=12)
    with open_volume(tmp_path / "raw.h5") as single:
        expected = single.read_kspace(0)
    dataset = ismrmrd.Dataset(str(tmp_path / "raw.h5"), "dataset", create_if_needed=False)
    for number in range(3):  # three readouts of a second contrast
        acq = dataset.read_acquisition(number)
        acq.idx.contrast = 1
        dataset.append_acquisition(acq)
    dataset.close()
    only = r"raw\.h5: 3 readouts belong to other frames \(2 in the file\); only contrast 0, repetition 0"
    with pytest.warns(Notice, match=only):
        volume = open_volume(tmp_path / "raw.h5")
    with volume:
        np.testing.assert_array_equal(volume.read_kspace(0), expected)  # contrast 0, as before


def _write_ismrmrd_3d(
    path: Path, kspace: np.ndarray, positions: list[tuple[int, int]], e2_center: int
) -> None:
    """3-D ISMRMRD raw data ``(C, X, Y, Z)`` (X 2× oversampled) with readouts at ``(e1, e2)``."""
    _, size_x, size_y, size_z = kspace.shape
    xml = build_ismrmrd_header(encoded_matrix=(size_x, size_y, size_z), patient_id="RAW-3D")
    xml = rewrite_encoding(
        xml,
        encoded_matrix=(size_x, size_y, size_z),
        encoded_fov_mm=(320.0, 160.0, 120.0),
        recon_matrix=(size_x // 2, size_y, size_z),
        recon_fov_mm=(160.0, 160.0, 120.0),
        e1_limits=EncodingLimits(0, size_y - 1, size_y // 2),
        e2_limits=EncodingLimits(0, size_z - 1 - (size_z // 2 - e2_center), e2_center),
    )
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    dataset.write_xml_header(xml)
    for e1, e2 in positions:
        acq = ismrmrd.Acquisition.from_array(
            np.ascontiguousarray(kspace[:, :, e1, e2 + size_z // 2 - e2_center])
        )
        acq.idx.kspace_encode_step_1, acq.idx.kspace_encode_step_2 = e1, e2
        acq.center_sample = size_x // 2
        acq.position[:] = (0.0, 0.0, 10.0)
        acq.read_dir[:], acq.phase_dir[:], acq.slice_dir[:] = (
            (0.0, 1.0, 0.0),
            (1.0, 0.0, 0.0),
            (0.0, 0.0, -1.0),
        )
        dataset.append_acquisition(acq)
    dataset.close()


def test_3d_ismrmrd_is_decoupled_with_its_geometry(tmp_path: Path) -> None:
    coils, size_x, size_y, size_z = 3, 32, 16, 12
    rows = np.stack([disc_image(1, size_y, size_z, seed=x)[0] for x in range(size_x // 2)])  # (X/2, Y, Z)
    image = np.zeros((size_x, size_y, size_z), dtype=np.complex64)
    image[size_x // 4 : size_x // 4 + size_x // 2] = rows  # the object fits the recon field of view
    coil_images = smooth_maps(coils, size_y, size_z)[:, None] * image[None]
    kspace = fftnc(torch.from_numpy(coil_images.astype(np.complex64)), 3).numpy()
    rng = np.random.default_rng(2)
    sampled = rng.random((size_y, size_z)) < 0.4
    sampled[6:10, 4:8] = True
    sampled[:, :2] = False  # partial Fourier along the partitions: e2 0 sits at z = 2
    positions = [(int(y), int(z) - 2) for y, z in np.argwhere(sampled)]
    _write_ismrmrd_3d(tmp_path / "raw3d.h5", kspace, positions, e2_center=size_z // 2 - 2)
    volume = open_volume(tmp_path / "raw3d.h5")
    assert volume.num_slices == size_x // 2 and volume.kspace_shape == (coils, size_y, size_z)
    np.testing.assert_array_equal(volume.mask, sampled)
    assert volume.header is not None
    assert volume.attrs["mrirecon_decoupled_3d"] and volume.header.encoded_matrix == (size_y, size_z, 1)
    assert volume.crop_size == (size_y, size_z) and volume.padding == (2, size_z)
    expected = fft2c(
        torch.from_numpy(np.moveaxis(coil_images, 1, 0)[size_x // 4 : size_x // 4 + size_x // 2])
    )
    got = np.stack([volume.read_kspace(i) for i in range(volume.num_slices)])
    np.testing.assert_allclose(got, expected.numpy() * sampled, atol=1e-5 * float(expected.abs().max()))
    # slices run along the readout (ISMRMRD read_dir = +y here), 160 mm / 16 = 10 mm apart
    geometry = volume.geometry
    assert geometry is not None
    np.testing.assert_allclose(np.diff(geometry["position"], axis=0), [[0.0, 10.0, 0.0]] * 15, atol=1e-5)
    np.testing.assert_allclose(geometry["position"][8], [0.0, 0.0, 10.0], atol=1e-5)
    np.testing.assert_allclose(geometry["slice_dir"][0], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(geometry["read_dir"][0], [1.0, 0.0, 0.0])  # rows: the first phase encode
    np.testing.assert_allclose(geometry["phase_dir"][0], [0.0, 0.0, -1.0])  # columns: the partitions


def test_npy_singleton_kz_is_2d_and_one_slab_of_five_axes_is_3d(tmp_path: Path) -> None:
    """``coils,kx,ky,kz`` with one kz gave as many one-pixel-wide slices as kx has samples; a 5-D
    array could not be read at all, though the message said to state its axes."""
    kspace = multicoil_kspace(slices=1, coils=4)[0]  # (C, H, W)
    np.save(tmp_path / "flat.npy", kspace[..., None])
    data, volume = _all_slices(tmp_path / "flat.npy", npy_axes="coils,kx,ky,kz")
    assert volume.num_slices == 1 and volume.kspace_shape == (4, 32, 24)
    np.testing.assert_array_equal(data[0], kspace)
    _, kspace3d = _volume_3d()  # (C, X, Y, Z)
    np.save(tmp_path / "k4.npy", kspace3d)
    np.save(tmp_path / "k5.npy", kspace3d[None])
    four, _ = _all_slices(tmp_path / "k4.npy", npy_axes="coils,kx,ky,kz")
    five, volume = _all_slices(tmp_path / "k5.npy", npy_axes="slices,coils,kx,ky,kz")
    assert volume.num_slices == 20
    np.testing.assert_array_equal(five, four)
    np.save(tmp_path / "slabs.npy", np.stack([kspace3d, kspace3d]))
    with pytest.raises(DataError, match=r"several slices \(multi-slab, 2\)"):
        open_volume(tmp_path / "slabs.npy", npy_axes="slices,coils,kx,ky,kz")
    with pytest.raises(DataError, match=r"5 axes and their order is ambiguous.*slices,coils,kx,ky,kz"):
        open_volume(tmp_path / "k5.npy")
    for shape in [(8,), (1, 1, 2, 8, 8, 2)]:  # no axis order makes these k-space
        np.save(tmp_path / "odd.npy", np.ones(shape, np.complex64))
        with pytest.raises(DataError, match=rf"has {len(shape)} axes; k-space arrays have 2 to 5"):
            open_volume(tmp_path / "odd.npy")


def test_bart_headers_as_bart_reads_them(tmp_path: Path) -> None:
    """Upper-case suffixes, a command line in Latin-1, and the header layouts BART's own parser
    accepts; two dimension sections are refused, as BART does."""
    array = np.arange(12, dtype=np.complex64).reshape(4, 3) * (1 - 1j)
    write_cfl(tmp_path / "U2", array)
    (tmp_path / "U2.cfl").rename(tmp_path / "U2.CFL")
    (tmp_path / "U2.hdr").rename(tmp_path / "U2.HDR")
    for given in ("U2.CFL", "U2.HDR", "U2"):
        np.testing.assert_array_equal(read_cfl(tmp_path / given), array)
    write_cfl(tmp_path / "k", array)
    for text in (
        b"# Dimensions\n4 3\n# Command\nbart fmac /data/r\xe9sonance/in out\n",  # Latin-1 path
        b"#Dimensions\n4 3\n",
        b"# Dimensions 4 3\n",
        b"# Dimensions\n\n4 3 1 1\n",
    ):
        (tmp_path / "k.hdr").write_bytes(text)
        np.testing.assert_array_equal(read_cfl(tmp_path / "k.cfl").reshape(4, 3, order="F"), array)
    (tmp_path / "k.hdr").write_text("# Dimensions\n4 3\n# Dimensions\n4 3\n")
    with pytest.raises(DataError, match="more than one '# Dimensions' section"):
        read_cfl(tmp_path / "k.cfl")
    (tmp_path / "k.hdr").write_text("# Dimensions\n# Command\n")
    with pytest.raises(DataError, match="no valid '# Dimensions' line"):
        read_cfl(tmp_path / "k.cfl")


def _fastmri_rss(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The reference fastMRI's code computes from a file: RSS of the centred inverse FFT of its
    k-space, centre-cropped to the file's reference."""
    with h5py.File(path) as f:
        images = np.fft.fftshift(
            np.fft.ifft2(np.fft.ifftshift(f["kspace"][()], axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
        )
        reference = f["reconstruction_rss"][()]
    rss = np.sqrt((np.abs(images) ** 2).sum(1))
    h, w = reference.shape[-2:]
    top, left = (rss.shape[-2] - h) // 2, (rss.shape[-1] - w) // 2
    return rss[:, top : top + h, left : left + w], reference


def test_uncentred_k_space_is_written_centred_for_fastmri(tmp_path: Path) -> None:
    """fastMRI's FFT and masks assume centred k-space and its code reads no convention attribute:
    uncentred input written as it was gave fastMRI scrambled images (relative error 1.1-1.3)."""
    kspace = multicoil_kspace(slices=2, coils=3)  # centred (S, C, H, W)
    images = ifftnc(torch.from_numpy(kspace), 2).numpy()
    uncentred = np.fft.fft2(images, norm="ortho").astype(np.complex64)
    mask = np.zeros(24, bool)
    mask[::3] = True
    mask[10:14] = True
    np.save(tmp_path / "full.npy", uncentred)
    np.save(tmp_path / "under.npy", uncentred * np.fft.ifftshift(mask))
    for name in ("full", "under"):
        convert_volume(
            tmp_path / f"{name}.npy", tmp_path / f"{name}.h5", npy_axes="slices,coils,kx,ky", centered=False
        )
    with h5py.File(tmp_path / "full.h5") as f:
        assert bool(f.attrs["mrirecon_fft_centered"])
        np.testing.assert_allclose(f["kspace"][()], kspace, atol=1e-5 * np.abs(kspace).max())
    ours, reference = _fastmri_rss(tmp_path / "full.h5")
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6)
    with h5py.File(tmp_path / "under.h5") as f:
        np.testing.assert_array_equal(f["mask"][()], mask)  # the centred columns
        np.testing.assert_allclose(f["kspace"][()], kspace * mask, atol=1e-5 * np.abs(kspace).max())


def test_k_space_only_input_gets_its_reference_and_every_output_an_acquisition(tmp_path: Path) -> None:
    """A fully sampled HDF5 of k-space alone was written without reconstruction_rss, max or norm
    (fastMRI's transforms then gave target 0); NumPy outputs had no acquisition attribute, which
    fastMRI's evaluate.py --acquisition reads (KeyError)."""
    kspace = multicoil_kspace(slices=2, coils=3)
    with h5py.File(tmp_path / "konly.h5", "w") as f:
        f.create_dataset("kspace", data=kspace)
    convert_volume(tmp_path / "konly.h5", tmp_path / "out.h5")
    ours, reference = _fastmri_rss(tmp_path / "out.h5")
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6)
    with h5py.File(tmp_path / "out.h5") as f:
        assert f.attrs["max"] == pytest.approx(reference.max()) and f.attrs["acquisition"] == ""
    np.save(tmp_path / "k.npy", kspace[0])
    convert_volume(tmp_path / "k.npy", tmp_path / "k.h5", acquisition="AXT1")
    convert_volume(tmp_path / "k.npy", tmp_path / "plain.h5")
    with h5py.File(tmp_path / "k.h5") as named, h5py.File(tmp_path / "plain.h5") as plain:
        assert named.attrs["acquisition"] == "AXT1" and plain.attrs["acquisition"] == ""


def test_a_nan_reference_is_made_again_from_fully_sampled_k_space(tmp_path: Path) -> None:
    """Training's error for a NaN reference says `mrirecon convert` makes it again: convert kept the
    NaN reference as it was."""
    from mrirecon.errors import Notice

    kspace = multicoil_kspace(slices=2, coils=3)
    with h5py.File(tmp_path / "clean.h5", "w") as f:
        f.create_dataset("kspace", data=kspace)
    convert_volume(tmp_path / "clean.h5", tmp_path / "clean_out.h5")
    with h5py.File(tmp_path / "clean_out.h5") as f:
        expected = f["reconstruction_rss"][()]
        rss = expected.copy()
    rss[1, 3, 3] = np.nan
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f.create_dataset("kspace", data=kspace)
        f.create_dataset("reconstruction_rss", data=rss)
    with pytest.warns(Notice, match=r"nan.h5: its reference held NaN or Inf values; made again"):
        convert_volume(tmp_path / "nan.h5", tmp_path / "out.h5")
    with h5py.File(tmp_path / "out.h5") as f:
        np.testing.assert_allclose(f["reconstruction_rss"][()], expected, rtol=1e-6)


def test_a_fastmri_single_coil_file_is_refused(tmp_path: Path) -> None:
    """Its (S, H, W) k-space came out as (S, 1, H, W) with its ESC image stored as
    reconstruction_rss: a file fastMRI's single-coil loader cannot use."""
    with h5py.File(tmp_path / "single.h5", "w") as f:
        f.create_dataset("kspace", data=multicoil_kspace(slices=2, coils=1)[:, 0])
        f.create_dataset("reconstruction_esc", data=np.ones((2, 16, 16), np.float32))
    with pytest.raises(DataError, match="fastMRI single-coil file: it is in fastMRI's layout already"):
        convert_volume(tmp_path / "single.h5", tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
