"""Every bad input gets a DataError that names the file and the problem; datasets skip bad files."""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from mrirecon.data.dataset import SliceDataset
from mrirecon.data.transforms import ReconTransform
from mrirecon.data.volume import open_volume
from mrirecon.errors import DataError, Notice
from tests.data.helpers import multicoil_kspace, raw_h5, write_fastmri


def _error(path: Path, named: Path | None = None, **kwargs: object) -> str:
    """Open the file, read every slice, and return the DataError's one line (which names ``named``)."""
    with pytest.raises(DataError) as caught, open_volume(path, **kwargs) as volume:  # type: ignore[arg-type]
        for index in range(volume.num_slices):
            volume.read_kspace(index)
    message = str(caught.value)
    assert message.startswith(str(named or path)), f"the message does not name the file: {message}"
    return message


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_fastmri(tmp_path / "good.h5", multicoil_kspace(slices=2, coils=3))


def test_missing_file(tmp_path: Path) -> None:
    assert "no such file" in _error(tmp_path / "absent.h5")


def test_truncated_hdf5(good: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.h5"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    assert "cannot open the file as HDF5 (truncated)" in _error(truncated)


def test_corrupt_hdf5(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    assert "cannot open the file as HDF5 (corrupt or not HDF5)" in _error(corrupt)


def test_missing_kspace(tmp_path: Path) -> None:
    path = raw_h5(tmp_path / "nok.h5", reconstruction_rss=np.zeros((2, 8, 8), np.float32))
    assert "the file has no 'kspace' dataset" in _error(path)


@pytest.mark.parametrize("shape", [(8, 8), (2, 2, 2, 8, 8)])
def test_wrong_rank(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = raw_h5(tmp_path / "rank.h5", kspace=np.ones(shape, np.complex64))
    assert f"'kspace' has rank {len(shape)}" in _error(path)


@pytest.mark.parametrize("shape", [(2, 3, 8, 7), (2, 4, 16, 12)], ids=["odd", "real-valued S-C-H-W"])
def test_real_kspace_of_a_wrong_layout(tmp_path: Path, shape: tuple[int, ...]) -> None:
    """Float k-space is read only in the Calgary-Campinas layout ``(S, H, W, 2·C)``: not with an odd
    last axis, and not as the magnitude of an ``(S, C, H, W)`` k-space (last axis longer than C)."""
    path = raw_h5(tmp_path / "real.h5", kspace=np.ones(shape, np.float32))
    assert "dtype float32" in _error(path)


@pytest.mark.parametrize("mask", [np.ones(23, bool), np.ones((31, 24), bool), np.zeros(24, bool)])
def test_mask_that_does_not_fit(tmp_path: Path, mask: np.ndarray) -> None:
    path = raw_h5(tmp_path / "mask.h5", kspace=multicoil_kspace(slices=1, coils=2), mask=mask)
    message = _error(path)
    assert ("does not fit the k-space's in-plane size 32×24" in message) or ("samples no k-space" in message)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_kspace(tmp_path: Path, bad: float) -> None:
    kspace = multicoil_kspace(slices=3, coils=2)
    kspace[1, 1, 5, 7] = complex(bad, 0) if np.isnan(bad) else complex(0, bad)
    path = write_fastmri(tmp_path / "nan.h5", kspace, reconstruction_rss=None)
    assert "slice 1 of the k-space holds NaN or Inf values" in _error(path)


def test_huge_but_finite_values_are_not_an_error(tmp_path: Path) -> None:
    kspace = multicoil_kspace(slices=1, coils=2) * np.float32(1e30)  # the squared norm overflows
    path = write_fastmri(tmp_path / "huge.h5", kspace, reconstruction_rss=None)
    with open_volume(path) as volume:
        assert np.isfinite(volume.read_kspace(0)).all()


def test_all_zero_slice(tmp_path: Path) -> None:
    kspace = multicoil_kspace(slices=2, coils=2)
    kspace[0] = 0
    path = write_fastmri(tmp_path / "zero.h5", kspace, reconstruction_rss=None)
    assert "slice 0 of the k-space is all zeros" in _error(path)


def test_unreadable_header(tmp_path: Path) -> None:
    path = raw_h5(
        tmp_path / "header.h5",
        kspace=multicoil_kspace(slices=1, coils=2),
        ismrmrd_header=b"<ismrmrdHeader><oops",
    )
    assert "unreadable ISMRMRD header" in _error(path)


def test_header_without_matrices(tmp_path: Path) -> None:
    xml = b'<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding/></ismrmrdHeader>'
    path = raw_h5(tmp_path / "header2.h5", kspace=multicoil_kspace(slices=1, coils=2), ismrmrd_header=xml)
    assert "no encodedSpace/reconSpace matrix sizes" in _error(path)


def test_reference_of_another_slice_count(tmp_path: Path) -> None:
    path = raw_h5(
        tmp_path / "ref.h5",
        kspace=multicoil_kspace(slices=2, coils=2),
        reconstruction_rss=np.ones((3, 32, 24), np.float32),
    )
    assert "one image per k-space slice" in _error(path)


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "scan.dat"
    path.write_bytes(b"x")
    assert "unsupported file type '.dat'" in _error(path)


def test_npy_problems(tmp_path: Path) -> None:
    real = tmp_path / "real.npy"
    np.save(real, np.ones((2, 8, 8), np.float32))
    assert "k-space must be complex" in _error(real)
    four = tmp_path / "four.npy"
    np.save(four, np.ones((2, 2, 8, 8), np.complex64))
    assert "order is ambiguous" in _error(four)
    assert "names 3 axes but the array has 4" in _error(four, npy_axes="coils,kx,ky")
    assert "unknown axis name(s) depth" in _error(four, npy_axes="coils,kx,ky,depth")
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"not numpy")
    assert "cannot read the file as a NumPy array" in _error(garbage)
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")  # np.load raised EOFError: a traceback that stopped a batch
    assert "the file is empty (0 bytes)" in _error(empty)
    # a spatial axis taken for the coils (kx,ky,coils given for coils,kx,ky): 180 "coils" of 8 × 230
    swapped = tmp_path / "swapped.npy"
    np.save(swapped, np.ones((8, 230, 180), np.complex64))
    assert "give 180 coils and a spatial axis of 8 samples" in _error(swapped, npy_axes="kx,ky,coils")
    with open_volume(swapped, npy_axes="coils,kx,ky") as volume:  # the right order opens
        assert volume.num_slices == 1
    huge = tmp_path / "huge.npy"  # a header declaring 4 TiB over a few bytes: NumPy's MemoryError
    with huge.open("wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<c8", "fortran_order": False, "shape": (2**20, 8, 256, 256)}
        )
        handle.write(b"\0" * 64)
    assert "the header declares (1048576, 8, 256, 256) complex64" in _error(huge)


def test_cfl_problems(tmp_path: Path) -> None:
    (tmp_path / "a.hdr").write_text("# Dimensions\n8 8 1 2\n")
    (tmp_path / "a.cfl").write_bytes(b"\0" * 100)
    assert "the header's dimensions (8, 8, 1, 2) need 1024" in _error(tmp_path / "a.cfl")
    (tmp_path / "b.cfl").write_bytes(b"\0" * 8)
    assert "the BART .hdr file is missing" in _error(tmp_path / "b.cfl", named=tmp_path / "b.hdr")


def test_dataset_skips_bad_files_and_serves_the_good_ones(good: Path, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(good, folder / "a_good.h5")
    shutil.copy(good, folder / "z_good.h5")
    (folder / "b_corrupt.h5").write_bytes(b"garbage" * 100)
    raw_h5(folder / "c_nokspace.h5", something=np.zeros(3))
    nan = multicoil_kspace(slices=2, coils=3)
    nan[1, 0, 0, 0] = np.nan
    write_fastmri(folder / "d_nan.h5", nan)
    with pytest.raises(DataError, match=r"b_corrupt\.h5: cannot open the file as HDF5"):
        SliceDataset(folder, ReconTransform())
    with pytest.warns(Notice) as notices:  # each file left out is named (it was left out silently)
        dataset = SliceDataset(folder, ReconTransform(), skip_bad=True)
    said = [str(n.message) for n in notices]
    assert len(said) == 2 and all(text.startswith("skipping a bad file (data.skip_bad): ") for text in said)
    assert "b_corrupt.h5: cannot open the file as HDF5" in said[0] and "c_nokspace.h5" in said[1]
    assert {p.name for p, _ in dataset.bad_files} == {"b_corrupt.h5", "c_nokspace.h5"}
    assert all(p.name in reason for p, reason in dataset.bad_files)
    assert len(dataset) == 6  # three readable files of two slices; d_nan.h5 fails only when read
    with pytest.warns(Notice, match=r"d_nan.h5: slice 1 of the k-space holds NaN"):
        names = [dataset[i].fname for i in range(len(dataset))]
    assert "d_nan.h5" in {p.name for p, _ in dataset.bad_files}
    assert names.count("d_nan.h5") == 1  # slice 0 was fine; slice 1 was replaced by a good slice
    assert set(names) == {"a_good.h5", "z_good.h5", "d_nan.h5"}


def test_ismrmrd_problems(tmp_path: Path) -> None:
    import h5py
    import ismrmrd

    from mrirecon.data.header import build_ismrmrd_header

    def raw(name: str, trajectory: str, noise_only: bool) -> Path:
        path = tmp_path / name
        dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
        dataset.write_xml_header(
            build_ismrmrd_header(encoded_matrix=(16, 8, 1)).replace(">cartesian<", f">{trajectory}<")
        )
        acq = ismrmrd.Acquisition.from_array(np.ones((2, 16), np.complex64))
        if noise_only:
            acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        dataset.append_acquisition(acq)
        dataset.close()
        return path

    assert "the trajectory is radial; mrirecon converts Cartesian data only" in _error(
        raw("r.h5", "radial", False)
    )
    assert "the file holds no imaging readouts" in _error(raw("n.h5", "cartesian", True))
    assert "centered=False does not apply" in _error(raw("c.h5", "cartesian", False), centered=False)
    # the ISMRMRD layout with the wrong kind of datasets: a one-line error, not a traceback
    good = raw("g.h5", "cartesian", False)
    for name, edit, message in (
        ("float_data.h5", "data", "'dataset/data' must be a table of ISMRMRD acquisitions"),
        ("scalar_xml.h5", "xml", "'dataset/xml' must hold the XML header as a one-element string dataset"),
    ):
        bad = tmp_path / name
        bad.write_bytes(good.read_bytes())
        with h5py.File(bad, "a") as f:
            del f[f"dataset/{edit}"]
            f[f"dataset/{edit}"] = np.arange(5.0) if edit == "data" else 3
        assert message in _error(bad)


def test_a_bad_recon_space_names_the_header_field(tmp_path: Path) -> None:
    from mrirecon.data.header import build_ismrmrd_header

    xml = build_ismrmrd_header(encoded_matrix=(32, 24, 1), recon_matrix=(0, 24, 1)).encode()
    path = raw_h5(tmp_path / "recon0.h5", kspace=multicoil_kspace(slices=1, coils=2), ismrmrd_header=xml)
    message = _error(path)
    assert "reconSpace/matrixSize is (0, 24, 1)" in message and "non-negative" not in message


def test_a_file_this_user_may_not_read_is_not_called_corrupt(good: Path) -> None:
    from tests.export.tools import run_python, unprivileged

    good.chmod(0o000)
    try:
        code = f"""
from mrirecon.data.volume import open_volume
from mrirecon.errors import DataError
try:
    open_volume({str(good)!r})
except DataError as error:
    print(error.one_line())
"""
        result = run_python(code, prefix=unprivileged())
    finally:
        good.chmod(0o644)
    assert "cannot read the file: permission denied" in result.stdout, result.stdout + result.stderr
    assert "corrupt" not in result.stdout


def _fields_case(tmp_path: Path, name: str) -> Path:
    """A file whose k-space is fine and one of its other fields is not."""
    import h5py

    kspace = multicoil_kspace(slices=2, coils=2, height=32, width=32)
    target = np.ones((2, 32, 32), np.float32)
    path = tmp_path / f"{name}.h5"
    with h5py.File(path, "w") as f:
        if name == "sampled_with_text_acceleration":
            mask = np.arange(32) % 2 == 0
            f["kspace"], f["mask"] = kspace * mask, mask
            f.attrs["acceleration"], f.attrs["num_low_frequency"] = "4x", 2
            return path
        f["kspace"] = kspace
        f["reconstruction_rss"] = {
            "target_larger_than_the_grid": np.ones((2, 40, 40), np.float32),
            "target_of_text": np.array([[[b"x"]]] * 2),
        }.get(name, target)
        if name == "max_of_text":
            f.attrs["max"] = "n/a"
        if name == "max_a_vector":
            f.attrs["max"] = np.array([1.0, 2.0])
        if name == "geometry_of_text":
            f["geometry/position"] = np.array([b"a", b"b"])
        if name == "slice_thickness_of_text":
            f.create_group("geometry").attrs["slice_thickness_mm"] = "x"
        if name == "field_of_view_of_two":
            f.create_group("geometry").attrs["field_of_view_mm"] = np.array([220.0, 220.0])
        if name == "complex_thickness":
            f.create_group("geometry").attrs["slice_thickness_mm"] = 3.0 + 1.0j
        if name == "calibration_a_dataset":
            f["calibration"] = np.zeros(3)
        if name == "centred_flag_of_text":
            f.attrs["mrirecon_fft_centered"] = "false"  # bool("false") is True
        if name == "centred_flag_of_two":
            f.attrs["mrirecon_fft_centered"] = 2
        if name == "float_lesion_labels":
            f["lesion_labels"] = np.full((2, 32, 32), 0.5)
        if name == "lesion_label_out_of_range":
            f["lesion_labels"] = np.full((2, 32, 32), 170_000, np.int32)  # would wrap in int16
    return path


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("target_larger_than_the_grid", "reconstruction size (40, 40) is larger than its k-space grid"),
        ("max_of_text", "the attribute 'max' must be a number"),
        ("max_a_vector", "the attribute 'max' must be a number"),
        ("sampled_with_text_acceleration", "the attribute 'acceleration' must be a number"),
        ("geometry_of_text", "geometry: position must be some finite real numbers"),
        ("slice_thickness_of_text", "geometry: slice_thickness_mm must be a finite real number"),
        ("field_of_view_of_two", "geometry: field_of_view_mm must be 3 finite real numbers"),
        ("complex_thickness", "geometry: slice_thickness_mm must be a finite real number"),
        ("target_of_text", "'reconstruction_rss' holds |S1, not numbers"),
        ("calibration_a_dataset", "'calibration' is a dataset, not a group holding 'calibration/kspace'"),
        ("centred_flag_of_text", "'mrirecon_fft_centered' must be true or false, found 'false'"),
        ("centred_flag_of_two", "the attribute 'mrirecon_fft_centered' must be true or false, found 2"),
        ("float_lesion_labels", "'lesion_labels[0]' holds float64; expected integer labels"),
        ("lesion_label_out_of_range", "'lesion_labels[0]' holds 170000..170000; labels are 0"),
    ],
)
def test_bad_fields_of_a_file_are_data_errors_that_skip_bad_skips(
    tmp_path: Path, name: str, message: str
) -> None:
    path = _fields_case(tmp_path, name)
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        SliceDataset(path, ReconTransform(coil_maps="none"))[0]
    assert str(caught.value).startswith(str(path))
    write_fastmri(tmp_path / "fine.h5", multicoil_kspace(slices=1, coils=2, height=32, width=32))
    with warnings.catch_warnings():  # a file bad at opening is skipped when listed, the others when read
        warnings.simplefilter("ignore")
        dataset = SliceDataset([path, tmp_path / "fine.h5"], ReconTransform(coil_maps="none"), skip_bad=True)
        sample = dataset[0]  # the bad file's slice is replaced by the good file's
    assert sample.fname == "fine.h5" and [p for p, _ in dataset.bad_files] == [path]


