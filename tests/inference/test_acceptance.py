"""The issue's acceptance run: 20 small volumes from ``mrirecon simulate`` and one corrupt input
through ``mrirecon batch --dicom``, killed half-way with SIGKILL and started again.

- after the kill, every output under its final name is complete (no half-written file looks done);
- the restart skips the finished volumes (not rewritten) and redoes the others, so every volume is
  complete exactly once: one HDF5 and one DICOM series of one file per slice, no temporaries left;
- the corrupt input is the one line of failures.csv, the exit code says something failed;
- dciodvfy finds no errors in the exported files and a storescp receiver accepts them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pydicom
import pytest

from mrirecon.data.simulate import simulate_dataset
from mrirecon.export import read_reconstruction
from mrirecon.inference.failures import read_failures
from mrirecon.inference.plan import dicom_complete
from tests.export.tools import dciodvfy, send_to_storescp
from tests.inference.processes import run_cli, start_cli

pytestmark = pytest.mark.slow
VOLUMES, SLICES, SIZE = 20, 2, (32, 32)
#: dciodvfy's warnings for a header without study date or laterality (see tests/export).
ACCEPTED_WARNINGS = {
    "Warning - Missing attribute or value that would be needed to build DICOMDIR - Study Date",
    "Warning - Missing attribute or value that would be needed to build DICOMDIR - Study Time",
    "Warning - is only permitted to be empty when actually unknown; should be absent (not empty) if an "
    "unpaired body part, and have a value if a paired body part - attribute <Laterality>",
}


def _finished(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("*.h5")}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("acceptance")
    inputs, out = root / "in", root / "out"
    paths = simulate_dataset(
        inputs, volumes=VOLUMES, slices=SLICES, coils=2, size=SIZE, seed=0, progress=False
    )
    names = sorted(p.name for p in paths)
    (inputs / "vol_corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(200))
    config = root / "slow.yaml"
    config.write_text("seconds: 0.15\n")  # slow enough to be killed half-way
    args = (
        "batch", "--model", "fake_slow", "--model-config", config, "--input-dir", inputs, "-o", out,
        "--dicom", "--batch-size", SLICES, "--workers", 1, "--device", "cpu", "--no-progress",
    )  # fmt: skip

    process = start_cli(*args, log=root / "killed.log")
    deadline = time.monotonic() + 180
    while len(list(out.glob("*.h5"))) < 5:
        assert process.poll() is None, (root / "killed.log").read_text()
        assert time.monotonic() < deadline, "no volume finished in time"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    after_kill = _finished(out)
    complete_after_kill = {
        name: read_reconstruction(out / name).shape == (SLICES, *SIZE) for name in after_kill
    } | {
        f"dicom/{d.name}": dicom_complete(d, SLICES)
        for d in (out / "dicom").iterdir()
        if not d.name.startswith(".")
    }

    resumed = run_cli(*args)
    return {
        "out": out,
        "names": names,
        "after_kill": after_kill,
        "complete_after_kill": complete_after_kill,
        "resumed": resumed,
        "run": json.loads((out / "run.json").read_text()),
    }


def test_killed_half_way_nothing_looks_complete_that_is_not(run: dict) -> None:
    assert 5 <= len(run["after_kill"]) < VOLUMES, "the kill did not land half-way"
    assert all(run["complete_after_kill"].values()), run["complete_after_kill"]


def test_the_restart_completes_every_volume_exactly_once(run: dict) -> None:
    out, resumed, report = run["out"], run["resumed"], run["run"]
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr  # the corrupt input failed
    counts = report["counts"]
    assert counts["inputs"] == VOLUMES + 1 and counts["failed"] == 1
    assert counts["skipped_finished"] == len(run["after_kill"])
    assert counts["reconstructed"] == VOLUMES - len(run["after_kill"])
    redone = {Path(p).name for rank in report["ranks"] for p in rank["reconstructed"]}
    assert redone.isdisjoint(run["after_kill"]) and redone | set(run["after_kill"]) == set(run["names"])
    finished = _finished(out)
    assert sorted(finished) == run["names"]
    for name, stat in run["after_kill"].items():
        assert finished[name] == stat, f"{name} was rewritten"
    series = set()
    for name in run["names"]:
        assert read_reconstruction(out / name).shape == (SLICES, *SIZE)
        folder = out / "dicom" / Path(name).stem
        assert dicom_complete(folder, SLICES)
        uids = {pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID for p in folder.iterdir()}
        assert len(uids) == 1
        series |= uids
    assert len(series) == VOLUMES  # one series per volume
    folders = sorted(p for p in (out / "dicom").iterdir() if not p.name.startswith("."))
    assert folders == sorted(out / "dicom" / Path(n).stem for n in run["names"])
    assert not [p for p in out.rglob("*") if p.name.endswith(".partial")], "temporaries left behind"


def test_the_corrupt_input_is_the_one_failure(run: dict) -> None:
    failures = read_failures(run["out"] / "failures.csv")
    assert [Path(f.file).name for f in failures] == ["vol_corrupt.h5"]
    assert "vol_corrupt.h5" in failures[0].error and "\n" not in failures[0].error
    assert run["run"]["status"] == "complete with failures"
    assert "1 input(s) failed" in run["resumed"].stderr


def _files(run: dict) -> list[Path]:
    return sorted((run["out"] / "dicom").rglob("IM_*.dcm"))


def test_dciodvfy_finds_no_errors(run: dict) -> None:
    files = _files(run)
    assert len(files) == VOLUMES * SLICES
    for path in files:
        verdict = dciodvfy(path)
        assert "MRImage" in verdict.output and verdict.errors == [], verdict.output
        assert set(verdict.warnings) <= ACCEPTED_WARNINGS, verdict.output


def test_storescp_receives_every_series(run: dict, tmp_path: Path) -> None:
    files = _files(run)
    received = tmp_path / "pacs"
    log = send_to_storescp(files, received, timeout=120)
    sent = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in files}
    got = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in received.iterdir()}
    assert got == sent and len(got) == VOLUMES * SLICES, log
