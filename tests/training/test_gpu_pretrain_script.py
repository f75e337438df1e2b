"""benchmarks/gpu.sh's pretrain step, dry-run on the CPU: it trains the GPU recipe within its budget,
brings back what a resume needs, and resumes from the committed run folder on the next lease."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TINY = (
    "trainer.accelerator=cpu trainer.threads=1 data.num_workers=0 data.simulation.train_slices=2 "
    "data.simulation.val_slices=1 data.simulation.options.rows=[96,96] data.simulation.options.coils=[4,4]"
)


def _pretrain(repo: Path, out: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CPU_DRY_RUN": "1",
        "STEPS": "pretrain",
        "MINUTES": "0.001",  # one epoch, then the budget stops the run
        "PRETRAIN_SLACK": "500",  # the step's limit: a slow, busy machine still fits in it
        "PYTHON": sys.executable,
        "OUT": str(out),
        "PRETRAIN_ARGS": TINY,
        "OMP_NUM_THREADS": "1",
        "TMPDIR": str(out.parent),  # the script's scratch folder goes here, and is removed
        **extra,
    }
    return subprocess.run(
        ["bash", "benchmarks/gpu.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_the_pretrain_step_starts_then_resumes_the_carried_run(tmp_path: Path) -> None:
    repo = tmp_path / "repo"  # a copy, so that the committed-run folder the step reads is the test's
    repo.mkdir()
    for name in ("benchmarks", "configs", "mrirecon", "cli"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "results"))

    first = _pretrain(repo, tmp_path / "out1")
    assert first.returncode == 0, first.stdout + first.stderr
    # by default everything comes back in one archive (a runner may return only a few files)
    assert sorted(p.name for p in (tmp_path / "out1").iterdir()) == ["gpu-results.tgz"]
    with tarfile.open(tmp_path / "out1" / "gpu-results.tgz") as archive:
        archive.extractall(tmp_path / "back1", filter="data")
    log = (tmp_path / "back1" / "pretrain.log").read_text()
    assert "Starting from the weights of cirim-brain" in log
    assert "Stopping after epoch 1 (step 2)" in log
    back = sorted(p.name for p in (tmp_path / "back1" / "pretrain").iterdir())
    assert back == ["config.yaml", "last.ckpt", "metrics.csv"]
    assert (tmp_path / "back1" / "device.txt").read_text().startswith("date ")

    run = repo / "gpu-runs" / "cirim_brain_gpu"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("last.ckpt", "config.yaml"):
        shutil.copy(tmp_path / "back1" / "pretrain" / name, run / "checkpoints" / name)
    second = _pretrain(repo, tmp_path / "out2", RESULTS=str(tmp_path / "out2"))  # unpacked
    assert second.returncode == 0, second.stdout + second.stderr
    log = (tmp_path / "out2" / "pretrain.log").read_text()
    assert "resuming the carried run in gpu-runs/cirim_brain_gpu" in log
    assert not list(tmp_path.glob("mrirecon-gpu.*"))  # each run's own scratch, removed at its end
    assert "Stopping after epoch 2 (step 4)" in log
    checkpoint = torch.load(tmp_path / "out2" / "pretrain" / "last.ckpt", weights_only=True)
    assert (checkpoint["global_step"], checkpoint["epoch"]) == (4, 1)


def test_an_unknown_step_stops_the_script_before_it_installs_anything(tmp_path: Path) -> None:
    run = subprocess.run(
        ["bash", "benchmarks/gpu.sh"],
        cwd=REPO,
        env={**os.environ, "STEPS": "tests pretrian", "OUT": str(tmp_path / "out"), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "unknown step 'pretrian' in STEPS" in run.stdout
    assert not (tmp_path / "out").exists()
