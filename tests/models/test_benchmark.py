"""benchmarks/models.py runs end to end on tiny slices and writes its JSON (no timings are asserted:
the figures live in docs/benchmarks.md); the same-run comparison with the references computes its
ratios and goals from the run's rows only and rewrites the docs section between its markers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import models as bench
from benchmarks import peers


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_quick_benchmark_writes_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, precision: str
) -> None:
    monkeypatch.setattr(sys, "argv", ["benchmarks.models"])
    out = tmp_path / "models.json"
    args = ["--quick", "--models", "rim", "--modes", "inference", "train_ckpt", "--threads", "1"]
    code = bench.main([*args, "--precision", precision, "--json", str(out)])
    assert code == 0
    payload = json.loads(out.read_text())
    assert payload["precision"] == precision
    assert {row["precision"] for row in payload["rows"]} == {precision}
    rows = {row["mode"]: row for row in payload["rows"]}
    assert set(rows) == {"inference", "train_ckpt"}
    for row in rows.values():
        assert "skipped" not in row, row
        assert row["seconds"] > 0 and row["peak_rss"] >= row["baseline_rss"] > 0
        assert row["parameters"] == 94_080 and row["allocator"] == "tuned"
    assert rows["inference"]["flops"] > 0 and rows["inference"]["conv_gflops_per_s"] > 0
    printed = capsys.readouterr().out
    assert "rim" in printed and "tiny" in printed and "train_ckpt" in printed
    assert "no ratio was measured" in printed and "comparison" not in payload


def _row(config: str, size: str, mode: str, seconds: float | None, allocator: str = "untouched") -> dict:
    row = {"config": config, "size": size, "mode": mode, "allocator": allocator}
    return {**row, "seconds": seconds} if seconds else {**row, "skipped": "over the memory limit"}


def test_compare_takes_ratios_from_the_run_and_checks_the_goals() -> None:
    rows = [
        _row("peer:atommic_cirim", "brain", "inference", 3.0),
        _row("cirim", "brain", "inference", 1.0),
        _row("peer:atommic_cirim", "brain", "train", 8.0),
        _row("cirim", "brain", "train", 5.0),
        _row("cirim", "brain", "train_ckpt", 6.0),
        _row("peer:direct_rvn", "brain", "train", None),  # the reference could not run
        _row("recurrentvarnet", "brain", "train", 4.0),
    ]
    entries = {e["config"]: e for e in peers.compare(rows, ["untouched"], ["brain"])}
    cirim = entries["cirim"]
    assert cirim["ratios"] == {"inference": 3.0, "train": 1.6, "train_ckpt": 8.0 / 6.0}
    assert cirim["goals"] == {"inference": True, "train": False, "train_ckpt": False, "ckpt_overhead": True}
    assert cirim["ckpt_overhead"] == pytest.approx(1.2)
    rvn = entries["recurrentvarnet"]
    assert rvn["ratios"]["train"] is None and rvn["goals"]["train"] is None  # not measured, not passed
    assert set(entries) == {"cirim", "recurrentvarnet"}  # the pairs the run timed, not every pair
    cs = peers.compare_cs(
        [
            {
                "config": "sigpy_l1wavelet_cs",
                "size": "real_230x180",
                "mode": "inference",
                "allocator": "tuned",
                "seconds": 6.0,
            },
            {
                "config": "cirim-brain",
                "size": "real_230x180",
                "mode": "inference",
                "allocator": "tuned",
                "seconds": 1.5,
            },
        ],
        ["tuned"],
    )
    assert cs == [
        {
            "model": "cirim-brain",
            "allocator": "tuned",
            "cs_seconds": 6.0,
            "seconds": 1.5,
            "ratio": 4.0,
            "goal": True,
        }
    ]


def test_markdown_section_replaces_only_the_marked_text(tmp_path: Path) -> None:
    rows = [_row("peer:atommic_rim", "knee", "train", 3.0), _row("rim", "knee", "train", 1.0)]
    payload = {
        "command": "python -m benchmarks.models --peers /tmp/peers",
        "date": "2026-12-06 00:00–00:30 UTC",
        "machine": {
            "processor": "x86_64",
            "platform": "Linux",
            "torch": "2.13.0+cpu",
            "cpu": "AMD EPYC",
            "cores": 2,
        },
        "threads": 2,
        "peers": {"commits": {"atommic": "1abb819dd8aa"}},
        "comparison": peers.compare(rows, ["untouched"], ["knee"]),
        "cs_comparison": [],
    }
    section = peers.markdown(payload)
    assert "3.00 s / 1.00 s = **3.00×**" in section and "atommic 1abb819dd8" in section
    assert "n/a / n/a" not in section.split("RIM GRU")[0]  # pairs without rows show "–"
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\nbefore\n{peers.BEGIN}\nold figures\n{peers.END}\nafter\n")
    peers.write_docs_section(doc, section)
    text = doc.read_text()
    assert (
        "old figures" not in text and text.startswith("# Benchmarks\nbefore\n") and text.endswith("\nafter\n")
    )
    assert text.count(peers.BEGIN) == 1 and "3.00×" in text
    plain = tmp_path / "plain.md"
    plain.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        peers.write_docs_section(plain, section)


def test_jobs_time_each_reference_right_before_its_pair(tmp_path: Path) -> None:
    args = bench.build_parser().parse_args(
        ["--peers", str(tmp_path), "--sizes", "brain", "--modes", "inference", "train_ckpt"]
    )
    jobs = [(job.config, job.mode) for job in bench._jobs(args)]
    assert jobs[:3] == [
        ("peer:direct_rvn", "inference"),
        ("recurrentvarnet", "inference"),
        ("recurrentvarnet", "train_ckpt"),  # the references have no checkpointing
    ]
    assert {config for config, _ in jobs} == {p.config for p in peers.PAIRS} | {
        f"peer:{p.peer}" for p in peers.PAIRS
    }
    rvn = next(job for job in bench._jobs(args) if job.config == "recurrentvarnet")
    assert rvn.loss == "last"  # DIRECT's RecurrentVarNet returns one estimate: the same loss terms
    args = bench.build_parser().parse_args(
        ["--peers", str(tmp_path), "--exclude", "peer:direct_*:*:inference"]
    )
    kept = {(job.config, job.size, job.mode) for job in bench._jobs(args)}
    assert ("peer:direct_rvn", "knee", "inference") not in kept and (
        "peer:direct_rvn",
        "knee",
        "train",
    ) in kept


def test_missing_reference_tree_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no exported NKI-AI/direct tree"):
        peers.build_peer("direct_rim", tmp_path)
