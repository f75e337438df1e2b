"""Batch reconstruction end to end, in this process: outputs against an oracle, undersampling records,
failures recorded and the run going on, resuming, DICOM, and infer's stricter behaviour."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, cast

import h5py
import numpy as np
import pydicom
import pytest
import torch

from mrirecon.data.fastmri_writer import write_volume
from mrirecon.data.header import EncodingLimits, build_ismrmrd_header, rewrite_encoding
from mrirecon.errors import ConfigError, DataError, ModelError, Notice
from mrirecon.export import DicomOptions, export_dicom, read_reconstruction
from mrirecon.inference import RunOptions, Undersampling, load_reconstructor, run_batch, run_inference
from mrirecon.inference.failures import read_failures
from mrirecon.models.io import save_model
from mrirecon.models.registry import build_model, default_config
from mrirecon.physics import fft2c, fftnc, ifft2c
from mrirecon.shapes import center_crop
from tests.export.tools import IDENTIFIERS, oblique_geometry, rich_header
from tests.inference import fakes

pytestmark = pytest.mark.usefixtures("installed")


def _options(out: Path, **kwargs) -> RunOptions:
    return RunOptions(**{"output_dir": out, "workers": 0, "progress": False, "device": "cpu", **kwargs})


def _rss(path: Path, crop: tuple[int, int]) -> np.ndarray:
    return np.asarray(center_crop(fakes.rss_volume(path), crop))


def test_outputs_are_the_oracle_in_the_input_scale_with_provenance(tmp_path: Path, inputs: Path) -> None:
    out = tmp_path / "out"
    loaded = load_reconstructor("zero_filled")
    result = run_batch(loaded, inputs, _options(out, batch_size=3))  # batches span volumes
    assert (result.reconstructed, result.slices, result.failures, result.skipped) == (3, 9, [], 0)
    for name, crop in (("vol_a", (32, 24)), ("vol_b", (28, 20)), ("vol_c", (32, 24))):
        recon = read_reconstruction(out / f"{name}.h5")
        rss = _rss(inputs / f"{name}.h5", crop)  # RSS of the coil images, in the file's own scale
        direct = fakes.direct_reconstruction(inputs / f"{name}.h5", loaded.model)  # slice by slice
        assert recon.shape == rss.shape == direct.shape and rss.max() > 1e-4
        np.testing.assert_allclose(recon.reconstruction, direct, rtol=1e-4, atol=1e-6 * rss.max())
        assert recon.zero_filled is not None
        np.testing.assert_allclose(recon.zero_filled, rss, rtol=1e-4, atol=1e-6 * rss.max())
        assert np.corrcoef(recon.reconstruction.ravel(), rss.ravel())[0, 1] > 0.9  # the same image
        assert (recon.model, recon.checkpoint_sha256, recon.undersampling) == ("zero_filled", "", "none")
        assert (recon.input_file, recon.acquisition) == (f"{name}.h5", "AXT2")
        assert recon.ismrmrd_header and "reconSpace" in recon.ismrmrd_header
        assert recon.extra_attrs["coil_maps"] == "acs" and recon.acceleration is None
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["model"] == "zero_filled"
    assert run["counts"] == {
        "inputs": 3,
        "skipped_finished": 0,
        "reconstructed": 3,
        "dicom_exported_from_hdf5": 0,
        "failed": 0,
        "slices_reconstructed": 9,
    }
    assert run["config"]["run"]["batch_size"] == 3 and run["timings"]["slices_per_s"] > 0
    timings = run["timings"]  # the first batch's latency counts: the loader's start-up is not hidden
    assert 0 < timings["first_batch_s"] <= timings["loader_wait_s"] <= timings["total_s"]
    assert read_failures(out / "failures.csv") == []
    assert sorted(p.name for p in out.iterdir()) == [
        "failures.csv",
        "run.json",
        "vol_a.h5",
        "vol_b.h5",
        "vol_c.h5",
    ]


def test_every_device_gives_the_oracle(tmp_path: Path, inputs: Path, device: torch.device) -> None:
    """CPU always; CUDA where there is one (pinned batches, asynchronous copies)."""
    loaded = load_reconstructor("zero_filled")
    options = RunOptions(output_dir=tmp_path / "out", device=str(device), workers=1, progress=False)
    assert run_batch(loaded, inputs / "vol_b.h5", options).ranks[0].device.startswith(device.type)
    recon = read_reconstruction(tmp_path / "out" / "vol_b.h5")
    direct = fakes.direct_reconstruction(inputs / "vol_b.h5", loaded.model.cpu())
    np.testing.assert_allclose(recon.reconstruction, direct, rtol=1e-4, atol=1e-5 * direct.max())


def test_a_checkpoint_run_records_its_sha256_and_config(tmp_path: Path, inputs: Path) -> None:
    ckpt = save_model(
        tmp_path / "m.pt", "fake_learned", fakes.LearnedConfig(4), fakes.FakeLearned(fakes.LearnedConfig(4))
    )
    loaded = load_reconstructor(ckpt)
    run_batch(loaded, inputs / "vol_b.h5", _options(tmp_path / "out"))
    recon = read_reconstruction(tmp_path / "out" / "vol_b.h5")
    assert recon.checkpoint_sha256 == loaded.checkpoint_sha256 and len(recon.checkpoint_sha256) == 64
    direct = fakes.direct_reconstruction(inputs / "vol_b.h5", loaded.model)
    np.testing.assert_allclose(recon.reconstruction, direct, rtol=1e-4, atol=1e-9)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["checkpoint_sha256"] == loaded.checkpoint_sha256 and run["config"]["model"] == {"coils": 4}
    assert recon.extra_attrs["model_config"] == '{"coils":4}'


def test_retrospective_undersampling_is_recorded_and_repeatable(tmp_path: Path, inputs: Path) -> None:
    model = load_reconstructor("zero_filled")
    asked = Undersampling("equispaced_fraction", 4.0)
    first = run_batch(model, inputs, _options(tmp_path / "one", undersampling=asked, batch_size=8))
    run_batch(model, inputs, _options(tmp_path / "two", undersampling=asked, batch_size=1, workers=2))
    assert first.reconstructed == 3
    for name in ("vol_a", "vol_b", "vol_c"):
        one, two = (read_reconstruction(tmp_path / d / f"{name}.h5") for d in ("one", "two"))
        # the mask is seeded from the file name: same mask whatever the batching, worker or run
        np.testing.assert_array_equal(one.reconstruction, two.reconstruction)
        assert (one.undersampling, one.mask_type, one.acceleration) == (
            "retrospective",
            "equispaced_fraction",
            4.0,
        )
        assert one.extra_attrs["center_fraction"] == pytest.approx(0.08)
        direct = fakes.direct_reconstruction(inputs / f"{name}.h5", model.model, asked.mask_func())
        np.testing.assert_allclose(one.reconstruction, direct, rtol=1e-4, atol=1e-9)
        full = _rss(inputs / f"{name}.h5", one.shape[1:])
        error = np.linalg.norm(one.zero_filled - full) / np.linalg.norm(full)
        assert 0.02 < error < 0.9  # aliased, but the same object


def test_prospective_input_keeps_its_own_mask(tmp_path: Path) -> None:
    mask = np.zeros(24, bool)
    mask[::3] = True
    mask[10:14] = True
    path = fakes.write_input(tmp_path / "in" / "pros.h5", mask=mask)
    asked = Undersampling("random", 8.0)  # ignored: the data were measured with their own mask
    run_batch(load_reconstructor("zero_filled"), path, _options(tmp_path / "out", undersampling=asked))
    recon = read_reconstruction(tmp_path / "out" / "pros.h5")
    assert (recon.undersampling, recon.mask_type) == ("prospective", "")
    assert recon.acceleration == pytest.approx(24 / mask.sum())
    assert recon.zero_filled is not None
    np.testing.assert_allclose(recon.zero_filled, fakes.rss_volume(path), rtol=1e-4, atol=1e-9)


def test_bad_inputs_are_recorded_and_the_run_goes_on(tmp_path: Path, inputs: Path) -> None:
    (inputs / "vol_corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    fakes.write_input(inputs / "vol_six_coils.h5", coils=6, slices=2)
    nan = fakes.write_input(inputs / "vol_nan.h5", slices=3)
    with h5py.File(nan, "a") as f:
        f["kspace"][1, 0, 0, 0] = np.nan
    ckpt = save_model(
        tmp_path / "m.pt", "fake_learned", fakes.LearnedConfig(4), fakes.FakeLearned(fakes.LearnedConfig(4))
    )
    result = run_batch(load_reconstructor(ckpt), inputs, _options(tmp_path / "out", batch_size=4))
    assert result.reconstructed == 3 and not result.ok
    failed = {Path(f.file).name: f for f in result.failures}
    assert sorted(failed) == ["vol_corrupt.h5", "vol_nan.h5", "vol_six_coils.h5"]
    assert (
        failed["vol_corrupt.h5"].kind == "DataError"
        and "cannot open the file as HDF5" in failed["vol_corrupt.h5"].error
    )
    assert "slice 1 of the k-space holds NaN" in failed["vol_nan.h5"].error
    assert failed["vol_six_coils.h5"].kind == "ModelError"
    assert "cannot take k-space of 6 coil(s)" in failed["vol_six_coils.h5"].error
    rows = read_failures(tmp_path / "out" / "failures.csv")
    assert sorted(Path(r.file).name for r in rows) == sorted(failed) and all(
        "\n" not in r.error for r in rows
    )
    assert sorted(p.name for p in (tmp_path / "out").glob("*.h5")) == ["vol_a.h5", "vol_b.h5", "vol_c.h5"]
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "complete with failures" and run["counts"]["failed"] == 3
    # a restart retries only the failed ones (and they fail again)
    again = run_batch(load_reconstructor(ckpt), inputs, _options(tmp_path / "out"))
    assert (again.skipped, again.reconstructed, len(again.failures)) == (3, 0, 3)


def test_an_image_too_small_for_the_unet_is_a_model_error(tmp_path: Path) -> None:
    # fastMRI's U-Net pools four times: 16 × 16 leaves one pixel, where instance norm fails
    fakes.write_input(tmp_path / "in" / "small.h5", slices=1, size=(16, 16))
    fakes.write_input(tmp_path / "in" / "usual.h5", slices=1, size=(32, 32))
    ckpt = save_model(tmp_path / "unet.pt", "unet", default_config("unet"), build_model("unet"))
    result = run_batch(load_reconstructor(ckpt), tmp_path / "in", _options(tmp_path / "out"))
    assert result.reconstructed == 1 and [Path(f.file).name for f in result.failures] == ["small.h5"]
    failure = result.failures[0]
    assert (
        failure.kind == "ModelError"
        and "pooling layers need images larger than 16 × 16, got 16 × 16" in failure.error
    )
    assert read_reconstruction(tmp_path / "out" / "usual.h5").shape == (1, 32, 32)


def test_resume_skips_finished_volumes_and_exports_missing_dicom(tmp_path: Path, inputs: Path) -> None:
    out = tmp_path / "out"
    model = load_reconstructor("zero_filled")
    run_batch(model, inputs / "vol_a.h5", _options(out))
    before = (out / "vol_a.h5").stat()
    second = run_batch(model, inputs, _options(out))
    assert (second.skipped, second.reconstructed) == (1, 2)
    after = (out / "vol_a.h5").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten
    third = run_batch(model, inputs, _options(out, dicom=True))
    assert (third.skipped, third.reconstructed, third.exported) == (0, 0, 3)  # DICOM from the HDF5
    for name, slices in (("vol_a", 3), ("vol_b", 2), ("vol_c", 4)):
        files = sorted((out / "dicom" / name).iterdir())
        assert [f.name for f in files] == [f"IM_{i:04d}.dcm" for i in range(1, slices + 1)]
        recon = read_reconstruction(out / f"{name}.h5").reconstruction
        ds = pydicom.dcmread(files[-1])
        slope = float(ds.RealWorldValueMappingSequence[0].RealWorldValueSlope)
        np.testing.assert_allclose(ds.pixel_array * slope, recon[-1], atol=slope / 2 + 1e-12)
    fourth = run_batch(model, inputs, _options(out, dicom=True))
    assert (fourth.skipped, fourth.reconstructed, fourth.exported) == (3, 0, 0)
    # a truncated file in a finished series (same count of files) is found and the series redone
    damaged = out / "dicom" / "vol_b" / "IM_0002.dcm"
    intact = damaged.read_bytes()
    damaged.write_bytes(intact[: len(intact) // 2])
    fifth = run_batch(model, inputs, _options(out, dicom=True))
    assert (fifth.skipped, fifth.reconstructed, fifth.exported) == (2, 0, 1)
    assert damaged.read_bytes() == intact


def test_an_input_rewritten_since_its_reconstruction_is_made_again_with_its_series(
    tmp_path: Path, inputs: Path
) -> None:
    """Same name, new content (a scan replaced, a simulation redone): the old outputs would have
    been taken as finished and scored against the new reference."""
    out = tmp_path / "out"
    model = load_reconstructor("zero_filled")
    run_batch(model, inputs, _options(out, dicom=True))
    fakes.write_input(inputs / "vol_b.h5", slices=3, seed=9)  # another scan under vol_b's name (was 2 slices)
    again = run_batch(model, inputs, _options(out, dicom=True))
    assert (again.skipped, again.reconstructed) == (2, 1)
    rss = _rss(inputs / "vol_b.h5", (32, 24))
    zero_filled = read_reconstruction(out / "vol_b.h5").zero_filled  # the new scan's measured data
    assert zero_filled is not None and zero_filled.shape == rss.shape
    np.testing.assert_allclose(zero_filled, rss, rtol=1e-4, atol=1e-6 * rss.max())
    assert len(list((out / "dicom" / "vol_b").glob("IM_*.dcm"))) == 3  # the series replaced with it
    assert run_batch(model, inputs, _options(out, dicom=True)).skipped == 3
    with h5py.File(out / "vol_a.h5", "a") as f:  # an output written before fingerprints: kept as it is
        del f.attrs["input_fingerprint"]
    assert run_batch(model, inputs, _options(out, dicom=True)).skipped == 3


def test_an_input_named_too_long_for_its_outputs_fails_alone(tmp_path: Path, inputs: Path) -> None:
    """``..STEM.series.json.partial`` over 255 bytes stopped the whole run (ENAMETOOLONG)."""
    long = inputs / ("v" * 234 + ".h5")  # the input's own name fits; its series record's would not
    fakes.write_input(long, slices=1, seed=4)
    result = run_batch(load_reconstructor("zero_filled"), inputs, _options(tmp_path / "out", dicom=True))
    assert result.reconstructed == 3 and [Path(f.file).name for f in result.failures] == [long.name]
    assert "too long for its outputs' names (256 bytes" in result.failures[0].error


def test_a_resume_never_keeps_identified_series_when_asked_to_deidentify(
    tmp_path: Path, inputs: Path
) -> None:
    out = tmp_path / "out"
    model = load_reconstructor("zero_filled")
    fakes.write_input(inputs / "vol_a.h5", slices=3, seed=1, patient_id="MRN4711")
    run_batch(model, inputs / "vol_a.h5", _options(out, dicom=True))
    anonymous = _options(out, dicom=True, dicom_options=DicomOptions(deidentify=True, salt="s"))
    with pytest.raises(ConfigError, match=r"holds 3 identified output\(s\) of these inputs"):
        run_batch(model, inputs / "vol_a.h5", anonymous)
    result = run_batch(model, inputs / "vol_a.h5", anonymous.replace(overwrite=True))
    assert result.reconstructed == 1
    assert not (out / "vol_a.h5").exists() and not (out / "dicom" / "vol_a").exists()  # removed
    [series] = [p for p in (out / "dicom").iterdir() if p.is_dir()]
    assert series.name.startswith("ANON")
    for path in [*series.iterdir(), *out.glob("*.h5")]:
        assert b"MRN4711" not in path.read_bytes()
    assert run_batch(model, inputs / "vol_a.h5", anonymous).skipped == 1
    # the other way round: an identified run into the de-identified folder would link the two
    with pytest.raises(ConfigError, match="holds a de-identified run's outputs, and this run is not"):
        run_batch(model, inputs / "vol_a.h5", _options(out, dicom=True))
    assert not (out / "vol_a.h5").exists()
    with pytest.raises(ConfigError, match="--deid-mapping writes the pseudonyms of a de-identified run"):
        _options(tmp_path / "other", deid_mapping=tmp_path / "map.csv")
    with pytest.raises(ConfigError, match="inside the output folder would ship the re-identification key"):
        _options(
            out, dicom=True, dicom_options=anonymous.dicom_options, deid_mapping=out / "keys" / "map.csv"
        )


def test_a_dicom_series_without_its_hdf5_is_redone_with_the_same_uids(tmp_path: Path, inputs: Path) -> None:
    out = tmp_path / "out"
    model = load_reconstructor("zero_filled")
    run_batch(model, inputs / "vol_b.h5", _options(out, dicom=True))
    uids = {p.name: pydicom.dcmread(p).SOPInstanceUID for p in (out / "dicom" / "vol_b").iterdir()}
    (out / "vol_b.h5").unlink()  # as if killed between the series' rename and the HDF5's
    result = run_batch(model, inputs / "vol_b.h5", _options(out, dicom=True))
    assert result.reconstructed == 1 and (out / "vol_b.h5").is_file()
    assert {p.name: pydicom.dcmread(p).SOPInstanceUID for p in (out / "dicom" / "vol_b").iterdir()} == uids


def test_outputs_of_another_model_are_refused_then_replaced_with_overwrite(
    tmp_path: Path, inputs: Path
) -> None:
    out = tmp_path / "out"
    run_batch(load_reconstructor("zero_filled"), inputs / "vol_b.h5", _options(out, dicom=True))
    slow = load_reconstructor("fake_slow")
    with pytest.raises(ConfigError, match="another model"):
        run_batch(slow, inputs / "vol_b.h5", _options(out, dicom=True))
    assert read_reconstruction(out / "vol_b.h5").model == "zero_filled"  # untouched
    result = run_batch(slow, inputs / "vol_b.h5", _options(out, dicom=True, overwrite=True))
    assert result.reconstructed == 1 and read_reconstruction(out / "vol_b.h5").model == "fake_slow"
    series = {pydicom.dcmread(p).SeriesInstanceUID for p in (out / "dicom" / "vol_b").iterdir()}
    assert len(series) == 1  # the other model's series was replaced, not mixed


def test_header_geometry_and_identifiers_reach_hdf5_and_dicom(tmp_path: Path) -> None:
    header = rich_header(matrix=(32, 24))
    geometry = oblique_geometry(slices=3)
    path = fakes.write_input(
        tmp_path / "in" / "scan.h5", patient_id=IDENTIFIERS["patient_id"], header=header, geometry=geometry
    )
    out = tmp_path / "out"
    run_batch(load_reconstructor("zero_filled"), path, _options(out, dicom=True))
    recon = read_reconstruction(out / "scan.h5")
    assert recon.ismrmrd_header == header and recon.patient_id == IDENTIFIERS["patient_id"]
    assert recon.geometry is not None
    np.testing.assert_allclose(recon.geometry.position, geometry.position, atol=1e-5)
    first = pydicom.dcmread(out / "dicom" / "scan" / "IM_0001.dcm")
    assert first.PatientID == IDENTIFIERS["patient_id"] and "synthetic" not in first.SeriesDescription
    np.testing.assert_allclose(
        first.ImageOrientationPatient, [*geometry.phase_dir[0], *geometry.read_dir[0]], atol=1e-6
    )
    anonymous = tmp_path / "anonymous"
    options = _options(anonymous, dicom=True, dicom_options=DicomOptions(deidentify=True, salt="s"))
    run_batch(load_reconstructor("zero_filled"), path, options)
    [series] = [p for p in (anonymous / "dicom").iterdir() if p.is_dir()]
    assert series.name.startswith("ANON") and not list(anonymous.glob("scan*"))
    text = b"".join(p.read_bytes() for p in [*series.iterdir(), *anonymous.glob("*.h5")])
    for value in (
        IDENTIFIERS["patient_id"],
        IDENTIFIERS["patient_name"].split("^")[0],
        IDENTIFIERS["institution"],
    ):
        assert value.encode() not in text


def test_infer_redoes_everything_and_raises_failures(tmp_path: Path, inputs: Path) -> None:
    out = tmp_path / "out"
    model = load_reconstructor("zero_filled")
    run_inference(model, inputs / "vol_a.h5", _options(out))
    first = (out / "vol_a.h5").stat().st_mtime_ns
    run_inference(model, inputs / "vol_a.h5", _options(out))
    assert (out / "vol_a.h5").stat().st_mtime_ns != first  # infer reconstructs again
    assert not (out / "run.json").exists() and not (out / "failures.csv").exists()
    fakes.write_input(inputs / "vol_six.h5", coils=6)
    ckpt = save_model(
        tmp_path / "m.pt", "fake_learned", fakes.LearnedConfig(4), fakes.FakeLearned(fakes.LearnedConfig(4))
    )
    with pytest.raises(ModelError, match="cannot take k-space of 6 coil"):
        run_inference(load_reconstructor(ckpt), inputs / "vol_six.h5", _options(out))
    with pytest.raises(DataError, match=r"1 of 4 inputs failed; the first: .*vol_six\.h5"):
        run_inference(load_reconstructor(ckpt), inputs, _options(out))
    assert (out / "vol_c.h5").is_file()  # the others were written


def test_options_are_checked_before_anything_runs(tmp_path: Path) -> None:
    for kwargs, match in [
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"coil_maps": "walsh"}, "unknown coil-map method 'walsh'"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"precision": "16-mixed"}, "unknown precision .16-mixed."),
    ]:
        with pytest.raises(ConfigError, match=match):
            RunOptions(output_dir=tmp_path, **cast(dict[str, Any], kwargs))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device here"):
            RunOptions(output_dir=tmp_path, device="cuda")


def test_bf16_mixed_is_refused_on_a_gpu_before_ampere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.cuda.is_bf16_supported() is True on a V100 or T4 (emulated, slow): the compute
    capability decides, of the GPU --device names."""
    from mrirecon.inference import options as module

    options = _options(tmp_path, precision="bf16-mixed")
    monkeypatch.setattr(module, "resolve_device", lambda device, devices: ("gpu", [1]))
    asked: list[int] = []

    def capability(index: int) -> tuple[int, int]:
        asked.append(index)
        return (7, 0)

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    with pytest.raises(ConfigError, match="this GPU has no bfloat16 arithmetic"):
        options.check_precision("cirim", learned=True)
    assert asked == [1]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index: (8, 0))
    options.check_precision("cirim", learned=True)  # Ampere and later: accepted


