"""``mrirecon evaluate`` end to end on synthetic fastMRI-layout files, and its one-line errors."""

from __future__ import annotations

import base64
import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage

from mrirecon.errors import DataError, Notice
from mrirecon.evaluation.evaluate import evaluate
from mrirecon.evaluation.metrics import atommic_metrics, calgary_campinas_ssim, volume_metrics
from mrirecon.evaluation.options import EvaluationOptions
from mrirecon.evaluation.volumes import describe_sources
from mrirecon_cli.main import cli
from tests.evaluation.synthetic import Dataset, write_recon

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _run(*args: str) -> SimpleNamespace:
    result = CliRunner().invoke(cli, ["evaluate", "--no-progress", *args])
    return SimpleNamespace(code=result.exit_code, output=result.output, exception=result.exception)


@pytest.fixture(scope="module")
def report(lesion_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimpleNamespace]:
    out = tmp_path_factory.mktemp("report")
    ds = lesion_dataset
    result = _run(
        "-r",
        str(ds.good),
        "-r",
        str(ds.blurred),
        "-r",
        str(ds.zero_filled),
        "-t",
        str(ds.targets),
        "-o",
        str(out),
    )
    return out, result


def test_cli_writes_csvs_json_and_html(report: tuple[Path, SimpleNamespace], lesion_dataset: Dataset) -> None:
    out, result = report
    assert result.code == 0, result.output
    assert "cirim AXFLAIR R=4 (2 volumes): SSIM = " in result.output
    assert {p.name for p in out.iterdir()} == {"metrics.csv", "lesions.csv", "summary.json", "report.html"}
    rows = _read_csv(out / "metrics.csv")
    assert len(rows) == 2 * 3  # one row per volume and reconstruction folder
    assert {r["model"] for r in rows} == {"cirim", "blurry-net", "zero-filled"}  # from the files' model attr
    # the numbers are fastMRI's, recomputed here straight from the files
    for row in rows:
        folder = {"cirim": lesion_dataset.good, "blurry-net": lesion_dataset.blurred}.get(row["model"])
        folder = folder or lesion_dataset.zero_filled
        with h5py.File(lesion_dataset.targets / row["file"]) as t, h5py.File(folder / row["file"]) as r:
            expected = volume_metrics(t["reconstruction_rss"][()], r["reconstruction"][()])
        for key in ("ssim", "psnr", "nmse"):
            assert float(row[key]) == pytest.approx(expected[key], rel=1e-12)
        assert row["acceleration"] == "4" and row["acquisition"] == "AXFLAIR"


def test_lesions_kept_by_a_faithful_reconstruction_and_lost_by_blur(
    report: tuple[Path, SimpleNamespace],
) -> None:
    out, _ = report
    lesions = _read_csv(out / "lesions.csv")
    assert len(lesions) == 2 * 3 * 3  # 3 lesions per volume, 2 volumes, 3 folders
    by_model: dict[str, list[bool]] = {}
    for row in lesions:
        by_model.setdefault(row["model"], []).append(row["preserved"] == "True")
        assert row["source"] == "labels" and float(row["ref_contrast_ratio"]) > 1.3
    assert all(by_model["cirim"]) and not any(by_model["blurry-net"])
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["conventions"]) == {"fastmri"}
    groups = {(g["model"], g["acceleration"]): g for g in summary["groups"]}
    assert groups[("cirim", "4")]["ssim"]["n"] == 2 and groups[("cirim", "4")]["ssim"]["mean"] > 0.95
    kept = {g["model"]: g["preserved_fraction"]["mean"] for g in summary["lesions"]["groups"]}
    assert kept["cirim"] == 1.0 and kept["blurry-net"] == 0.0
    assert summary["lesions"]["criteria"] == {"band": [0.9, 1.1], "min_cnr": 1.0}


def test_html_report_is_self_contained_with_its_pictures(report: tuple[Path, SimpleNamespace]) -> None:
    out, _ = report
    html = (out / "report.html").read_text()
    images = html.split('src="data:image/png;base64,')[1:]
    # distributions + preservation + per volume (2) + 3 lesion panels per volume
    assert len(images) == 2 + 2 + 2 * 3
    for chunk in images:
        assert base64.b64decode(chunk.split('"', 1)[0]).startswith(PNG_MAGIC)
    assert "http://" not in html and "https://" not in html and "<script" not in html
    for text in ("zero-filled", "blurry-net", "mean ± 2·SD", "Lesion contrast", "file_brain_AXFLAIR_001.h5"):
        assert text in html


