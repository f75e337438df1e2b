"""Planning: inputs, outputs, resume states, sharding over ranks, undersampling records."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

import h5py
import numpy as np
import pytest

from mrirecon.errors import ConfigError, DataError, Notice
from mrirecon.export.series_record import write_record
from mrirecon.inference.inputs import list_inputs, output_paths
from mrirecon.inference.plan import EXPORT, RECONSTRUCT, VolumeTask, dicom_complete, make_plan, shard
from mrirecon.inference.undersampling import Undersampling, VolumeSampling

pytestmark = pytest.mark.usefixtures("installed")
SHA = "ab" * 32


def _plan(folder: Path, out: Path, **kwargs):
    inputs = list_inputs(folder)
    defaults = {"model": "m", "checkpoint_sha256": SHA, "undersampling": Undersampling(), "dicom": False}
    return make_plan(inputs, output_paths(inputs, out), **{**defaults, **kwargs})


def _finish(out: Path, name: str, slices: int, **attrs) -> None:
    """A finished reconstruction as a run with model m would leave it."""
    out.mkdir(parents=True, exist_ok=True)
    with h5py.File(out / name, "w") as f:
        f["reconstruction"] = np.zeros((slices, 4, 4), np.float32)
        for key, value in {"model": "m", "checkpoint_sha256": SHA, "undersampling": "none", **attrs}.items():
            f.attrs[key] = value


def test_inputs_of_a_folder_skip_dot_files_and_other_types(tmp_path: Path, inputs: Path) -> None:
    (inputs / ".vol_d.h5.partial").write_bytes(b"x")
    (inputs / "notes.txt").write_text("x")
    (inputs / "scan.npy").write_bytes(b"x")
    assert [p.name for p in list_inputs(inputs)] == ["scan.npy", "vol_a.h5", "vol_b.h5", "vol_c.h5"]
    assert list_inputs(inputs / "vol_a.h5") == [inputs / "vol_a.h5"]
    (inputs / "bart.hdr").write_text("# Dimensions\n4 4 1\n")
    (inputs / "bart.cfl").write_bytes(b"x")
    assert list_inputs(inputs / "bart.hdr") == [inputs / "bart.cfl"]  # a BART array by its header
    with pytest.raises(DataError, match=r"unsupported input type '\.txt'"):
        list_inputs(inputs / "notes.txt")
    with pytest.raises(DataError, match="no such input"):
        list_inputs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no input volumes found") as caught:
        list_inputs(tmp_path / "empty")
    assert "subfolders" not in str(caught.value)
    (tmp_path / "empty" / "scans").mkdir()  # the volumes one level down: said so
    with pytest.raises(DataError, match=r"no input volumes found.*its subfolders are not searched"):
        list_inputs(tmp_path / "empty")
    (inputs / ".hidden.h5").write_bytes((inputs / "vol_a.h5").read_bytes())
    with pytest.raises(DataError, match=r"starting with a dot are hidden files.*rename it to hidden\.h5"):
        list_inputs(inputs / ".hidden.h5")
    with pytest.raises(DataError, match="split can only be chosen from a manifest"):
        list_inputs(inputs, split="test")


def test_two_inputs_with_one_output_name_are_refused(tmp_path: Path) -> None:
    paths = [tmp_path / "a" / "file1.h5", tmp_path / "b" / "file1.h5"]
    with pytest.raises(ConfigError, match=r"same output 'file1\.h5'"):
        output_paths(paths, tmp_path / "out")
    with pytest.raises(ConfigError, match="output folder is the folder of the inputs"):
        output_paths([tmp_path / "in" / "file1.h5"], tmp_path / "in" / ".")
    out = output_paths([tmp_path / "scan.npy"], tmp_path / "out")[0]
    assert (out.recon, out.dicom) == (tmp_path / "out" / "scan.h5", tmp_path / "out" / "dicom" / "scan")


def test_a_fresh_plan_reconstructs_everything_and_clears_leftovers(tmp_path: Path, inputs: Path) -> None:
    out = tmp_path / "out"
    (out / "dicom" / ".vol_a.partial").mkdir(parents=True)
    (out / "dicom" / ".vol_a.partial" / "IM_0001.dcm").write_bytes(b"x")
    (out / ".vol_b.h5.partial").write_bytes(b"x")
    (out / ".other.h5.partial").write_bytes(b"x")  # not an output of this run: left alone
    plan = _plan(inputs, out)
    assert sorted(p.name for p in out.rglob("*")) == [".other.h5.partial", "dicom"]
    assert [t.input_path.name for t in plan.tasks] == ["vol_a.h5", "vol_b.h5", "vol_c.h5"]
    assert [t.num_slices for t in plan.tasks] == [3, 2, 4] and plan.slices_to_reconstruct == 9
    assert plan.tasks[1].crop_size == (28, 20) and plan.tasks[0].kspace_shape == (4, 32, 24)
    assert all(t.action == RECONSTRUCT and t.sampling == VolumeSampling("none") for t in plan.tasks)


def test_resume_skips_finished_exports_missing_dicom_and_refuses_foreign_outputs(
    tmp_path: Path, inputs: Path
) -> None:
    out = tmp_path / "out"
    _finish(out, "vol_a.h5", 3)
    _finish(out, "vol_b.h5", 2)
    series = out / "dicom" / "vol_a"
    series.mkdir(parents=True)
    for i in (1, 2, 3):
        (series / f"IM_{i:04d}.dcm").write_bytes(b"x")
    # the files alone are not a finished series: their record (sizes, sha256) is
    assert [t.action for t in _plan(inputs, out, dicom=True).tasks][:1] == [EXPORT]
    write_record(series, sorted(series.glob("*.dcm")))
    plan = _plan(inputs, out, dicom=True)
    assert [p.name for p in plan.finished] == ["vol_a.h5"]
    actions = [(t.input_path.name, t.action) for t in plan.tasks]
    assert actions == [("vol_b.h5", EXPORT), ("vol_c.h5", RECONSTRUCT)]
    # without --dicom both are finished; with a fresh start (infer) nothing is
    assert len(_plan(inputs, out).finished) == 2
    assert len(_plan(inputs, out, resume=False).tasks) == 3
    # an output of another checkpoint is in the way: refused, unless --overwrite
    _finish(out, "vol_c.h5", 4, checkpoint_sha256="cd" * 32)
    with pytest.raises(ConfigError, match=r"1 output\(s\) .* another model.*vol_c.h5.*--overwrite"):
        _plan(inputs, out)
    assert [t.input_path.name for t in _plan(inputs, out, overwrite=True).tasks] == ["vol_c.h5"]


def _series_made_by(folder: Path, made_by: str) -> None:
    """A one-file DICOM series whose DerivationDescription names the model that made it."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.DerivationDescription = (
        f"For research use. Reconstructed by mrirecon 1.0 with model {made_by}. Geometry."
    )
    ds.save_as(folder / "IM_0001.dcm", enforce_file_format=True)