def test_a_manifest_promising_more_slices_than_the_file_has(tmp_path: Path) -> None:
    from mrirecon.data.manifest import build_manifest

    for name in ("a", "b"):
        write_fastmri(tmp_path / f"{name}.h5", multicoil_kspace(slices=3, coils=2))
    build_manifest(
        [tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "m.csv", fractions=(1, 0, 0), progress=False
    )
    write_fastmri(tmp_path / "a.h5", multicoil_kspace(slices=1, coils=2))  # replaced by a shorter export
    dataset = SliceDataset(tmp_path / "m.csv", ReconTransform(coil_maps="none"), split="train")
    with pytest.raises(DataError, match=r"the file has 1 slice\(s\), the manifest 3"):
        dataset[0]  # at the file's first use, not at a later slice
    # a longer export: its extra slices were left out without a word
    write_fastmri(tmp_path / "b.h5", multicoil_kspace(slices=5, coils=2))
    dataset = SliceDataset(tmp_path / "m.csv", ReconTransform(coil_maps="none"), split="train")
    with pytest.raises(DataError, match=r"b\.h5: the file has 5 slice\(s\), the manifest 3"):
        dataset[3]


def test_arrays_that_look_uncentred_are_refused_unless_stated(tmp_path: Path) -> None:
    """np.fft.fft2 without fftshift puts the zero frequency in the corners: taken as centred, the image
    was scrambled and the coil maps garbage, without a word. Stated uncentred, it is the same image."""
    import torch

    from mrirecon.physics import change_convention

    centred = multicoil_kspace()
    uncentred = change_convention(torch.from_numpy(centred), to_centered=False).numpy()
    np.save(tmp_path / "centred.npy", centred)
    np.save(tmp_path / "scan.npy", uncentred)
    message = _error(tmp_path / "scan.npy", npy_axes="slices,coils,kx,ky")
    assert (
        "the k-space looks uncentred" in message
        and "mrirecon convert scan.npy -o scan.h5 --uncentered" in message
    )
    axes = "slices,coils,kx,ky"
    with (
        open_volume(tmp_path / "scan.npy", npy_axes=axes, centered=False) as stated,
        open_volume(tmp_path / "centred.npy", npy_axes=axes) as reference,
    ):
        got, want = stated.read_target(1), reference.read_target(1)
        assert got is not None and want is not None
        np.testing.assert_allclose(got, want, atol=1e-5)
    noise = np.random.default_rng(0).standard_normal((2, 4, 32, 24)).astype(np.complex64)  # no peak: taken
    np.save(tmp_path / "noise.npy", noise)
    open_volume(tmp_path / "noise.npy", npy_axes=axes).close()


@pytest.mark.parametrize("value", [0.0, np.nan], ids=["zero", "nan"])
def test_noise_readouts_without_noise_are_a_data_error(tmp_path: Path, value: float) -> None:
    """Pre-whitening with an all-zero (or NaN) noise scan would fail in the Cholesky factorisation
    (a raw LinAlgError that stopped a whole batch run): it is the file's problem, named as such."""
    import h5py

    from tests.data.helpers import disc_image, smooth_maps, write_ismrmrd

    images = smooth_maps(2, 32, 16) * disc_image(1, 32, 16, seed=1)[0]
    path = tmp_path / "noise.h5"
    write_ismrmrd(path, images, lines=np.arange(16), e1_center=8, noise_covariance=np.eye(2))
    with h5py.File(path, "a") as f:
        rows = f["dataset/data"][()]
        rows[0]["data"][:] = value  # the noise readout comes first
        f["dataset/data"][0] = rows[0]
    assert "the noise readouts (ACQ_IS_NOISE_MEASUREMENT) hold no noise" in _error(path)


def test_a_nan_reference_is_a_data_error_that_skip_bad_skips(tmp_path: Path) -> None:
    """One NaN pixel of a training file's reference made that step's loss NaN: the run went on
    (NaN weights) and either reported success or stopped on an internal error."""
    import h5py

    path = write_fastmri(tmp_path / "nan_ref.h5", multicoil_kspace(slices=2, coils=2, height=32, width=32))
    with h5py.File(path, "a") as f:
        f["reconstruction_rss"][1, 10, 10] = np.nan
    dataset = SliceDataset(path, ReconTransform())
    assert np.isfinite(dataset[0].target.numpy()).all()
    with pytest.raises(DataError, match=r"nan_ref.h5: the reference of slice 1 holds NaN or Inf values"):
        dataset[1]
    good = write_fastmri(tmp_path / "z_good.h5", multicoil_kspace(slices=2, coils=2, height=32, width=32))
    with pytest.warns(Notice, match=r"nan_ref.h5: the reference of slice 1 holds NaN"):
        assert SliceDataset([path, good], ReconTransform(), skip_bad=True)[1].fname == "z_good.h5"


def test_skip_bad_leaves_out_a_missing_manifest_file_before_training(tmp_path: Path) -> None:
    """Its slices were counted ("6 training and 2 validation slices"); once served, the split had
    none left and the error named neither the split nor the file."""
    from mrirecon.data.manifest import build_manifest

    for name in ("a", "b"):
        write_fastmri(tmp_path / f"{name}.h5", multicoil_kspace(slices=2, coils=2))
    build_manifest(
        [tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "m.csv", fractions=(1, 0, 0), progress=False
    )
    (tmp_path / "b.h5").unlink()
    dataset = SliceDataset(tmp_path / "m.csv", ReconTransform(), split="train", skip_bad=True)
    with pytest.warns(Notice, match=r"skipping a bad file \(data.skip_bad\): .*b.h5"):
        facts = dataset.file_facts()
    assert [p.name for p in facts] == ["a.h5"] and len(dataset) == 2 and dataset.files == [tmp_path / "a.h5"]
    (tmp_path / "a.h5").unlink()
    alone = SliceDataset(tmp_path / "m.csv", ReconTransform(), split="train", skip_bad=True)
    with pytest.warns(Notice), pytest.raises(DataError, match=r"no readable slices \(2 bad file\(s\)\)"):
        alone.file_facts()