def test_fastmri_plus_boxes_and_folder_labels(lesion_dataset: Dataset, tmp_path: Path) -> None:
    """A box drawn (flipped) around a labelled lesion measures that lesion; labels override names."""
    name = lesion_dataset.names[0]
    with h5py.File(lesion_dataset.targets / name) as f:
        labels = f["lesion_labels"][()]
    s = int(np.argmax((labels == 1).sum(axis=(1, 2))))
    rows, cols = np.nonzero(labels[s] == 1)
    height = int(rows.max() - rows.min() + 1)
    y = labels.shape[1] - int(rows.min()) - height  # the annotator's row in the flipped image
    csv_path = tmp_path / "brain.csv"
    csv_path.write_text(
        "file,slice,study_level,x,y,width,height,label\n"
        f"{Path(name).stem},{s},No,{cols.min()},{y},{cols.max() - cols.min() + 1},{height},"
        "Nonspecific WM lesion\n"
        f"{Path(name).stem},0,Yes,,,,,Normal for age\n"
    )
    options = EvaluationOptions(labels=("faithful",), annotations=csv_path, progress=False, report_volumes=1)
    result = evaluate([lesion_dataset.good], lesion_dataset.targets, tmp_path / "out", options)
    boxes = [r for r in result.lesion_rows if r["source"] == "fastmri+"]
    assert (
        len(boxes) == 1 and boxes[0]["label"] == "nonspecific wm lesion" and boxes[0]["model"] == "faithful"
    )
    assert boxes[0]["ref_contrast_ratio"] > 1.2 and boxes[0]["preserved"]
    assert "fastMRI+ box 1" in result.report_html.read_text()
    annotations = json.loads(result.summary_json.read_text())["lesions"]["annotations"]
    assert annotations["boxes_read"] == 1 and annotations["boxes_on_evaluated_volumes"] == 1
    # a box past the image's edge (another grid's coordinates) is said, not silently dropped
    with csv_path.open("a") as f:
        f.write(f"{Path(name).stem},{s},No,4000,4000,5,5,Nonspecific WM lesion\n")
    with pytest.warns(Notice, match=r"1 fastMRI\+ box\(es\) outside the evaluated image, not measured"):
        evaluate([lesion_dataset.good], lesion_dataset.targets, tmp_path / "out2", options)


def _copy(dataset: Dataset, tmp_path: Path) -> tuple[Path, Path]:
    targets, recons = tmp_path / "targets", tmp_path / "recons"
    shutil.copytree(dataset.targets, targets)
    shutil.copytree(dataset.good, recons)
    return targets, recons


def test_a_label_the_reference_does_not_show_is_listed_not_counted(
    lesion_dataset: Dataset, tmp_path: Path
) -> None:
    """A labelled region with no contrast in the reference (CNR < 1) is neither kept nor lost."""
    targets, recons = _copy(lesion_dataset, tmp_path)
    name = lesion_dataset.names[0]
    with h5py.File(targets / name, "a") as f:
        labels = f["lesion_labels"][()]
        image = f["reconstruction_rss"][0]
        # a 5 × 5 label in tissue, as far from the lesions as the head allows: no lesion there at all
        room = ndimage.distance_transform_edt(labels[0] == 0) * ndimage.binary_erosion(
            image > 0.3 * image.max(), iterations=8
        )
        top, left = (int(v) - 2 for v in np.unravel_index(np.argmax(room), room.shape))
        labels[0, top : top + 5, left : left + 5] = labels.max() + 1
        f["lesion_labels"][...] = labels
    result = evaluate(
        [recons, lesion_dataset.blurred], targets, tmp_path / "out", EvaluationOptions(progress=False)
    )
    hidden = [r for r in result.lesion_rows if not r["visible"]]
    assert len(hidden) == 2 and all(r["file"] == name and not r["preserved"] for r in hidden)
    assert all(r["ref_cnr"] < 1.0 for r in hidden)
    summary = json.loads(result.summary_json.read_text())
    assert summary["lesions"]["not_visible"] == 1
    groups = {g["model"]: g["preserved_fraction"] for g in summary["lesions"]["groups"]}
    # 6 real lesions per model: the faithful one keeps all, the blurred none; the label is in neither
    assert (groups["cirim"]["n"], groups["cirim"]["mean"]) == (6, 1.0)
    assert (groups["blurry-net"]["n"], groups["blurry-net"]["mean"]) == (6, 0.0)
    row = next(r for r in result.rows if r["file"] == name and r["model"] == "cirim")
    assert (row["lesions"], row["lesions_preserved"], row["lesions_not_visible"]) == (3, 3, 1)
    assert "not visible in the reference" in result.report_html.read_text()


