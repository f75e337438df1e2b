"""The demo end to end at test size, through the installed ``mrirecon`` script: simulate, fine-tune the
shipped pretrained CIRIM and train a tiny one, batch-reconstruct, evaluate, export and validate DICOM;
a second run reuses every step."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mrirecon.export.validate import validate_series

pytestmark = pytest.mark.slow

MODELS = ["cirim-brain", "finetuned", "cirim", "zero_filled", "sense", "cs_l1wavelet"]
LABELS = {"CIRIM (pretrained)", "CIRIM (fine-tuned)", "CIRIM", "zero-filled", "SENSE", "CS (L1-wavelet)"}


def _table(stdout: str) -> dict[str, list[str]]:
    """The results table by model label (the first 18 characters of a row)."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model") and "SSIM" in line)
    rows = {}
    for line in lines[header + 2 :]:
        if not line.strip():
            break
        rows[line[:18].strip()] = line[18:].split()
    return rows


def _mrirecon() -> str:
    return shutil.which("mrirecon") or str(Path(sys.executable).parent / "mrirecon")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_mrirecon(), *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("demo")
    out = _run("demo", "--quick", "--output-dir", str(root / "out"), cwd=root)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return root / "out", out


def test_the_demo_writes_every_output(demo_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = demo_run
    with (out / "data" / "manifest.csv").open() as handle:
        splits = [row["split"] for row in csv.DictReader(handle)]
    assert sorted(set(splits)) == ["test", "train", "val"] and len(splits) == 5
    assert (out / "runs" / "cirim" / "model.pt").is_file()
    assert (out / "runs" / "finetuned" / "model.pt").is_file()
    tests = splits.count("test")
    for model in MODELS:
        assert len(list((out / "recon" / model).glob("*.h5"))) == tests, model
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    assert {g["model"] for g in summary["groups"]} == LABELS
    assert (out / "evaluation" / "lesions.csv").is_file()  # the simulated lesions were measured
    html = (out / "evaluation" / "report.html").read_text()
    assert "<img" in html and "CIRIM" in html
    assert (out / "reconstructions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    series = [p for p in (out / "dicom").iterdir() if p.is_dir()]
    assert len(series) == 1
    check = validate_series(series[0])
    assert check.valid, check.errors
    assert check.files == 2  # the quick demo's volumes have 2 slices


def test_the_demo_prints_the_table_and_the_paths(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, result = demo_run
    rows = _table(result.stdout)
    assert set(rows) == LABELS
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    ssim = {g["model"]: g["ssim"]["mean"] for g in summary["groups"]}
    assert float(rows["SENSE"][0]) == pytest.approx(ssim["SENSE"], abs=5e-5)  # the table is the evaluation's
    assert float(rows["SENSE"][0]) > float(rows["zero-filled"][0])  # SENSE unfolds the aliasing
    # the shipped model reconstructs the demo's data well above zero-filled as it is
    assert float(rows["CIRIM (pretrained)"][0]) > float(rows["zero-filled"][0]) + 0.05
    assert (
        "fine-tuning cirim-brain" in result.stdout and "cirim-brain.safetensors, as shipped" in result.stdout
    )
    lines = result.stdout.splitlines()
    for label in ("report", "picture", "DICOM", "model"):
        assert any(line.startswith(label) for line in lines), label
    assert "valid" in result.stdout


def test_a_second_run_reuses_every_step(demo_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, first = demo_run
    model = out / "runs" / "cirim" / "model.pt"
    stamp = model.stat().st_mtime_ns
    again = _run("demo", "--quick", "--output-dir", str(out), cwd=out.parent)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "data: reusing" in again.stdout and "CIRIM: reusing" in again.stdout
    assert "CIRIM (fine-tuned): reusing" in again.stdout
    assert again.stdout.count("reusing 1 volume") == len(MODELS)
    assert model.stat().st_mtime_ns == stamp
    table = [line for line in again.stdout.splitlines() if line.startswith(("CIRIM", "SENSE"))]
    assert table == [line for line in first.stdout.splitlines() if line.startswith(("CIRIM", "SENSE"))]


def test_other_settings_in_the_same_folder_are_one_line_error(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, _ = demo_run
    result = _run("demo", "--quick", "--volumes", "6", "--output-dir", str(out), cwd=out.parent)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0].startswith(f"Error: {out}: this folder holds a demo run with other")
    assert "--fresh" in result.stderr and "Traceback" not in result.stderr


def test_all_models_reuses_cirim_and_trains_rim_and_recurrentvarnet(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    """Last in this file: it adds models to the shared run folder."""
    out, _ = demo_run
    result = _run("demo", "--quick", "--all-models", "--output-dir", str(out), cwd=out.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CIRIM: reusing" in result.stdout
    for model in ("rim", "recurrentvarnet"):
        assert (out / "runs" / model / "model.pt").is_file()
        assert len(list((out / "recon" / model).glob("*.h5"))) == 1
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    assert {g["model"] for g in summary["groups"]} >= {"CIRIM", "RIM", "RecurrentVarNet", "SENSE"}


def test_the_fine_tune_runs_the_steps_it_names(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    """A batch limit stopped the fine-tune at one epoch: --finetune-steps 40 ran 24 steps on the
    default demo's 24 training slices. Now max_steps with the epochs they need; the quick demo's
    2 steps ran 2 (its checkpoint says so)."""
    import torch

    from mrirecon.pipeline.demo import _finetune_overrides
    from mrirecon.pipeline.settings import DemoPaths, quick_settings

    out, _ = demo_run
    paths = DemoPaths(out)  # 3 training volumes of 2 slices
    overrides = _finetune_overrides(paths, quick_settings(finetune_steps=14))
    assert "trainer.max_steps=14" in overrides and "trainer.max_epochs=3" in overrides
    assert not any(o.startswith("trainer.limit_train_batches") for o in overrides)
    checkpoint = torch.load(out / "runs" / "finetuned" / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2