def test_a_dicom_series_of_another_model_without_its_hdf5_is_refused_up_front(
    tmp_path: Path, inputs: Path
) -> None:
    out = tmp_path / "out"
    _series_made_by(out / "dicom" / "vol_b", f"m (checkpoint sha256 {SHA})")  # this run's: a killed run
    assert [t.input_path.name for t in _plan(inputs, out, dicom=True).tasks] == [
        "vol_a.h5",
        "vol_b.h5",
        "vol_c.h5",
    ]
    _series_made_by(out / "dicom" / "vol_c", f"m (checkpoint sha256 {'cd' * 32})")
    with pytest.raises(ConfigError, match=r"1 output\(s\) .* another model.*\(vol_c\).*--overwrite"):
        _plan(inputs, out, dicom=True)
    _series_made_by(out / "dicom" / "vol_c", "zero_filled")
    with pytest.raises(ConfigError, match="another model"):
        _plan(inputs, out, dicom=True, resume=False)
    assert len(_plan(inputs, out, dicom=True, overwrite=True).tasks) == 3
    assert len(_plan(inputs, out).tasks) == 3  # without --dicom the series is not this run's concern


@pytest.mark.parametrize(
    "attrs",
    [
        {"model": "other"},
        {"model_config": '{"lambda":0.1}'},
        {"undersampling": "retrospective", "mask_type": "random", "acceleration": 4.0},
    ],
)
def test_outputs_of_other_settings_are_not_finished(tmp_path: Path, inputs: Path, attrs) -> None:
    _finish(tmp_path / "out", "vol_a.h5", 3, **attrs)
    with pytest.raises(ConfigError, match="another model"):
        _plan(inputs, tmp_path / "out")