def test_errors_name_the_file_and_exit_with_code_2(lesion_dataset: Dataset, tmp_path: Path) -> None:
    targets, recons = _copy(lesion_dataset, tmp_path)
    name = lesion_dataset.names[1]
    out = str(tmp_path / "out")

    (recons / name).unlink()
    result = _run("-r", str(recons), "-t", str(targets), "-o", out)
    assert result.code == 2 and f"{recons / name}: reconstruction file is missing" in result.output

    with h5py.File(targets / lesion_dataset.names[0]) as f:
        target = f["reconstruction_rss"][()]
    write_recon(recons / name, target[:2], None, "cirim")  # one slice short
    result = _run("-r", str(recons), "-t", str(targets), "-o", out)
    assert result.code == 2 and "has 2 slices but the target" in result.output and name in result.output

    write_recon(recons / name, target[:, :50, :50], None, "cirim")  # smaller than the crop
    result = _run("-r", str(recons), "-t", str(targets), "-o", out)
    assert result.code == 2 and "smaller than the evaluation crop 96×96" in result.output

    with h5py.File(recons / name, "w") as f:
        f.create_dataset("image", data=target)
    result = _run("-r", str(recons), "-t", str(targets), "-o", out)
    assert result.code == 2 and "has no 'reconstruction' dataset" in result.output

    write_recon(recons / name, target, None, "cirim")
    with h5py.File(targets / name, "a") as f:
        del f["lesion_labels"]
        f.create_dataset("lesion_labels", data=np.zeros((3, 10, 10), dtype=np.int16))
    result = _run("-r", str(recons), "-t", str(targets), "-o", out)
    assert (
        result.code == 2
        and "lesion_labels (3, 10, 10) and reconstruction_rss (3, 96, 96) differ" in result.output
    )

    with h5py.File(targets / name, "a") as f:
        del f["reconstruction_rss"]
    result = _run("-r", str(recons), "-t", str(targets), "-o", out)
    assert result.code == 2 and f"{targets / name}: target file has no 'reconstruction_rss'" in result.output

    (targets / "broken.h5").write_text("not HDF5")
    result = _run("-r", str(recons), "-t", str(targets), "-o", out)
    assert (
        result.code == 2 and f"{targets / 'broken.h5'}: cannot open the target file as HDF5" in result.output
    )
    (targets / "broken.h5").unlink()

    result = _run("-r", str(recons), "-t", str(tmp_path / "nowhere"), "-o", out)
    assert result.code == 2 and "no such folder or manifest" in result.output
    result = _run("-r", str(recons), "-t", str(targets), "-o", out, "--band", "1.1", "0.9")
    assert result.code == 2 and "preservation band" in result.output


def test_the_pooled_summary_row_counts_the_lesions_of_its_one_lesion_group(
    lesion_dataset: Dataset, tmp_path: Path
) -> None:
    """A volume of another acquisition without lesions makes a pooled metric row over both; its
    lesion count is the one lesion group's, not "–"."""
    targets, recons = _copy(lesion_dataset, tmp_path)
    with h5py.File(targets / lesion_dataset.names[1], "a") as f:
        f.attrs["acquisition"] = "AXT1"
        del f["lesion_labels"]
    result = evaluate([recons], targets, tmp_path / "out", EvaluationOptions(progress=False))
    assert len(result.lesion_groups) == 1 and any(g["acquisition"] == "all" for g in result.groups)
    html = result.report_html.read_text()
    summary = html.split("<h2", 3)[2]  # the summary section (after the sources)
    pooled = next(row for row in summary.split("<tr") if 'class="pooled"' in row)
    assert ">3/3<" in pooled, pooled