def test_a_model_without_the_coil_maps_it_needs_says_so(tmp_path: Path, inputs: Path) -> None:
    from mrirecon.models.rim import CIRIMConfig

    config = CIRIMConfig(cascades=1, time_steps=1, channels=4)
    ckpt = save_model(tmp_path / "cirim.pt", "cirim", config, build_model("cirim", config))
    result = run_batch(
        load_reconstructor(ckpt), inputs / "vol_a.h5", _options(tmp_path / "out", coil_maps="none")
    )
    [failure] = result.failures
    assert failure.kind == "ModelError" and "needs coil maps" in failure.error
    assert "run without --coil-maps none" in failure.error
    assert "coil count" not in failure.error


def test_bf16_mixed_runs_the_convolutions_in_bfloat16_and_is_recorded(
    tmp_path: Path, inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mrirecon.models.rim import CIRIMConfig

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})  # any CPU runs it
    config = CIRIMConfig(cascades=2, time_steps=2, channels=8)
    torch.manual_seed(0)
    loaded = load_reconstructor(save_model(tmp_path / "m.pt", "cirim", config, build_model("cirim", config)))
    full, half = tmp_path / "full", tmp_path / "half"
    run_batch(loaded, inputs / "vol_b.h5", _options(full))
    run_batch(loaded, inputs / "vol_b.h5", _options(half, precision="bf16-mixed"))
    a, b = read_reconstruction(full / "vol_b.h5"), read_reconstruction(half / "vol_b.h5")
    assert (a.extra_attrs["precision"], b.extra_attrs["precision"]) == ("32", "bf16-mixed")
    assert json.loads((half / "run.json").read_text())["config"]["run"]["precision"] == "bf16-mixed"
    difference = float(np.abs(a.reconstruction - b.reconstruction).max() / a.reconstruction.max())
    assert 1e-5 < difference < 0.02  # bfloat16's rounding in the CNN, the same image
    # a resumed run at the other precision does not take these outputs for its own
    with pytest.raises(ConfigError, match="precision"):
        run_batch(loaded, inputs / "vol_b.h5", _options(full, precision="bf16-mixed"))
    with pytest.raises(ConfigError, match="zero_filled is a classical method and runs in float32"):
        run_batch(load_reconstructor("zero_filled"), inputs, _options(tmp_path / "z", precision="bf16-mixed"))
    assert not (tmp_path / "z").exists()
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_f": True, "avx2": True})
    with pytest.warns(Notice, match="without bfloat16 instructions .* is slower than float32"):
        run_batch(loaded, inputs / "vol_b.h5", _options(tmp_path / "slow", precision="bf16-mixed"))


