"""fastMRI HDF5: the writer's layout (docs/interfaces.md §1) and the lazy reader, round trips."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from mrirecon.data.fastmri import FastMRIVolume
from mrirecon.data.fastmri_writer import write_volume
from mrirecon.data.header import EncodingLimits, build_ismrmrd_header, parse_ismrmrd_header
from mrirecon.data.lesions import Lesion
from mrirecon.data.volume import open_volume
from mrirecon.evaluation.lesion import lesions_from_table
from mrirecon.evaluation.volumes import read_target
from mrirecon.export.geometry import SliceGeometry
from mrirecon.export.recon_h5 import read_input_metadata
from tests.data.helpers import multicoil_kspace, raw_h5, rss_target, write_fastmri


def test_round_trip_of_every_item(tmp_path: Path) -> None:
    kspace = multicoil_kspace(slices=3, coils=4, height=40, width=28)
    target = rss_target(kspace, (32, 24))
    labels = np.zeros(target.shape, dtype=np.int16)
    labels[1, 10:13, 10:12] = 1
    lesions = [Lesion(center=(1.0, 11.0, 10.5), radius=1.5, contrast=1.7, seed=3)]
    geometry: dict[str, Any] = {
        "position": np.arange(9, dtype=np.float64).reshape(3, 3),
        "read_dir": np.tile([1.0, 0.0, 0.0], (3, 1)),
        "phase_dir": np.tile([0.0, 1.0, 0.0], (3, 1)),
        "slice_dir": np.tile([0.0, 0.0, 1.0], (3, 1)),
        "field_of_view_mm": (200.0, 150.0, 5.0),
        "slice_thickness_mm": 5.0,
    }
    header = build_ismrmrd_header(
        encoded_matrix=(40, 28, 1),
        recon_matrix=(32, 24, 1),
        e1_limits=EncodingLimits(0, 23, 12),
        patient_id="P7",
    )
    path = write_volume(
        tmp_path / "vol.h5",
        kspace=kspace,
        header_xml=header,
        reconstruction_rss=target,
        lesion_labels=labels,
        lesion_table=lesions,
        geometry=geometry,
        attrs={"acquisition": "AXFLAIR", "patient_id": "P7"},
        source="unit test",
    )
    assert not (tmp_path / ".vol.h5.partial").exists()
    with h5py.File(path) as f:  # the layout of interfaces §1, exactly
        assert f["kspace"].dtype == np.complex64 and f["kspace"].shape == (3, 4, 40, 28)
        assert f["reconstruction_rss"].dtype == np.float32 and f["lesion_labels"].dtype == np.int16
        assert isinstance(f["ismrmrd_header"][()], bytes)
        assert f.attrs["max"] == pytest.approx(target.max()) and f.attrs["norm"] == pytest.approx(
            np.linalg.norm(target)
        )
        assert f.attrs["acquisition"] == "AXFLAIR" and bool(f.attrs["mrirecon_fft_centered"])
        assert f.attrs["mrirecon_source"] == "unit test"
        assert lesions_from_table(f.attrs["lesion_table"]) == lesions
        assert f["geometry/position"].dtype == np.float32
    with open_volume(path) as volume:
        assert isinstance(volume, FastMRIVolume)
        assert volume.num_slices == 3 and volume.num_coils == 4 and volume.kspace_shape == (4, 40, 28)
        assert volume.mask is None and volume.crop_size == (32, 24) and volume.centered
        assert volume.padding == (2, 26)  # 28 // 2 − 12 = 2 ... 2 + 23 + 1
        assert volume.acquisition == "AXFLAIR" and volume.attrs["patient_id"] == "P7"
        assert volume.header is not None and volume.header.patient_id == "P7"
        for i in range(3):
            np.testing.assert_array_equal(volume.read_kspace(i), kspace[i])
            np.testing.assert_array_equal(volume.read_target(i), target[i])
        np.testing.assert_array_equal(volume.read_lesion_labels(1), labels[1])
        assert volume.target_max == pytest.approx(target.max())
        assert volume.geometry is not None
        np.testing.assert_allclose(volume.geometry["position"], geometry["position"])
    # what the other layers read is what was written
    evaluated = read_target(path)
    assert evaluated.labels is not None and evaluated.labels.sum() == labels.sum()
    meta = read_input_metadata(path)
    assert isinstance(meta.geometry, SliceGeometry) and meta.geometry.slice_thickness_mm == 5.0
    assert meta.acquisition == "AXFLAIR" and meta.patient_id == "P7"


def test_single_coil_is_served_with_one_coil(tmp_path: Path) -> None:
    kspace = multicoil_kspace(slices=2, coils=1)[:, 0]
    path = raw_h5(tmp_path / "single.h5", kspace=kspace, reconstruction_esc=np.abs(kspace).astype(np.float32))
    with open_volume(path) as volume:
        assert volume.kspace_shape == (1, 32, 24) and volume.num_coils == 1
        np.testing.assert_array_equal(volume.read_kspace(1), kspace[1][None])
        assert volume.has_target
        target = volume.read_target(0)
        assert target is not None and target.shape == (32, 24)
        assert volume.header is None and volume.crop_size == (32, 24)


def test_single_coil_files_serve_the_esc_target_as_fastmri_does(tmp_path: Path) -> None:
    # fastMRI's single-coil knee files hold both targets; the emulated coil's image is the ESC one
    kspace = multicoil_kspace(slices=1, coils=1)[:, 0]
    esc, rss = np.ones((1, 32, 24), np.float32), np.full((1, 32, 24), 7.0, np.float32)
    path = raw_h5(tmp_path / "single.h5", kspace=kspace, reconstruction_esc=esc, reconstruction_rss=rss)
    with open_volume(path) as volume:
        np.testing.assert_array_equal(volume.read_target(0), esc[0])
    multi = multicoil_kspace(slices=1, coils=2)
    path = raw_h5(tmp_path / "multi.h5", kspace=multi, reconstruction_esc=esc, reconstruction_rss=rss)
    with open_volume(path) as volume:  # multi-coil: the RSS reference, as before
        np.testing.assert_array_equal(volume.read_target(0), rss[0])


def test_fastmri_test_set_fields(tmp_path: Path) -> None:
    kspace = multicoil_kspace(slices=2, coils=3)
    mask = np.zeros(24, dtype=bool)
    mask[[0, 4, 8, 10, 11, 12, 13, 16, 20]] = True
    path = raw_h5(
        tmp_path / "test.h5",
        kspace=kspace * mask,
        mask=mask,
        ismrmrd_header=build_ismrmrd_header(encoded_matrix=(32, 24, 1)),
    )
    with h5py.File(path, "a") as f:
        f.attrs["acceleration"] = 4
        f.attrs["num_low_frequency"] = 4
        f.attrs["acquisition"] = "CORPD_FBK"
    with open_volume(path) as volume:
        np.testing.assert_array_equal(volume.mask, mask)
        assert volume.attrs["acceleration"] == 4 and volume.attrs["num_low_frequency"] == 4
        assert not volume.has_target and volume.read_target(0) is None


def test_calgary_campinas_layout_is_uncentred(tmp_path: Path) -> None:
    kspace = multicoil_kspace(slices=2, coils=3)  # (S, C, H, W) complex
    interleaved = np.stack([kspace.real, kspace.imag], axis=-1)  # (S, C, H, W, 2)
    stored = np.moveaxis(interleaved, 1, 3).reshape(2, 32, 24, 6).astype(np.float32)  # (S, H, W, 2C)
    path = raw_h5(tmp_path / "cc.h5", kspace=stored)
    with open_volume(path) as volume:
        assert not volume.centered and volume.kspace_shape == (3, 32, 24)
        np.testing.assert_allclose(volume.read_kspace(1), kspace[1], rtol=1e-6)
    with open_volume(path, centered=True) as volume:
        assert volume.centered


def test_reading_is_lazy_and_per_slice(tmp_path: Path) -> None:
    """Opening reads metadata only: a NaN in slice 2 surfaces only when slice 2 is read."""
    kspace = multicoil_kspace(slices=3, coils=2)
    kspace[2, 0, 3, 3] = np.nan
    path = write_fastmri(tmp_path / "lazy.h5", kspace, reconstruction_rss=None)
    with open_volume(path) as volume:
        volume.read_kspace(0)
        volume.read_kspace(1)
        with pytest.raises(Exception, match="slice 2"):
            volume.read_kspace(2)


def test_volumes_pickle_by_reopening(tmp_path: Path) -> None:
    kspace = multicoil_kspace(slices=2, coils=2)
    path = write_fastmri(tmp_path / "p.h5", kspace)
    volume = open_volume(path, centered=False)
    copy = pickle.loads(pickle.dumps(volume))
    assert copy is not volume and not copy.centered
    np.testing.assert_array_equal(copy.read_kspace(1), volume.read_kspace(1))
    volume.close()
    volume.close()  # idempotent
    np.testing.assert_array_equal(volume.read_kspace(0), kspace[0])  # reopens on demand
    volume.close()
    copy.close()


def test_header_is_kept_verbatim(tmp_path: Path) -> None:
    header = build_ismrmrd_header(encoded_matrix=(32, 24, 1), patient_name="Doe^J", patient_id="X1")
    path = write_fastmri(tmp_path / "h.h5", multicoil_kspace(slices=1, coils=2), header_xml=header)
    with open_volume(path) as volume:
        assert volume.header_xml == header
        assert volume.header == parse_ismrmrd_header(header)


def test_contiguous_kspace_is_served_from_a_read_only_memory_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kspace = multicoil_kspace(slices=3, coils=4)
    path = write_fastmri(tmp_path / "vol.h5", kspace)
    single = raw_h5(tmp_path / "single.h5", kspace=kspace[:, 0])
    with open_volume(path) as volume, open_volume(single) as one_coil:
        view = volume.kspace_slice(1)
        assert isinstance(view, np.memmap) and not view.flags.writeable and view.flags.c_contiguous
        np.testing.assert_array_equal(view, kspace[1])
        with pytest.raises(ValueError, match="read-only"):
            view[0, 0, 0] = 0
        owned = volume.read_kspace(1)  # what every other caller gets: a checked array of its own
        assert owned.flags.writeable and not np.shares_memory(owned, view)
        np.testing.assert_array_equal(owned, kspace[1])
        assert one_coil.kspace_slice(0).shape == (1, 32, 24) and not one_coil.kspace_slice(0).flags.writeable
        np.testing.assert_array_equal(one_coil.kspace_slice(0), kspace[0, :1])
    monkeypatch.setenv("MRIRECON_NO_MMAP", "1")
    with open_volume(path) as volume:
        fresh = volume.kspace_slice(1)
        assert fresh.flags.writeable and not isinstance(fresh, np.memmap)
        np.testing.assert_array_equal(fresh, kspace[1])


@pytest.mark.parametrize(
    "options",
    [{"chunks": (1, 4, 32, 24)}, {"compression": "gzip"}, {"dtype": ">c8"}, {"dtype": "<c16"}],
    ids=["chunked", "compressed", "big-endian", "complex128"],
)
def test_other_kspace_storage_is_read_with_h5py(tmp_path: Path, options: dict[str, Any]) -> None:
    kspace = multicoil_kspace(slices=2, coils=4)
    path = tmp_path / "stored.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=kspace.astype(options.pop("dtype", np.complex64)), **options)
    with open_volume(path) as volume:
        got = volume.kspace_slice(1)
        assert got.dtype == np.complex64 and got.flags.writeable and not isinstance(got, np.memmap)
        np.testing.assert_array_equal(got, kspace[1])


def test_prospective_kspace_without_a_mask_dataset_gets_its_mask_recovered(tmp_path: Path) -> None:
    """Zero columns and no 'mask': undersampled, not fully sampled (data-consistency would pull a
    model back to the zero-filled image), said in one line and recorded in the attributes."""
    from mrirecon.errors import Notice

    kspace = multicoil_kspace(slices=2, coils=4, height=32, width=40)
    kspace[..., 1::4] = 0
    kspace[..., 2::4] = 0
    kspace[..., 3::4] = 0
    kspace[..., 17:23] = multicoil_kspace(slices=2, coils=4, height=32, width=40)[..., 17:23]  # centre
    header = build_ismrmrd_header(encoded_matrix=(32, 40, 1))
    path = write_volume(tmp_path / "prospective.h5", kspace=kspace, header_xml=header)
    with pytest.warns(Notice, match="prospective.h5: no 'mask' dataset.*recovered from its zeros"):
        volume = open_volume(path)
    with volume:
        assert volume.mask is not None and volume.mask.shape == (40,)
        assert np.array_equal(volume.mask, (np.abs(kspace[0]) > 0).any(axis=(0, 1)))
        assert volume.attrs["mrirecon_mask_recovered"] is True
        assert volume.attrs["acceleration"] == pytest.approx(40 / volume.mask.sum(), abs=0.01)
        assert not volume.has_target
    # fully sampled data with zero-padded columns outside the header's acquired range stay fully sampled
    padded = multicoil_kspace(slices=1, coils=4, height=32, width=40)
    padded[..., :4] = 0
    padded[..., 36:] = 0
    limits = EncodingLimits(0, 31, 16)
    header = build_ismrmrd_header(encoded_matrix=(32, 40, 1), e1_limits=limits)
    with open_volume(write_volume(tmp_path / "padded.h5", kspace=padded, header_xml=header)) as volume:
        assert volume.mask is None and volume.padding == (4, 36)
    # without a header the zero columns of a fully sampled file are its padding, as for NumPy input
    with h5py.File(tmp_path / "no_header.h5", "w") as f:
        f["kspace"] = padded
    with open_volume(tmp_path / "no_header.h5") as volume:
        assert volume.header is None and volume.mask is None and volume.padding == (4, 36)


def test_the_recovered_mask_of_uncentred_kspace_is_where_its_samples_are(tmp_path: Path) -> None:
    """An uncentred file (DC at column 0) without a 'mask': the mask served is the measured
    columns as stored (its centre block split over both ends), not a shifted copy of them."""
    rng = np.random.default_rng(0)
    centred = np.zeros(24, dtype=bool)
    centred[10:14] = True
    centred[[1, 4, 7, 17, 20, 22]] = True
    stored = np.fft.ifftshift(centred)
    kspace = (rng.standard_normal((2, 2, 32, 24)) + 1j * rng.standard_normal((2, 2, 32, 24))).astype(
        np.complex64
    )
    with h5py.File(tmp_path / "uncentred.h5", "w") as f:
        f["kspace"] = kspace * stored
        f.attrs["mrirecon_fft_centered"] = False
    with (
        pytest.warns(UserWarning, match="recovered from its zeros"),
        open_volume(tmp_path / "uncentred.h5") as volume,
    ):
        assert not volume.centered
        np.testing.assert_array_equal(volume.mask, stored)


def test_slices_sampled_with_other_patterns_than_the_recovered_mask_are_refused(tmp_path: Path) -> None:
    """Without a 'mask' dataset the mask comes from one slice's zeros: a slice sampled otherwise would
    be reconstructed with the wrong mask (its own lines dropped, unmeasured ones taken as zeros)."""
    from mrirecon.data.transforms import ReconTransform
    from mrirecon.errors import DataError, Notice

    kspace = multicoil_kspace(slices=3, coils=4, height=32, width=40)
    rng = np.random.default_rng(0)
    for s in range(3):  # a different random 30 % of the columns dropped in each slice
        kspace[s][..., rng.choice(40, 12, replace=False)] = 0
    header = build_ismrmrd_header(encoded_matrix=(32, 40, 1))
    path = write_volume(tmp_path / "per_slice.h5", kspace=kspace, header_xml=header)
    with pytest.warns(Notice, match="no 'mask' dataset"):
        volume = open_volume(path)
    with volume:
        middle = volume.kspace_slice(1)  # the slice whose zeros gave the mask
        np.testing.assert_array_equal(middle, kspace[1])
        for index in (0, 2):
            with pytest.raises(
                DataError, match=f"slice {index} is sampled with another pattern than slice 1"
            ):
                volume.kspace_slice(index)
            with pytest.raises(DataError, match=r"per_slice\.h5: slice"):
                ReconTransform(coil_maps="none")(volume, index)
    # slices sampled alike are served as before
    same = multicoil_kspace(slices=3, coils=4, height=32, width=40)
    same[..., rng.choice(40, 12, replace=False)] = 0
    with (
        pytest.warns(Notice),
        open_volume(write_volume(tmp_path / "same.h5", kspace=same, header_xml=header)) as vol,
    ):
        for index in range(3):
            np.testing.assert_array_equal(vol.read_kspace(index), same[index])


def test_a_file_declaring_more_than_it_stores_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from mrirecon.errors import ConfigError, DataError

    huge = tmp_path / "huge.h5"
    with h5py.File(huge, "w") as f:  # a few KB declaring 10⁶ slices: chunks never written
        f.create_dataset("kspace", shape=(1_000_000, 4, 64, 64), dtype=np.complex64, chunks=(1, 4, 64, 64))
    assert huge.stat().st_size < 100_000
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"declares \(1000000, 4, 64, 64\) \(122 GiB\), more than the 64 GiB"):
        open_volume(huge)
    assert time.perf_counter() - start < 1.0
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:  # under the size limit, but nothing stored
        f.create_dataset("kspace", shape=(10_000, 4, 64, 64), dtype=np.complex64, chunks=(1, 4, 64, 64))
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"stores 0 of its 10,000 chunks"):
        open_volume(empty)
    assert time.perf_counter() - start < 1.0
    contiguous = tmp_path / "unwritten.h5"
    with h5py.File(contiguous, "w") as f:  # contiguous storage that was never written
        f.create_dataset("kspace", shape=(2, 4, 32, 32), dtype=np.complex64)
    with pytest.raises(DataError, match="stores 0 bytes"):
        open_volume(contiguous)
    written = tmp_path / "ok.h5"
    write_volume(
        written,
        kspace=multicoil_kspace(slices=2),
        header_xml=build_ismrmrd_header(encoded_matrix=(32, 24, 1)),
    )
    monkeypatch.setenv("MRIRECON_MAX_KSPACE_GB", "0.00001")
    with pytest.raises(DataError, match=r"more than the 1e-05 GiB.*MRIRECON_MAX_KSPACE_GB"):
        open_volume(written)
    for bad in ("abc", "0", "-1", "nan"):  # the user's setting, not the file, is at fault
        monkeypatch.setenv("MRIRECON_MAX_KSPACE_GB", bad)
        with pytest.raises(ConfigError, match=r"MRIRECON_MAX_KSPACE_GB=.* is not a positive number of GiB"):
            open_volume(written)
    monkeypatch.delenv("MRIRECON_MAX_KSPACE_GB")
    open_volume(written).close()
