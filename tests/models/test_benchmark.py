"""benchmarks/models.py runs end to end on tiny slices and writes its JSON (a smoke test: no timings
are asserted, the benchmark's figures live in docs/models.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import models as bench


@pytest.mark.slow
def test_quick_benchmark_writes_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["benchmarks.models"])
    out = tmp_path / "models.json"
    args = ["--quick", "--models", "rim", "--modes", "inference", "train_ckpt", "--threads", "1"]
    code = bench.main([*args, "--json", str(out)])
    assert code == 0
    payload = json.loads(out.read_text())
    rows = {row["mode"]: row for row in payload["rows"]}
    assert set(rows) == {"inference", "train_ckpt"}
    for row in rows.values():
        assert "skipped" not in row, row
        assert row["seconds"] > 0 and row["peak_rss"] >= row["baseline_rss"] > 0
        assert row["parameters"] == 94_080 and row["allocator"] == "reuse"
    assert rows["inference"]["flops"] > 0 and rows["inference"]["conv_gflops_per_s"] > 0
    printed = capsys.readouterr().out
    assert "rim" in printed and "tiny" in printed and "train_ckpt" in printed


def test_table_ratios_use_the_reference() -> None:
    row = {"config": "cirim", "size": "brain", "mode": "inference", "parameters": 264_960, "seconds": 1.6}
    cells = bench.table([row])[0]
    assert cells[8] == "3.2" and cells[9] == "2.00×"
    train = {**row, "mode": "train_ckpt", "seconds": 8.7, "peak_rss": 1.0e9}
    cells = bench.table([train])[0]
    assert cells[9] == "1.00×" and cells[10] == "4.00×"