def test_what_the_metrics_cannot_score_is_a_one_line_error(lesion_dataset: Dataset, tmp_path: Path) -> None:
    targets, recons = _copy(lesion_dataset, tmp_path)
    name = lesion_dataset.names[0]
    out = str(tmp_path / "out")
    with h5py.File(recons / name, "a") as f:
        data = f["reconstruction"]
        data[1] = 0  # a failed slice
    result = _run("-r", str(recons), "-t", str(targets), "-o", out, "--atommic")
    assert result.code == 2, result.output
    assert (
        f"{recons / name}: slice 1 of the reconstruction is all zero, and the ATOMMIC metrics"
        in result.output
    )
    result = _run("-r", str(recons), "-t", str(targets), "-o", out, "--band", "0.5", "inf")
    assert result.code == 2 and "must be finite numbers" in result.output
    (tmp_path / "afile").write_text("")
    result = _run("-r", str(recons), "-t", str(targets), "-o", str(tmp_path / "afile" / "sub"))
    assert result.code == 2 and "cannot create the report folder" in result.output


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # PSNR of an exact copy is inf
def test_uncropped_reconstructions_are_cropped_like_fastmri(lesion_dataset: Dataset, tmp_path: Path) -> None:
    """A reconstruction on a larger grid is centre-cropped with (H − h) // 2 before scoring."""
    targets, recons = _copy(lesion_dataset, tmp_path)
    for name in lesion_dataset.names:
        with h5py.File(targets / name) as f:
            target = f["reconstruction_rss"][()]
        padded = np.zeros((target.shape[0], 101, 99), dtype=np.float32)
        padded[:, 2:98, 1:97] = target  # (101 − 96) // 2 = 2, (99 − 96) // 2 = 1
        write_recon(recons / name, padded, None, "padded")
    result = evaluate(
        [recons], targets, tmp_path / "out", EvaluationOptions(progress=False, report_volumes=0)
    )
    assert all(r["ssim"] == pytest.approx(1.0) and r["nmse"] == 0.0 for r in result.rows)