def test_outputs_of_other_coil_maps_or_centre_fraction_are_not_finished(tmp_path: Path, inputs: Path) -> None:
    out = tmp_path / "out"
    lines = Undersampling("equispaced_fraction", 4.0, 0.08)
    sampled = {"undersampling": "retrospective", "mask_type": "equispaced_fraction", "acceleration": 4.0}
    _finish(out, "vol_a.h5", 3, coil_maps="acs", center_fraction=0.08, **sampled)
    assert [p.name for p in _plan(inputs, out, undersampling=lines, coil_maps="acs").finished] == ["vol_a.h5"]
    with pytest.raises(ConfigError, match="another model"):  # ESPIRiT maps asked for
        _plan(inputs, out, undersampling=lines, coil_maps="espirit")
    with pytest.raises(ConfigError, match="another model"):  # another fully sampled centre
        _plan(inputs, out, undersampling=Undersampling("equispaced_fraction", 4.0, 0.1), coil_maps="acs")
    with pytest.raises(ConfigError, match="another model"):  # the same mask at another acceleration
        _plan(inputs, out, undersampling=Undersampling("equispaced_fraction", 8.0, 0.08), coil_maps="acs")


def test_wrong_slice_counts_are_foreign_unreadable_outputs_redone(tmp_path: Path, inputs: Path) -> None:
    out = tmp_path / "out"
    _finish(out, "vol_a.h5", 2)  # vol_a has 3 slices: not this run's output
    (out / "vol_b.h5").write_bytes(b"garbage")  # cannot be read: redone, replaced atomically
    with pytest.raises(ConfigError):
        _plan(inputs, out)
    (out / "vol_a.h5").unlink()
    assert len(_plan(inputs, out).tasks) == 3
    with h5py.File(out / "vol_c.h5", "w") as f:  # an HDF5 file of another kind: kept unless --overwrite
        f["kspace"] = np.zeros((3, 2, 4, 4), np.complex64)
    with pytest.raises(ConfigError, match=r"vol_c\.h5"):
        _plan(inputs, out)


def test_unreadable_inputs_are_recorded_not_raised(tmp_path: Path, inputs: Path) -> None:
    (inputs / "vol_bad.h5").write_bytes(b"\x89HDF\r\n" + b"\0" * 64)
    (inputs / "vol_z.h5").write_bytes(b"")
    plan = _plan(inputs, tmp_path / "out")
    assert len(plan.tasks) == 3 and plan.total_inputs == 5
    assert [Path(f.file).name for f in plan.failures] == ["vol_bad.h5", "vol_z.h5"]
    assert all("cannot open the file as HDF5" in f.error and f.kind == "DataError" for f in plan.failures)


def test_undersampling_records() -> None:
    line = np.zeros(24, bool)
    line[::4] = True
    assert Undersampling().for_volume(line) == VolumeSampling("prospective", "", 4.0)
    asked = Undersampling("equispaced_fraction", 8.0)
    assert asked.for_volume(None) == VolumeSampling("retrospective", "equispaced_fraction", 8.0, 0.04)
    with pytest.warns(Notice, match="vol.h5 is undersampled already.*do not apply"):
        assert asked.for_volume(line, name="vol.h5").undersampling == "prospective"  # its own mask wins
    assert Undersampling().for_volume(line, recovered=True).mask_type == "recovered"
    assert Undersampling().for_volume(None) == VolumeSampling("none")
    assert asked.mask_func() is not None and Undersampling().mask_func() is None
    for bad, match in [
        ({"mask_type": "random"}, "go together"),
        ({"mask_type": "spiral", "acceleration": 4.0}, "unknown mask type 'spiral'"),
        ({"mask_type": "random", "acceleration": 1.0}, "greater than 1"),
        ({"mask_type": "random", "acceleration": 4.0, "center_fraction": 1.5}, r"\(0, 1\)"),
    ]:
        with pytest.raises(ConfigError, match=match):
            Undersampling(**cast(dict[str, Any], bad))