def _first_slice(folder: Path) -> pydicom.Dataset:
    return pydicom.dcmread(folder / "IM_0001.dcm")


def _study_uids(ds: pydicom.Dataset) -> tuple[str, str, str]:
    return ds.PatientID, ds.StudyInstanceUID, ds.FrameOfReferenceUID


def test_a_deidentified_volume_without_slice_positions_records_no_frame_of_reference(tmp_path: Path) -> None:
    """Without positions the series gets a frame of reference of its own (synthetic planes share no
    space with another series): the HDF5 recorded one the series did not have."""
    fakes.write_input(tmp_path / "in" / "scan.h5", seed=1)
    deid = DicomOptions(deidentify=True, salt="s")
    run_batch(
        load_reconstructor("zero_filled"),
        tmp_path / "in",
        _options(tmp_path / "out", dicom=True, dicom_options=deid),
    )
    (path,) = (tmp_path / "out").glob("*.h5")
    recon = read_reconstruction(path)
    (folder,) = (p for p in (tmp_path / "out" / "dicom").iterdir() if p.is_dir())
    assert "frame_of_reference_uid" not in recon.extra_attrs
    assert recon.extra_attrs["study_instance_uid"] == _first_slice(folder).StudyInstanceUID


def test_deidentified_series_of_one_study_share_its_uids_however_they_are_exported(tmp_path: Path) -> None:
    # two series of one study: the same header (study and frame-of-reference UIDs), two input files
    inputs, header, geometry = tmp_path / "in", rich_header(matrix=(32, 24)), oblique_geometry(slices=3)
    for name, seed in (("DOE_t1.h5", 1), ("DOE_t2.h5", 2)):
        fakes.write_input(inputs / name, seed=seed, header=header, geometry=geometry)
    with h5py.File(inputs / "DOE_t1.h5", "a") as f:  # as the ISMRMRD reader serves it: the protocol name
        f.attrs["acquisition"] = IDENTIFIERS["protocol"]
    model, deid = load_reconstructor("zero_filled"), DicomOptions(deidentify=True, salt="s")
    anonymous = tmp_path / "anonymous"
    run_batch(model, inputs, _options(anonymous, dicom=True, dicom_options=deid))
    folders = sorted(p for p in (anonymous / "dicom").iterdir() if p.is_dir())
    first, second = (_first_slice(folder) for folder in folders)
    assert _study_uids(first) == _study_uids(second)
    assert first.SeriesInstanceUID != second.SeriesInstanceUID
    assert (
        first.StudyInstanceUID != IDENTIFIERS["study_uid"]
        and first.FrameOfReferenceUID != IDENTIFIERS["frame_uid"]
    )
    # the HDF5 records them (the header lost the originals) and keeps no protocol name
    for path in anonymous.glob("*.h5"):
        recon = read_reconstruction(path)
        assert recon.extra_attrs["study_instance_uid"] == first.StudyInstanceUID
        assert recon.extra_attrs["frame_of_reference_uid"] == first.FrameOfReferenceUID
        assert recon.acquisition in ("", "AXT2") and IDENTIFIERS["protocol"].encode() not in path.read_bytes()
    # export-dicom --deidentify of the identified reconstructions gives the same patient, study and frame
    identified = tmp_path / "identified"
    run_batch(model, inputs, _options(identified))
    for name in ("DOE_t1", "DOE_t2"):
        export_dicom(identified / f"{name}.h5", tmp_path / "exported" / name, deid)
        assert _study_uids(_first_slice(tmp_path / "exported" / name)) == _study_uids(first)
    # a resumed run exporting a lost series again from the de-identified HDF5 writes the same UIDs
    before = [pydicom.dcmread(p) for p in sorted(folders[0].iterdir())]
    shutil.rmtree(folders[0])
    again = run_batch(model, inputs, _options(anonymous, dicom=True, dicom_options=deid))
    assert (again.exported, again.reconstructed) == (1, 0)
    after = [pydicom.dcmread(p) for p in sorted(folders[0].iterdir())]
    assert [(*_study_uids(d), d.SOPInstanceUID) for d in after] == [
        (*_study_uids(d), d.SOPInstanceUID) for d in before
    ]