def test_manifest_targets(lesion_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Targets listed by a manifest: the entries' paths (and split) decide what is scored.

    This checks evaluate's use of the documented contract (docs/interfaces.md §6:
    ``read_manifest(path) -> entries with .path and .split``), not the manifest parser itself.
    """
    manifest = pytest.importorskip(
        "mrirecon.data.manifest", reason="mrirecon.data.manifest (the data layer) is not in this branch yet"
    )
    csv_path = tmp_path / "manifest.csv"
    csv_path.write_text("placeholder\n")
    entries = [
        SimpleNamespace(path=(lesion_dataset.targets / n).resolve(), split=split)
        for n, split in zip(lesion_dataset.names, ("val", "train"))
    ]

    def fake_read_manifest(path: Path) -> list[SimpleNamespace]:
        assert Path(path) == csv_path
        return entries

    monkeypatch.setattr(manifest, "read_manifest", fake_read_manifest)
    options = EvaluationOptions(split="val", progress=False, report_volumes=0)
    result = evaluate([lesion_dataset.good], csv_path, tmp_path / "out", options)
    assert [r["file"] for r in result.rows] == [lesion_dataset.names[0]]


def test_folder_labels(lesion_dataset: Dataset, tmp_path: Path) -> None:
    """One model at two accelerations keeps its name; two folders of one model and acceleration get
    their folder names appended; explicit labels may not collide."""
    folders = {}
    for name, model, acc in (("r4", "cirim", 4), ("r8", "cirim", 8), ("r4b", "cirim", 4), ("plain", "", 4)):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        write_recon(folders[name] / "a.h5", np.zeros((1, 8, 8)), None, model, acceleration=acc)
    sources = describe_sources([folders["r4"], folders["r8"]])
    assert [(s.label, s.acceleration, s.display) for s in sources] == [
        ("cirim", "4", "cirim R=4"),
        ("cirim", "8", "cirim R=8"),
    ]
    assert [s.label for s in describe_sources([folders["r4"], folders["r4b"]])] == [
        "cirim [r4]",
        "cirim [r4b]",
    ]
    # fastMRI's and ATOMMIC's scripts all write to a folder named "reconstructions"
    for run in ("runA", "runB"):
        (tmp_path / run / "reconstructions").mkdir(parents=True)
        write_recon(
            tmp_path / run / "reconstructions" / "a.h5", np.zeros((1, 8, 8)), None, "cirim", acceleration=4
        )
    same_names = [tmp_path / run / "reconstructions" for run in ("runA", "runB")]
    assert [s.label for s in describe_sources(same_names)] == [
        "cirim [runA/reconstructions]",
        "cirim [runB/reconstructions]",
    ]
    (plain,) = describe_sources([folders["plain"]])
    assert plain.label == "plain" and plain.model == ""
    with pytest.raises(DataError, match="same label and acceleration"):
        describe_sources([folders["r4"], folders["r4b"]], labels=("x", "x"))
    with pytest.raises(DataError, match="2 labels given for 1"):
        describe_sources([folders["r4"]], labels=("x", "y"))


def test_without_lesions_and_with_the_calgary_campinas_convention(
    lesion_dataset: Dataset, tmp_path: Path
) -> None:
    targets, recons = _copy(lesion_dataset, tmp_path)
    for name in lesion_dataset.names:
        with h5py.File(targets / name, "a") as f:
            del f["lesion_labels"]
    options = EvaluationOptions(calgary_campinas=True, progress=False, report_volumes=1)
    result = evaluate([recons], targets, tmp_path / "out", options)
    assert result.lesions_csv is None and not result.lesion_rows
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "metrics.csv",
        "report.html",
        "summary.json",
    ]
    with h5py.File(targets / lesion_dataset.names[0]) as t, h5py.File(recons / lesion_dataset.names[0]) as r:
        expected = calgary_campinas_ssim(t["reconstruction_rss"][()], r["reconstruction"][()])
    assert result.rows[0]["ssim_cc"] == pytest.approx(expected, rel=1e-12)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["conventions"]) == {"fastmri", "calgary-campinas"}
    assert summary["metrics"] == ["ssim", "psnr", "nmse", "ssim_cc", "psnr_cc"]
    html = result.report_html.read_text()
    assert "SSIM (CC)" in html and "Calgary-Campinas" in html and "Lesion contrast" not in html


def test_the_atommic_convention_is_a_named_option(lesion_dataset: Dataset, tmp_path: Path) -> None:
    targets, recons = _copy(lesion_dataset, tmp_path)
    options = EvaluationOptions(atommic=True, progress=False, report_volumes=1)
    result = evaluate([recons], targets, tmp_path / "out", options)
    with h5py.File(targets / lesion_dataset.names[0]) as t, h5py.File(recons / lesion_dataset.names[0]) as r:
        expected = atommic_metrics(t["reconstruction_rss"][()], r["reconstruction"][()])
    assert result.rows[0]["ssim_atommic"] == pytest.approx(expected["ssim_atommic"], rel=1e-12)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["conventions"]) == {"fastmri", "atommic"}
    assert summary["metrics"] == ["ssim", "psnr", "nmse", "ssim_atommic", "psnr_atommic", "nmse_atommic"]
    assert "SSIM (ATOMMIC)" in result.report_html.read_text()


def test_single_coil_targets_are_scored_against_their_esc_reference(tmp_path: Path) -> None:
    """fastMRI's single-coil files: k-space (S, H, W), the reference in reconstruction_esc (fastMRI's
    evaluate.py scores the single-coil challenge against it); their RSS, when present, is not it."""
    rng = np.random.default_rng(0)
    targets, recons = tmp_path / "targets", tmp_path / "recons"
    targets.mkdir()
    recons.mkdir()
    esc = rng.random((2, 40, 40)).astype(np.float32) + 0.5
    with h5py.File(targets / "file1000001.h5", "w") as f:
        f.create_dataset("kspace", data=np.ones((2, 64, 40), dtype=np.complex64))
        f.create_dataset("reconstruction_esc", data=esc)
        f.create_dataset("reconstruction_rss", data=2 * esc)
    write_recon(recons / "file1000001.h5", esc, None, "model")
    result = evaluate(
        [recons], targets, tmp_path / "out", EvaluationOptions(progress=False, report_volumes=0)
    )
    assert all(r["nmse"] == 0.0 for r in result.rows)
    with h5py.File(targets / "file1000001.h5", "a") as f:  # a targets-only copy: only single-coil
        del f["kspace"]  # files hold an ESC reference, so it is still the one scored
    result = evaluate(
        [recons], targets, tmp_path / "out1", EvaluationOptions(progress=False, report_volumes=0)
    )
    assert all(r["nmse"] == 0.0 for r in result.rows)
    with h5py.File(targets / "file1000001.h5", "a") as f:
        del f["reconstruction_esc"]
        del f["reconstruction_rss"]
    with pytest.raises(DataError, match="reconstruction_esc"):
        evaluate([recons], targets, tmp_path / "out2", EvaluationOptions(progress=False, report_volumes=0))


def test_every_hdf5_target_of_a_folder_is_scored(tmp_path: Path) -> None:
    """A target named .H5 or .hdf5 was dropped without a word (fastMRI's evaluate.py scores every
    file of its folder): the overall figures changed silently."""
    from mrirecon.evaluation.volumes import list_targets

    for name in ("a.h5", "b.H5", "c.hdf5", ".hidden.h5", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.h5").mkdir()
    assert [p.name for p in list_targets(tmp_path)] == ["a.h5", "b.H5", "c.hdf5"]


def test_a_target_declaring_gigabytes_it_does_not_hold_is_refused_before_it_is_read(tmp_path: Path) -> None:
    import h5py

    from mrirecon.evaluation.volumes import read_target

    with h5py.File(tmp_path / "t.h5", "w") as f:
        f.create_dataset("reconstruction_rss", shape=(16, 8192, 8192), dtype="f4", chunks=(1, 256, 256))
    with pytest.raises(DataError, match="reconstruction_rss"):
        read_target(tmp_path / "t.h5")
