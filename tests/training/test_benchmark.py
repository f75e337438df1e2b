"""The training benchmark runs (its --quick mode) and reports time and memory per setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_quick_benchmark_writes_time_and_memory_with_and_without_checkpointing(
    tmp_path: Path, precision: str
) -> None:
    out = tmp_path / "training.json"
    command = [
        "benchmarks.training",
        "--quick",
        "--models",
        "cirim",
        "--precision",
        precision,
        "--threads",
        "1",
    ]
    run = subprocess.run(
        [sys.executable, "-m", *command, "--output", str(out)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "| cirim" in run.stdout and "s/step" in run.stdout
    payload = json.loads(out.read_text())
    results = payload["results"]
    assert payload["machine"]["threads"] == 1  # the workers' count, not the parent's default
    assert payload["complete"]  # (written after every row with complete: false, then this)
    assert [r["checkpointing"] for r in results] == [False, True]
    for r in results:
        assert r["model"] == "cirim" and r["parameters"] > 0 and r["precision"] == precision
        assert r["threads"] == 1
        assert r["seconds_per_step"] > 0 and r["peak_rss_mb"] >= r["rss_before_first_step_mb"] > 0
