"""``benchmarks/inference.py --quick`` runs end to end and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "benchmarks.inference", "--quick", "--model", "unet"]


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_quick_benchmark(tmp_path: Path, precision: str) -> None:
    output = tmp_path / "inference.json"
    result = subprocess.run(
        [*COMMAND, "--workers", "1", "--precision", precision, "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compute-only slices/s" in result.stdout
    row = json.loads(output.read_text())["results"][0]
    assert row["precision"] == precision
    assert row["slices"] == 4 and row["compute_only_slices_per_s"] > 0 and row["end_to_end_slices_per_s"] > 0
    assert row["ratio"] == pytest.approx(row["end_to_end_slices_per_s"] / row["compute_only_slices_per_s"])