def test_dicom_complete_needs_exactly_one_recorded_intact_file_per_slice(tmp_path: Path) -> None:
    series = tmp_path / "vol"
    assert not dicom_complete(series, 2)
    series.mkdir()
    for name in ("IM_0001.dcm", "IM_0002.dcm", ".IM_0003.dcm.partial"):
        (series / name).write_bytes(b"xyz")
    assert not dicom_complete(series, 2)  # no record: not known to be finished
    write_record(series, [series / "IM_0001.dcm", series / "IM_0002.dcm"])
    assert dicom_complete(series, 2) and not dicom_complete(series, 3)
    (series / "IM_0002.dcm").write_bytes(b"xy")  # truncated
    assert not dicom_complete(series, 2)
    (series / "IM_0002.dcm").write_bytes(b"xzz")  # same size, other bytes
    assert not dicom_complete(series, 2)
    (series / "IM_0002.dcm").write_bytes(b"xyz")
    (series / "IM_0003.dcm").write_bytes(b"xyz")  # a file too many
    assert not dicom_complete(series, 2)


def _task(index: int, slices: int, action: str = RECONSTRUCT) -> VolumeTask:
    path = Path(f"v{index}.h5")
    return VolumeTask(index, path, None, slices, (4, 8, 8), (8, 8), True, VolumeSampling("none"), action)  # type: ignore[arg-type]


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_shard_gives_every_volume_to_exactly_one_rank_balanced(world: int) -> None:
    rng = random.Random(world)
    tasks = [_task(i, rng.randint(1, 40), rng.choice([RECONSTRUCT, RECONSTRUCT, EXPORT])) for i in range(23)]
    shards = shard(tasks, world)
    assert len(shards) == world
    indices = [t.index for s in shards for t in s]
    assert sorted(indices) == list(range(23))  # each exactly once
    for s in shards:
        assert [t.index for t in s] == sorted(t.index for t in s)  # input order kept
    loads = [sum(t.num_slices if t.action == RECONSTRUCT else 1 for t in s) for s in shards]
    assert max(loads) - min(loads) <= 40  # greedy: within the largest volume
    assert shard(tasks, world) == shards  # deterministic: every rank computes the same


def test_raw_ismrmrd_inputs_are_planned_from_their_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Converting a raw file takes seconds per GB: the plan (and a resumed run's check of finished
    outputs) reads only the acquisitions' headers."""
    from mrirecon.data import ismrmrd_raw
    from tests.data.helpers import disc_image, smooth_maps, write_ismrmrd

    folder = tmp_path / "raw"
    folder.mkdir()
    images = smooth_maps(2, 32, 24) * disc_image(1, 32, 24)[0][None]
    write_ismrmrd(folder / "scan.h5", images, lines=np.arange(0, 24, 2), e1_center=12)

    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("the plan converted a raw file")

    monkeypatch.setattr(ismrmrd_raw, "open_ismrmrd", no_conversion)
    monkeypatch.setattr("mrirecon.data.volume.open_ismrmrd", no_conversion)
    plan = _plan(folder, tmp_path / "out")
    (task,) = plan.tasks
    assert (task.num_slices, task.kspace_shape, task.crop_size) == (1, (2, 16, 24), (16, 24))
    assert task.sampling.undersampling == "prospective"


def test_the_default_centre_fraction_is_fastmris_pairing_for_any_acceleration() -> None:
    """Without --center-fraction the centre is fastMRI's 0.32 / R: 8 % at 4×, 4 % at 8× (both the
    mask drawn and the fraction the outputs record)."""
    for acceleration, fraction in ((4.0, 0.08), (8.0, 0.04)):
        sampling = Undersampling("equispaced_fraction", acceleration)
        assert sampling.effective_center_fraction == pytest.approx(fraction)
        assert sampling.for_volume(None).center_fraction == pytest.approx(fraction)
        func = sampling.mask_func()
        assert func is not None and func((1, 64, 200), seed=0)[1] == round(200 * fraction)


@pytest.mark.parametrize("mask", ["equispaced", "random", "magic", "gaussian1d", "equispaced_fraction"])
def test_a_centre_that_alone_passes_the_acceleration_is_refused(mask: str) -> None:
    """A 50 % centre at 4× samples 40 of 64 lines (R ≈ 1.6) while the images would record R = 4."""
    from mrirecon.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--center-fraction 0.5 alone samples 1/2 of the lines"):
        Undersampling(mask, 4.0, 0.5)
    Undersampling(mask, 4.0, 0.2)  # 0.8 of the lines: fine
    Undersampling("poisson2d", 4.0, 0.5)  # a 2-D mask's calibration is an area: not this rule