def test_an_odd_crop_of_an_even_grid_is_placed_where_the_crop_left_the_fov_centre(tmp_path: Path) -> None:
    # a bright point at the centre of the field of view: pixel (H//2, W//2) of the 32 x 24 image;
    # the reconstruction is fastMRI's centre crop to 31 x 23, which leaves it at (16, 12), not (15, 11)
    size, crop = (32, 24), (31, 23)
    kspace = fakes.phantom_kspace(2, 4, size, seed=0)
    images = ifft2c(torch.from_numpy(kspace))
    images[..., size[0] // 2, size[1] // 2] += 20 * images.abs().max()
    header = build_ismrmrd_header(
        encoded_matrix=(*size, 1), recon_matrix=(*crop, 1), encoded_fov_mm=(64.0, 48.0, 5.0)
    )
    geometry = oblique_geometry(slices=2)
    arrays = {n: getattr(geometry, n) for n in ("position", "read_dir", "phase_dir", "slice_dir")}
    path = write_volume(
        tmp_path / "in" / "odd.h5", kspace=fft2c(images).numpy(), header_xml=header, geometry=arrays
    )
    run_batch(load_reconstructor("zero_filled"), path, _options(tmp_path / "out", dicom=True))
    recon = read_reconstruction(tmp_path / "out" / "odd.h5")
    assert recon.shape == (2, *crop) and recon.zero_filled is not None
    for s in range(2):
        peak = np.unravel_index(np.argmax(recon.zero_filled[s]), crop)
        assert peak == (16, 12)
        ds = pydicom.dcmread(tmp_path / "out" / "dicom" / "odd" / f"IM_{s + 1:04d}.dcm")
        dr, dc = (float(v) for v in ds.PixelSpacing)
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        np.testing.assert_allclose(
            ipp + peak[1] * dc * iop[:3] + peak[0] * dr * iop[3:], geometry.position[s], atol=1e-4
        )


def test_a_malformed_geometry_attribute_fails_that_input_only(tmp_path: Path, inputs: Path) -> None:
    bad = fakes.write_input(inputs / "vol_geometry.h5", slices=2, geometry=oblique_geometry(slices=2))
    with h5py.File(bad, "a") as f:
        f["geometry"].attrs["slice_thickness_mm"] = np.complex128(2 + 1j)
    result = run_batch(load_reconstructor("zero_filled"), inputs, _options(tmp_path / "out", dicom=True))
    assert result.reconstructed == 3
    [failure] = result.failures
    assert Path(failure.file).name == "vol_geometry.h5" and failure.kind == "DataError"
    assert "slice_thickness_mm" in failure.error


def test_nul_text_and_empty_datasets_fail_their_input_only(tmp_path: Path, inputs: Path) -> None:
    """A NUL inside ``patient_id`` ended the HDF5 write with a ValueError, and a null-dataspace
    mask a TypeError: both aborted the whole run as internal errors."""
    nul = fakes.write_input(inputs / "vol_nul.h5", slices=2)
    with h5py.File(nul, "a") as f:
        f.attrs.create("patient_id", np.bytes_(b"PAT\x00ID"))
    padded = fakes.write_input(inputs / "vol_padded.h5", slices=2)
    with h5py.File(padded, "a") as f:  # a fixed-length C string's padding: kept, without the NULs
        f.attrs.create("patient_id", np.bytes_(b"PATID\x00\x00"))
    empty = fakes.write_input(inputs / "vol_empty.h5", slices=2)
    with h5py.File(empty, "a") as f:
        f.create_dataset("mask", data=h5py.Empty("<f4"))
    out = tmp_path / "out"
    result = run_batch(load_reconstructor("zero_filled"), inputs, _options(out, dicom=True))
    assert result.reconstructed == 4
    errors = {Path(failure.file).name: (failure.kind, failure.error) for failure in result.failures}
    assert set(errors) == {"vol_nul.h5", "vol_empty.h5"}
    assert errors["vol_nul.h5"][0] == "DataError"
    assert "'patient_id' attribute holds a NUL" in errors["vol_nul.h5"][1]
    assert errors["vol_empty.h5"][0] == "DataError" and "'mask' holds no values" in errors["vol_empty.h5"][1]
    with h5py.File(out / "vol_padded.h5") as f:
        assert f.attrs["patient_id"] == "PATID"


def _write_ismrmrd_3d(path: Path, coils: int = 3, size: tuple[int, int, int] = (16, 12, 8)) -> None:
    """A 3-D Cartesian ISMRMRD acquisition, fully sampled, with slab geometry."""
    import ismrmrd

    x, y, z = size
    xx, yy, zz = np.meshgrid(*(np.arange(n) for n in size), indexing="ij")
    blob = np.exp(-((xx - 7) ** 2 / 10 + (yy - 5) ** 2 / 6 + (zz - 3) ** 2 / 4)) + 0.01  # off-centre:
    image = blob.astype(np.complex64)  # no sample of its k-space is exactly zero
    phases = np.exp(1j * np.linspace(0.1, 2, coils)).astype(np.complex64)
    kspace = fftnc(torch.from_numpy(phases[:, None, None, None] * image[None]), 3).numpy()
    xml = build_ismrmrd_header(encoded_matrix=size, patient_id="P3D")
    xml = rewrite_encoding(
        xml,
        encoded_matrix=size,
        encoded_fov_mm=(2.0 * x, 2.0 * y, 2.0 * z),
        recon_matrix=size,
        recon_fov_mm=(2.0 * x, 2.0 * y, 2.0 * z),
        e1_limits=EncodingLimits(0, y - 1, y // 2),
        e2_limits=EncodingLimits(0, z - 1, z // 2),
    )
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    dataset.write_xml_header(xml)
    for e1 in range(y):
        for e2 in range(z):
            acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(kspace[:, :, e1, e2]))
            acq.idx.kspace_encode_step_1, acq.idx.kspace_encode_step_2 = e1, e2
            acq.center_sample = x // 2
            acq.position[:] = (0.0, 0.0, 10.0)
            acq.read_dir[:], acq.phase_dir[:], acq.slice_dir[:] = (0, 1, 0), (1, 0, 0), (0, 0, -1)
            dataset.append_acquisition(acq)
    dataset.close()


def test_a_3d_ismrmrd_acquisition_is_exported_as_3d(tmp_path: Path) -> None:
    path = tmp_path / "in" / "raw3d.h5"
    path.parent.mkdir()
    _write_ismrmrd_3d(path)
    out = tmp_path / "out"
    result = run_batch(load_reconstructor("zero_filled"), path, _options(out, dicom=True))
    assert result.ok and result.reconstructed == 1, result.failures
    files = sorted((out / "dicom" / "raw3d").glob("IM_*.dcm"))
    assert len(files) == 16 and {pydicom.dcmread(p).MRAcquisitionType for p in files} == {"3D"}
    recon = read_reconstruction(out / "raw3d.h5")
    assert recon.extra_attrs["mrirecon_decoupled_3d"] is True
    # and exported later from the HDF5
    assert export_dicom(out / "raw3d.h5", tmp_path / "again").files
    assert pydicom.dcmread(tmp_path / "again" / "IM_0001.dcm").MRAcquisitionType == "3D"


def test_several_nodes_need_a_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without srun or torchrun a multi-node run waited for machines that never came."""
    for name in ("SLURM_NTASKS", "WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="--num-nodes 2 needs a launcher"):
        _options(tmp_path / "out", num_nodes=2)
    monkeypatch.setenv("SLURM_NTASKS", "2")
    assert _options(tmp_path / "out", num_nodes=2).num_nodes == 2


def test_a_missing_input_leaves_no_output_folder_and_an_unknown_split_names_the_splits(
    tmp_path: Path, inputs: Path
) -> None:
    from mrirecon.data.manifest import build_manifest
    from mrirecon.errors import DataError

    model = load_reconstructor("zero_filled")
    with pytest.raises(DataError, match="no such input file, folder or manifest"):
        run_batch(model, tmp_path / "nowhere", _options(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    manifest = tmp_path / "m.csv"
    build_manifest(sorted(inputs.glob("*.h5")), manifest, fractions=(1, 0, 0), progress=False)
    with pytest.raises(DataError, match="no entry of split 'tset'") as error:
        run_batch(model, manifest, _options(tmp_path / "out2", split="tset"))
    assert error.value.hint == "its splits: train"


def test_workers_prefetch_fewer_batches_when_batches_are_large(
    tmp_path: Path, inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mrirecon.inference import lightning

    made: list[int | None] = []

    class Recording(lightning.DataLoader):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append(kwargs.get("prefetch_factor"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(lightning, "DataLoader", Recording)
    zero_filled = load_reconstructor("zero_filled")
    run_batch(zero_filled, inputs, _options(tmp_path / "small", workers=1, batch_size=2))
    assert made and set(made) == {4}  # small batches: 4 ahead (Lightning may ask for the loader twice)
    made.clear()
    monkeypatch.setattr(lightning, "PREFETCH_BYTES", 1)  # every batch is "large"
    result = run_batch(zero_filled, inputs, _options(tmp_path / "large", workers=1, batch_size=2))
    assert made and set(made) == {1} and result.reconstructed == 3 and not result.failures


def test_each_volume_read_whole_is_opened_by_one_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """NumPy inputs are read whole in a batch run (as ISMRMRD raw files are converted): each goes to
    one DataLoader worker, which opens it once, instead of every worker reading every input; the
    last volume is shared by the two workers. Outputs equal those of a run without workers."""
    import os

    from mrirecon.inference import components

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        np.save(folder / f"scan{i}.npy", fakes.phantom_kspace(4, 2, (16, 12), seed=i))
    log = tmp_path / "opens.log"
    original = components.open_input

    def counted(path: Any, **kwargs: Any) -> Any:
        if os.getpid() != main:  # DataLoader workers are forked: they write here too
            with log.open("a") as handle:
                handle.write(f"{Path(path).name}\n")
        return original(path, **kwargs)

    main = os.getpid()
    monkeypatch.setattr(components, "open_input", counted)
    zero_filled = load_reconstructor("zero_filled")
    axes = "slices,coils,kx,ky"
    two = _options(tmp_path / "two", workers=2, batch_size=1, npy_axes=axes)
    result = run_batch(zero_filled, folder, two)
    assert result.reconstructed == 3 and not result.failures
    opens = log.read_text().split()
    assert sorted(opens) == ["scan0.npy", "scan1.npy", "scan2.npy", "scan2.npy"]  # round robin: 6
    run_batch(zero_filled, folder, _options(tmp_path / "none", batch_size=1, npy_axes=axes))
    for i in range(3):
        np.testing.assert_array_equal(
            read_reconstruction(tmp_path / "two" / f"scan{i}.h5").reconstruction,
            read_reconstruction(tmp_path / "none" / f"scan{i}.h5").reconstruction,
        )


def test_written_volumes_are_not_kept_while_the_run_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The writer kept every finished volume (its images) until the run ended: a long run's memory grew
    by each volume's size (29 MB per knee volume). Once written, a volume is freed."""
    import gc
    import weakref

    from mrirecon.inference import writer

    folder = tmp_path / "in"
    for i in range(8):
        fakes.write_input(folder / f"v{i}.h5", slices=2, seed=i)
    written: list[weakref.ref[Any]] = []
    alive: list[int] = []
    original = writer.write_volume

    def write(volume: Any, settings: Any) -> Any:
        gc.collect()
        alive.append(sum(ref() is not None for ref in written))  # earlier volumes still held
        written.append(weakref.ref(volume))
        return original(volume, settings)

    monkeypatch.setattr(writer, "write_volume", write)
    result = run_batch(load_reconstructor("zero_filled"), folder, _options(tmp_path / "out", batch_size=1))
    assert result.reconstructed == 8 and len(alive) == 8
    assert max(alive) <= 1, alive  # the one just written, at most (it was 0, 1, 2, ..., 7)


def test_a_name_in_another_encoding_fails_that_input_only(tmp_path: Path) -> None:
    """A Latin-1 name (an SMB share) decodes to surrogates no UTF-8 writer takes: the run crashed as a
    bug at that file, again on every rerun. It is one failure, named with its bytes as \\xNN (by its
    pseudonym when de-identifying), and the other inputs are reconstructed."""
    import os

    from mrirecon.data.manifest import create_manifest
    from mrirecon.errors import path_text

    folder = tmp_path / "in"
    fakes.write_input(folder / "good.h5", slices=2)
    odd = Path(os.fsdecode(os.fsencode(folder) + b"/M\xfcller.h5"))
    fakes.write_input(odd, slices=2, seed=1)
    model = load_reconstructor("zero_filled")
    result = run_batch(model, folder, _options(tmp_path / "out", dicom=True))
    assert (result.inputs, result.reconstructed) == (2, 1)
    (failure,) = result.failures
    assert failure.file == path_text(odd) and failure.file.endswith("M\\xfcller.h5")
    assert "not valid UTF-8" in failure.error and "rename it" in failure.error
    assert "M\\xfcller.h5" in (tmp_path / "out" / "failures.csv").read_text(encoding="utf-8")
    deid = DicomOptions(deidentify=True, salt="s")
    hidden = run_batch(model, folder, _options(tmp_path / "anon", dicom=True, dicom_options=deid))
    (failure,) = hidden.failures
    assert failure.file.startswith("ANON") and "ller" not in failure.error
    with pytest.raises(DataError, match=r"M\\xfcller.h5: the file name is not valid UTF-8"):
        run_inference(model, odd, _options(tmp_path / "one"))
    entries, bad = create_manifest(folder, tmp_path / "m.csv", skip_bad=True, progress=False)
    assert [e.path.name for e in entries] == ["good.h5"] and [p for p, _ in bad] == [odd]


def test_a_bug_while_writing_the_last_volume_leaves_a_crash_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The last volumes are written after the predict loop, where a bug left no crash record."""
    from mrirecon.inference import writer

    def broken(volume: Any, settings: Any) -> None:
        raise RuntimeError("a bug in the writer")

    folder = tmp_path / "in"
    fakes.write_input(folder / "only.h5", slices=1)
    monkeypatch.setattr(writer, "write_volume", broken)
    with pytest.raises(RuntimeError, match="a bug in the writer"):
        run_batch(load_reconstructor("zero_filled"), folder, _options(tmp_path / "out"))
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["status"] == "crashed" and "a bug in the writer" in json.dumps(record)


def test_a_frame_of_a_multi_set_raw_file_is_chosen_and_recorded(tmp_path: Path) -> None:
    """ISMRMRD raw files with several sets (echoes, repetitions, phases) could only be reconstructed
    frame by frame through `mrirecon convert --frame`: infer and batch take --frame; the outputs record
    it, and a run of another frame into the same folder is not taken as finished."""
    import ismrmrd

    from mrirecon.data.ismrmrd_raw import Frame
    from tests.data.helpers import disc_image, rewrite_acquisitions, smooth_maps, write_ismrmrd

    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "raw.h5"
    write_ismrmrd(
        path, smooth_maps(2, 32, 24) * disc_image(1, 32, 24)[0][None], lines=np.arange(24), e1_center=12
    )

    def two_sets(readouts: list[ismrmrd.Acquisition]) -> list[ismrmrd.Acquisition]:
        copies = []
        for frame_set, factor in ((0, 1.0), (1, 2.0)):  # set 1: the same object, twice as bright
            for acq in readouts:
                copy = ismrmrd.Acquisition.from_array(acq.data * np.complex64(factor))
                copy.setHead(acq.getHead())
                copy.idx.set = frame_set
                copies.append(copy)
        return copies

    rewrite_acquisitions(path, two_sets)
    model = load_reconstructor("zero_filled")
    with pytest.warns(UserWarning, match="belong to other frames"):
        run_inference(model, path, _options(tmp_path / "first"))
    second = run_inference(model, path, _options(tmp_path / "second", frame=Frame(set=1)))
    assert second.reconstructed == 1
    first = read_reconstruction(tmp_path / "first" / "raw.h5")
    chosen = read_reconstruction(tmp_path / "second" / "raw.h5")
    np.testing.assert_allclose(chosen.reconstruction, 2 * first.reconstruction, rtol=1e-4)
    assert chosen.extra_attrs["frame"] == "contrast 0, repetition 0, phase 0, set 1"
    assert "frame" not in first.extra_attrs
    with pytest.raises(ConfigError, match="another model"):  # set 0's outputs are not set 1's
        run_batch(model, folder, _options(tmp_path / "first", frame=Frame(set=1)))
    # the DICOM series say which frame they are (and are other series)
    dicom = _options(tmp_path / "d1", dicom=True, frame=Frame(set=1))
    run_inference(model, path, dicom)
    series = pydicom.dcmread(next((tmp_path / "d1" / "dicom" / "raw").glob("*.dcm")))
    assert series.SeriesDescription.startswith("TESTRAW (set 1): zero_filled recon")
    assert "ISMRMRD frame: set 1." in series.DerivationDescription
    # other inputs hold one frame: --frame does not apply to them, is said, and is not recorded
    np.save(folder / "other.npy", fakes.phantom_kspace(2, 2, (16, 12), seed=3))
    with pytest.warns(UserWarning, match="1 input.s. of other formats hold one frame"):
        run_batch(
            model, folder, _options(tmp_path / "mixed", frame=Frame(set=1), npy_axes="slices,coils,kx,ky")
        )
    assert "frame" not in read_reconstruction(tmp_path / "mixed" / "other.h5").extra_attrs
    assert read_reconstruction(tmp_path / "mixed" / "raw.h5").extra_attrs["frame"].endswith("set 1")
    again = run_batch(
        model, folder, _options(tmp_path / "mixed", npy_axes="slices,coils,kx,ky", overwrite=True)
    )
    assert again.reconstructed == 1 and again.skipped == 1  # the raw file's frame differs; the array's not


def test_a_run_stopped_before_its_loop_is_recorded_as_interrupted(
    tmp_path: Path, inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM while Lightning was imported (seconds, after run.json said "running") left
    "running": the record of a run killed with SIGKILL."""
    from mrirecon.inference import batch
    from mrirecon.runtime import Terminated

    def stopped(*_args: object) -> None:
        raise Terminated()

    monkeypatch.setattr(batch, "_run_started", stopped)
    out = tmp_path / "out"
    with pytest.raises(Terminated):
        run_batch(load_reconstructor("zero_filled"), inputs, _options(out))
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted" and "counts_so_far" not in record
