"""ISMRMRD raw files as scanners and converters write them: reference scans, several frames and
encodings, readouts that do not fit, missing slices, asymmetric echoes in 3-D, odd matrices."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import ismrmrd
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mrirecon.data.cartesian import crop_readout
from mrirecon.data.convert import convert_volume
from mrirecon.data.header import EncodingLimits, build_ismrmrd_header, parse_ismrmrd_header, rewrite_encoding
from mrirecon.data.ismrmrd_raw import Frame
from mrirecon.data.volume import open_volume
from mrirecon.errors import DataError, Notice
from mrirecon.physics import fftnc, ifftnc
from mrirecon_cli.main import cli
from mrirecon_cli.options import parse_frame
from tests.data.helpers import disc_image, rewrite_acquisitions, smooth_maps, write_ismrmrd

COILS, SIZE_X, SIZE_Y = 3, 32, 24


def _coil_images() -> np.ndarray:
    return smooth_maps(COILS, SIZE_X, SIZE_Y) * disc_image(1, SIZE_X, SIZE_Y)[0][None]


def _set_calibration_mode(path: Path, mode: str) -> None:
    with h5py.File(path, "r+") as f:
        xml = f["dataset/xml"][0]
        xml = xml.decode() if isinstance(xml, bytes) else str(xml)
        block = (
            "<parallelImaging><accelerationFactor><kspace_encoding_step_1>2</kspace_encoding_step_1>"
            "<kspace_encoding_step_2>1</kspace_encoding_step_2></accelerationFactor>"
            f"<calibrationMode>{mode}</calibrationMode></parallelImaging>"
        )
        xml = xml.replace("</trajectory>", "</trajectory>" + block, 1)
        del f["dataset/xml"]
        f.create_dataset("dataset/xml", data=[xml.encode()], dtype=h5py.string_dtype())
    assert parse_ismrmrd_header(xml).calibration_mode == mode


def _append(path: Path, count: int, **changes: int) -> None:
    """Append copies of the first ``count`` readouts with ``idx`` fields (or ``encoding_space_ref``)
    changed."""
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    for number in range(count):
        acq = dataset.read_acquisition(number)
        for name, value in changes.items():
            if name == "encoding_space_ref":
                acq.encoding_space_ref = value
            else:
                setattr(acq.idx, name, value)
        dataset.append_acquisition(acq)
    dataset.close()


@pytest.mark.parametrize(("mode", "gridded"), [("separate", False), ("external", False), ("embedded", True)])
def test_reference_lines_of_a_separate_scan_stay_out_of_the_imaging_kspace(
    tmp_path: Path, mode: str, gridded: bool
) -> None:
    imaging = np.arange(0, SIZE_Y, 2)
    reference = {11, 13}  # centre lines the imaging scan skipped
    path = tmp_path / "raw.h5"
    write_ismrmrd(path, _coil_images(), lines=np.array(sorted({*imaging, *reference})), e1_center=12,
                  calibration=reference)  # fmt: skip
    _set_calibration_mode(path, mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Notice)  # kept for the coil maps: nothing to say
        volume = open_volume(path)
    with volume:
        assert volume.mask is not None
        assert set(np.nonzero(volume.mask)[0]) == {*imaging, *(reference if gridded else ())}
        kspace = volume.read_kspace(0)
        assert (kspace[:, :, sorted(reference)] != 0).any() == gridded
        assert ("separate reference scan kept for coil maps" in volume.attrs["mrirecon_source"]) != gridded
        calibration = volume.read_calibration(0)
        assert (calibration is None) == gridded
        if calibration is not None:
            assert set(np.nonzero(calibration[1])[0]) == reference


def _separate_reference_file(tmp_path: Path) -> tuple[Path, Path, Path, np.ndarray, np.ndarray]:
    """A 2× undersampled scan without a fully sampled centre whose coil maps come from a separate
    reference scan of another contrast (8 centre lines), with correlated coil noise; and the fully
    sampled imaging and reference scans it was cut from."""
    maps, disc = smooth_maps(COILS, SIZE_X, SIZE_Y), disc_image(1, SIZE_X, SIZE_Y)[0]
    other = disc * (0.4 + 0.6 * np.mgrid[:SIZE_X, :SIZE_Y][1] / SIZE_Y)  # another contrast
    covariance = np.eye(COILS) * 1e-4 + 2e-5
    full, reference_scan, path = tmp_path / "full.h5", tmp_path / "reference.h5", tmp_path / "scan.h5"
    write_ismrmrd(full, maps * disc[None], lines=np.arange(SIZE_Y), e1_center=12, noise_covariance=covariance)
    write_ismrmrd(reference_scan, maps * other[None], lines=np.arange(SIZE_Y), e1_center=12,
                  noise_covariance=covariance)  # fmt: skip
    imaging, reference = np.arange(1, SIZE_Y, 2), np.arange(8, 16)  # odd lines: the centre 12 is not
    dataset = ismrmrd.Dataset(str(reference_scan), "dataset", create_if_needed=False)
    lines = [dataset.read_acquisition(n) for n in range(dataset.number_of_acquisitions())]
    dataset.close()
    calibration = [
        a
        for a in lines
        if int(a.idx.kspace_encode_step_1) in reference
        and not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
    ]
    for acq in calibration:
        acq.set_flag(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
    path.write_bytes(full.read_bytes())

    def cut(acquisitions: list[ismrmrd.Acquisition]) -> list[ismrmrd.Acquisition]:
        noise = [a for a in acquisitions if a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)]
        kept = [a for a in acquisitions if a not in noise and int(a.idx.kspace_encode_step_1) in imaging]
        return noise + calibration + kept

    rewrite_acquisitions(path, cut)
    _set_calibration_mode(path, "separate")
    return path, full, reference_scan, imaging, reference


def test_a_separate_reference_scan_gives_the_coil_maps(tmp_path: Path) -> None:
    """GRAPPA and SENSE protocols with a separate reference scan measure no fully sampled centre
    in the imaging data: the reference scan's lines, whitened and cropped as the imaging lines,
    give the coil maps (the imaging k-space stays without them); such a scan was refused."""
    from mrirecon.data.coilmaps import acs_coil_maps
    from mrirecon.data.transforms import ReconTransform

    path, full, reference_scan, imaging, reference = _separate_reference_file(tmp_path)
    with open_volume(path) as volume, open_volume(reference_scan) as ref, open_volume(full) as whole:
        assert volume.mask is not None and set(np.nonzero(volume.mask)[0]) == set(imaging)
        np.testing.assert_array_equal(volume.read_kspace(0)[..., imaging], whole.read_kspace(0)[..., imaging])
        calibration = volume.read_calibration(0)
        assert calibration is not None
        kspace, mask = calibration
        assert set(np.nonzero(mask)[0]) == set(reference)
        expected = ref.read_kspace(0)  # the reference scan as a file of its own: same whitening and crop
        np.testing.assert_allclose(
            kspace[..., mask], expected[..., mask], rtol=0, atol=1e-6 * np.abs(expected).max()
        )
        assert not kspace[..., ~mask].any()
        lines = torch.from_numpy(mask.astype(np.float32)).reshape(1, 1, -1)
        maps = acs_coil_maps(torch.from_numpy(expected) * lines, lines, centered=True)
        for method in ("acs", "espirit"):
            sample = ReconTransform(coil_maps=method)(volume, 0)
            assert sample.coil_maps.shape == (COILS, *volume.kspace_shape[1:])
            if method == "acs":
                torch.testing.assert_close(sample.coil_maps, maps)
        truth = whole.read_target(0)
        assert truth is not None
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["infer", "sense", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    with h5py.File(out / "scan.h5") as f:
        image, zero_filled = f["reconstruction"][0], f["zero_filled"][0]
    error = np.linalg.norm(image - truth) / np.linalg.norm(truth)
    assert error < 0.4 * np.linalg.norm(zero_filled - truth) / np.linalg.norm(truth)


def test_convert_keeps_the_separate_reference_scan(tmp_path: Path) -> None:
    """The fastMRI file `mrirecon convert` writes holds the reference scan (group `calibration/`),
    so the converted scan gives the same coil maps; a group that does not fit is refused."""
    from mrirecon.data.transforms import ReconTransform

    path, *_ = _separate_reference_file(tmp_path)
    converted = tmp_path / "converted.h5"
    convert_volume(path, converted)
    with open_volume(path) as raw, open_volume(converted) as volume:
        expected, got = raw.read_calibration(0), volume.read_calibration(0)
        assert expected is not None and got is not None
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
        torch.testing.assert_close(
            ReconTransform(coil_maps="acs")(volume, 0).coil_maps,
            ReconTransform(coil_maps="acs")(raw, 0).coil_maps,
        )
    with h5py.File(converted, "r+") as f:
        columns = f["calibration/columns"][()]
        del f["calibration/columns"]
        f["calibration/columns"] = columns[:-1]
    with pytest.raises(DataError, match="'calibration/' holds kspace"):
        open_volume(converted)


def test_readouts_of_another_encoding_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "raw.h5"
    write_ismrmrd(path, _coil_images(), lines=np.arange(0, SIZE_Y, 2), e1_center=12)
    with open_volume(path) as alone:
        expected, mask = alone.read_kspace(0), alone.mask
    _append(path, 4, encoding_space_ref=1, kspace_encode_step_1=1)  # would land on line 1
    with pytest.warns(Notice, match="4 readouts belong to another encoding"):
        volume = open_volume(path)
    with volume:
        np.testing.assert_array_equal(volume.mask, mask)
        np.testing.assert_array_equal(volume.read_kspace(0), expected)


@pytest.mark.parametrize("center_sample", [0, SIZE_X - 1])
def test_readouts_that_do_not_fit_the_matrix_are_refused(tmp_path: Path, center_sample: int) -> None:
    path = tmp_path / "raw.h5"
    write_ismrmrd(path, _coil_images(), lines=np.arange(SIZE_Y), e1_center=12)
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    acq = dataset.read_acquisition(0)
    acq.center_sample = center_sample  # the echo at the start (or end): half the samples fall outside
    dataset.append_acquisition(acq)
    dataset.close()
    with pytest.raises(DataError, match=r"raw\.h5: acquisition 0 has 32 readout samples.*do not fit"):
        open_volume(path)


def test_readouts_of_other_partitions_in_a_2d_encoding_are_refused(tmp_path: Path) -> None:
    """A header that says 2-D (one partition) over readouts of four partitions: refused, not
    averaged into one plane as if the partitions were repeats."""
    path = tmp_path / "raw.h5"
    write_ismrmrd(path, _coil_images(), lines=np.arange(SIZE_Y), e1_center=12)

    def four_partitions(acquisitions: list[ismrmrd.Acquisition]) -> list[ismrmrd.Acquisition]:
        for number, acq in enumerate(acquisitions):
            acq.idx.kspace_encode_step_2 = number % 4
        return acquisitions

    rewrite_acquisitions(path, four_partitions)
    with pytest.raises(DataError, match=r"raw\.h5: acquisition \d+ \(line \d+, partition [123]\) falls out"):
        open_volume(path)


def test_frames_are_chosen_and_a_missing_one_names_those_present(tmp_path: Path) -> None:
    path = tmp_path / "raw.h5"
    write_ismrmrd(path, _coil_images(), lines=np.arange(SIZE_Y), e1_center=12)
    with open_volume(path) as first:
        expected = first.read_kspace(0)

    def to_set_1(acquisitions: list[ismrmrd.Acquisition]) -> list[ismrmrd.Acquisition]:
        for acq in acquisitions:  # every readout in set 1
            acq.idx.set = 1
        return acquisitions

    rewrite_acquisitions(path, to_set_1)
    with pytest.raises(DataError, match=r"no imaging readouts of contrast 0, repetition 0, phase 0, set 0; "
                       r"its frames are: contrast 0, repetition 0, phase 0, set 1") as caught:  # fmt: skip
        open_volume(path)
    assert "--frame set=1" in str(caught.value)
    with open_volume(path, frame=Frame(set=1)) as chosen:
        np.testing.assert_array_equal(chosen.read_kspace(0), expected)
    convert_volume(path, tmp_path / "set1.h5", frame=parse_frame("set=1"))
    with open_volume(tmp_path / "set1.h5") as converted:
        np.testing.assert_array_equal(converted.read_kspace(0), expected)


def test_the_frame_option_is_parsed_and_refused_in_one_line(tmp_path: Path) -> None:
    assert parse_frame("contrast=1, set=2") == Frame(contrast=1, set=2)
    for bad in ("sett=1", "contrast=-1", "contrast=1,contrast=2", "echo"):
        result = CliRunner().invoke(cli, ["convert", str(tmp_path / "in.h5"), "-o", "x.h5", "--frame", bad])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("Error: --frame must be NAME=N") and result.output.count("\n") <= 2


def test_a_slice_without_readouts_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "raw.h5"
    write_ismrmrd(path, _coil_images(), lines=np.arange(SIZE_Y), e1_center=12)
    with open_volume(path) as single:
        expected = single.read_kspace(0)
    _append(path, SIZE_Y, slice=2)  # slices 0 and 2; slice 1 never measured
    with pytest.warns(Notice, match=r"slice index\(es\) 1 hold no readouts.*the 2 slices that do"):
        volume = open_volume(path)
    with volume:
        assert volume.num_slices == 2
        np.testing.assert_array_equal(volume.read_kspace(1), expected)
        assert volume.geometry is not None and volume.geometry["position"].shape == (2, 3)


def test_the_acquired_columns_count_from_the_limits_minimum() -> None:
    """The same partial-Fourier lines numbered 0…35 (centre 12) or 12…47 (centre 24)."""
    for limits in (EncodingLimits(0, 35, 12), EncodingLimits(12, 47, 24)):
        header = parse_ismrmrd_header(build_ismrmrd_header(encoded_matrix=(32, 48, 1), e1_limits=limits))
        assert header.padding(48) == (12, 48)


@pytest.mark.parametrize(("size", "keep"), [(150, 75), (64, 32), (75, 32), (63, 21)])
def test_readout_crop_keeps_the_field_of_view_centre_where_the_geometry_puts_it(size: int, keep: int) -> None:
    image = np.zeros((1, size, 4), dtype=np.complex64)
    image[0, size // 2] = 1.0  # the centre of the field of view (centred FFT)
    kspace = fftnc(torch.from_numpy(image).transpose(-1, -2).contiguous(), 1).transpose(-1, -2)
    cropped = crop_readout(kspace.contiguous(), keep)
    back = ifftnc(cropped.transpose(-1, -2).contiguous(), 1).transpose(-1, -2)
    assert int(back[0, :, 0].abs().argmax()) == keep // 2


def test_3d_with_an_asymmetric_echo_is_decoupled(tmp_path: Path) -> None:
    coils, size_x, size_y, size_z, cut = 2, 32, 8, 6, 6
    image = np.zeros((size_x, size_y, size_z), dtype=np.complex64)
    image[size_x // 4 : 3 * size_x // 4] = np.stack(
        [disc_image(1, size_y, size_z, seed=x)[0] for x in range(16)]
    )
    coil_images = smooth_maps(coils, size_y, size_z)[:, None] * image[None]
    kspace = fftnc(torch.from_numpy(coil_images.astype(np.complex64)), 3).numpy()
    xml = rewrite_encoding(
        build_ismrmrd_header(encoded_matrix=(size_x, size_y, size_z)),
        encoded_matrix=(size_x, size_y, size_z),
        encoded_fov_mm=(320.0, 80.0, 60.0),
        recon_matrix=(size_x // 2, size_y, size_z),
        recon_fov_mm=(160.0, 80.0, 60.0),
        e1_limits=EncodingLimits(0, size_y - 1, size_y // 2),
        e2_limits=EncodingLimits(0, size_z - 1, size_z // 2),
    )
    path = tmp_path / "asym3d.h5"
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    dataset.write_xml_header(xml)
    for y in range(size_y):
        for z in range(size_z):
            acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(kspace[:, cut:, y, z]))
            acq.idx.kspace_encode_step_1, acq.idx.kspace_encode_step_2 = y, z
            acq.center_sample = size_x // 2 - cut  # the echo is not the middle sample
            dataset.append_acquisition(acq)
    dataset.close()
    with open_volume(path) as volume:
        got = np.stack([volume.read_kspace(i) for i in range(volume.num_slices)])
    partial = kspace.copy()
    partial[:, :cut] = 0  # zero-filled before slicing along the readout
    rows = ifftnc(torch.from_numpy(partial).permute(0, 2, 3, 1).contiguous(), 1).permute(3, 0, 1, 2).numpy()
    expected = rows[size_x // 2 - size_x // 4 : size_x // 2 + size_x // 4]
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())
    _probed_like_opened(path)  # 3-D: slices along the readout, the 2-D mask of the partitions


def _probed_like_opened(path: Path) -> None:
    from mrirecon.data.ismrmrd_raw import probe_ismrmrd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        volume = open_volume(path)
        probe = probe_ismrmrd(path)
    assert (probe.num_slices, probe.kspace_shape, probe.crop_size) == (
        volume.num_slices,
        tuple(volume.kspace_shape),
        tuple(volume.crop_size),
    )
    assert (probe.mask is None) == (volume.mask is None)
    if volume.mask is not None:
        np.testing.assert_array_equal(probe.mask, volume.mask)


def test_the_probe_gives_what_the_conversion_serves(tmp_path: Path) -> None:
    """Planning probes raw files from their headers; the probe must equal the converted volume."""
    undersampled = tmp_path / "r2.h5"
    write_ismrmrd(undersampled, _coil_images(), lines=np.array(sorted({*range(0, SIZE_Y, 2), 11, 13})),
                  e1_center=12, calibration={11, 13})  # fmt: skip
    _probed_like_opened(undersampled)
    _set_calibration_mode(undersampled, "separate")
    _probed_like_opened(undersampled)
    partial = tmp_path / "pf.h5"  # partial Fourier: lines 0..17 of a 24-line matrix centred at 12
    write_ismrmrd(partial, _coil_images(), lines=np.arange(18), e1_center=12)
    _probed_like_opened(partial)
    gap = tmp_path / "gap.h5"
    write_ismrmrd(gap, _coil_images(), lines=np.arange(SIZE_Y), e1_center=12)
    _append(gap, SIZE_Y, slice=2)
    _probed_like_opened(gap)


def test_averages_are_averaged_not_summed(tmp_path: Path) -> None:
    """Every line measured twice (``idx.average`` 0 and 1): the k-space served is the mean of the
    two measurements (summed, it would be twice as bright as either)."""
    once, other = tmp_path / "once.h5", tmp_path / "other.h5"
    write_ismrmrd(once, _coil_images(), lines=np.arange(SIZE_Y), e1_center=12)
    write_ismrmrd(other, 3 * _coil_images(), lines=np.arange(SIZE_Y), e1_center=12)
    dataset = ismrmrd.Dataset(str(other), "dataset", create_if_needed=False)
    second = [dataset.read_acquisition(n) for n in range(dataset.number_of_acquisitions())]
    dataset.close()
    for acq in second:
        acq.idx.average = 1
    twice = tmp_path / "twice.h5"
    twice.write_bytes(once.read_bytes())
    rewrite_acquisitions(twice, lambda acquisitions: [*acquisitions, *second])
    with open_volume(once) as single, open_volume(twice) as averaged:
        expected = 2 * single.read_kspace(0)  # (1 + 3) / 2
        np.testing.assert_allclose(
            averaged.read_kspace(0), expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max()
        )


def test_reference_lines_that_do_not_fit_are_left_out_not_fatal(tmp_path: Path) -> None:
    """A reference line outside the encoded matrix, or of another channel count, only lessens the
    coil maps' data: it is left out with a note, and the scan opens (the reference scan was never
    a reason to refuse it)."""
    path, *_ = _separate_reference_file(tmp_path)
    with open_volume(path) as volume:
        calibration = volume.read_calibration(0)
        assert calibration is not None
        columns = set(np.nonzero(calibration[1])[0])

    def spoil(acquisitions: list[ismrmrd.Acquisition]) -> list[ismrmrd.Acquisition]:
        references = [a for a in acquisitions if a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)]
        references[0].idx.kspace_encode_step_1 = 40  # outside the 24-line matrix
        narrow = ismrmrd.Acquisition.from_array(references[1].data[:2].copy(), references[1].traj.copy())
        narrow.setHead(references[1].getHead())
        narrow.resize(references[1].number_of_samples, 2, references[1].trajectory_dimensions)
        narrow.data[:] = references[1].data[:2]
        return [a if a is not references[1] else narrow for a in acquisitions]

    rewrite_acquisitions(path, spoil)
    with pytest.warns(Notice, match="2 of the 8 lines of its separate reference scan do not fit"):
        volume = open_volume(path)
    with volume:
        calibration = volume.read_calibration(0)
        assert calibration is not None and len(set(np.nonzero(calibration[1])[0])) == len(columns) - 2


def test_slices_without_reference_lines_are_named_and_their_error_says_why(tmp_path: Path) -> None:
    """A reference scan that covers only some slices: opening names the others (their maps come
    from the imaging data); one of them without a fully sampled centre is refused saying so, with
    a fix that applies to measured data (not a retrospective mask's centre fraction)."""
    from mrirecon.data.transforms import ReconTransform

    path, *_ = _separate_reference_file(tmp_path)

    def second_slice(acquisitions: list[ismrmrd.Acquisition]) -> list[ismrmrd.Acquisition]:
        imaging = [
            a
            for a in acquisitions
            if not a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
            and not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        ]
        copies = []
        for acq in imaging:
            copy = ismrmrd.Acquisition.from_array(acq.data.copy(), acq.traj.copy())
            copy.setHead(acq.getHead())
            copy.idx.slice = 1
            copies.append(copy)
        return [*acquisitions, *copies]

    rewrite_acquisitions(path, second_slice)
    with pytest.warns(Notice, match=r"slice\(s\) 1 have no line of its separate reference scan"):
        volume = open_volume(path)
    with volume:
        assert ReconTransform(coil_maps="acs")(volume, 0).coil_maps.abs().amax() > 0
        with pytest.raises(DataError, match="its separate reference scan has no line on this slice") as error:
            ReconTransform(coil_maps="acs")(volume, 1)
        assert error.value.hint is not None and "e2e_varnet" in error.value.hint
    bare = tmp_path / "bare.h5"  # the header names a separate scan the file does not hold
    write_ismrmrd(bare, _coil_images(), lines=np.arange(1, SIZE_Y, 2), e1_center=12)
    _set_calibration_mode(bare, "separate")
    with open_volume(bare) as volume, pytest.raises(DataError, match="holds no reference line that fits"):
        ReconTransform(coil_maps="acs")(volume, 0)


def test_acquisitions_without_channels_or_samples_are_left_out(tmp_path: Path) -> None:
    """A table of zero rows (a few KB compressed) made every row an imaging readout of 0 channels:
    minutes, gigabytes, then an MKL FFT error that aborted a batch as an internal error."""
    path = tmp_path / "raw.h5"
    write_ismrmrd(
        path,
        disc_image(1, 32, 16)[0][None].repeat(2, 0).astype(np.complex64),
        lines=np.arange(16),
        e1_center=8,
    )
    expected = open_volume(path).read_kspace(0)

    def with_empty(acquisitions: list[ismrmrd.Acquisition]) -> list[ismrmrd.Acquisition]:
        return [ismrmrd.Acquisition(), *acquisitions, ismrmrd.Acquisition()]  # 0 channels, 0 samples

    rewrite_acquisitions(path, with_empty)
    volume = open_volume(path)
    np.testing.assert_array_equal(volume.read_kspace(0), expected)
    assert "2 acquisitions without channels or samples left out" in volume.attrs["mrirecon_source"]

    zeros = tmp_path / "zeros.h5"
    with h5py.File(path, "r") as f, h5py.File(zeros, "w") as g:
        g["dataset/xml"] = f["dataset/xml"][()]
        rows = np.zeros(1000, dtype=f["dataset/data"].dtype)
        for name in ("traj", "data"):
            rows[name] = [np.zeros(0, np.float32)] * len(rows)
        g.create_dataset("dataset/data", data=rows, chunks=(500,), compression="gzip")
    with pytest.raises(
        DataError, match=r"zeros.h5: the file holds no imaging readouts \(1,000 acquisitions without"
    ):
        open_volume(zeros)
