"""Several processes through Lightning's DDP prediction (two CPU processes, gloo): every volume is
reconstructed by exactly one rank, and the reports cover all of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mrirecon.export import read_reconstruction
from mrirecon.inference.failures import read_failures
from tests.inference import fakes
from tests.inference.processes import left_behind, run_cli, start_cli

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("workers", [0, 1])
def test_two_cpu_processes_share_the_volumes_exactly_once(tmp_path: Path, workers: int) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    names = []
    for i in range(5):
        names.append(fakes.write_input(inputs / f"vol_{i}.h5", slices=1 + i % 3, size=(16, 16), seed=i).name)
    (inputs / "vol_9_corrupt.h5").write_bytes(b"not hdf5")
    result = run_cli(
        "batch", "--model", "zero_filled", "--input-dir", inputs, "-o", out, "--devices", 2,
        "--device", "cpu", "--workers", workers, "--no-progress", "--dicom",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr  # the corrupt input failed
    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2 and len(run["ranks"]) == 2
    done = [Path(p).name for rank in run["ranks"] for p in rank["reconstructed"]]
    assert sorted(done) == sorted(names)  # each exactly once across the ranks
    assert all(rank["reconstructed"] for rank in run["ranks"])  # both ranks worked
    assert run["counts"]["reconstructed"] == 5 and run["counts"]["slices_reconstructed"] == 1 + 2 + 3 + 1 + 2
    assert [Path(f.file).name for f in read_failures(out / "failures.csv")] == ["vol_9_corrupt.h5"]
    for i, name in enumerate(names):
        assert read_reconstruction(out / name).shape[0] == 1 + i % 3
        assert len(list((out / "dicom" / Path(name).stem).glob("IM_*.dcm"))) == 1 + i % 3
    assert "Initializing distributed" not in result.stdout + result.stderr


def test_a_rank_without_slices_waits_for_the_other(tmp_path: Path) -> None:
    """One volume on two ranks (or the last volume of a resumed run, or only DICOM left to export):
    rank 1's empty loader was an internal-error traceback and the run's report was never written."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    name = fakes.write_input(inputs / "vol_0.h5", slices=2, size=(16, 16), seed=0).name
    args = ("--devices", 2, "--device", "cpu", "--workers", 0, "--no-progress")
    result = run_cli("batch", "--model", "zero_filled", "--input-dir", inputs, "-o", out, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and [len(rank["reconstructed"]) for rank in run["ranks"]] == [1, 0]
    assert read_reconstruction(out / name).shape[0] == 2
    # the reconstruction is finished, its DICOM series is the one task left: export only
    again = run_cli("batch", "--model", "zero_filled", "--input-dir", inputs, "-o", out, "--dicom", *args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(list((out / "dicom" / "vol_0").glob("IM_*.dcm"))) == 2


def test_a_process_whose_peer_died_says_so_in_one_line(tmp_path: Path) -> None:
    """Rank 0 killed (SIGKILL, as the kernel's OOM killer does) while rank 1 reconstructed:
    rank 1's gather of the reports failed and it printed a traceback as a bug (exit 3)."""
    import time

    inputs, out = tmp_path / "in", tmp_path / "out"
    for k in range(4):
        fakes.write_input(inputs / f"vol_{k}.h5", slices=6, size=(16, 16))
    config = tmp_path / "slow.yaml"
    config.write_text("seconds: 1.0\n")
    process = start_cli(
        "batch", "--model", "fake_slow", "--model-config", config, "--input-dir", inputs, "-o", out,
        "--devices", 2, "--device", "cpu", "--workers", 0, "--no-progress", log=tmp_path / "log",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(out.glob("vol_*.h5")) and time.monotonic() < deadline:  # inside the loop
        assert process.poll() is None, (tmp_path / "log").read_text()
        time.sleep(0.2)
    process.kill()  # rank 0 alone; rank 1 reconstructs its volumes, then fails to gather
    process.wait()
    assert not (left := left_behind(process.pid, seconds=90)), left
    log = (tmp_path / "log").read_text()
    assert "Error: another process of this distributed run stopped, and this one with it" in log, log
    assert "Traceback" not in log and "internal error" not in log, log


def test_a_deidentified_run_names_no_input_in_its_workers_notes(tmp_path: Path) -> None:
    """Each worker opens its volumes again and says what it finds; a spawned worker (a distributed
    run on Python < 3.11.10) printed it in Python's own format, with the input's real name."""
    import h5py
    import numpy as np

    from mrirecon.export.deidentify import file_pseudonym

    mask = np.zeros(24, bool)
    mask[::3] = mask[10:14] = True
    names = [f"DOE_JANE_MRN1234{k}.h5" for k in range(2)]
    for name in names:
        path = fakes.write_input(tmp_path / "in" / name, mask=mask, slices=2)
        with h5py.File(path, "a") as f:  # undersampled, without saying how: each reader notes it
            del f["mask"]
    result = run_cli(
        "batch", "--model", "zero_filled", "--input-dir", tmp_path / "in", "-o", tmp_path / "out",
        "--devices", 2, "--device", "cpu", "--workers", 1, "--no-progress",
        "--deidentify", "--deid-salt", "k",
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    notes = [line for line in output.splitlines() if "no 'mask' dataset" in line]
    assert notes and all(line.startswith("Note: ") for line in notes), output
    assert {file_pseudonym(name, "k") for name in names} <= {line.split()[1].rstrip(":") for line in notes}
    for needle in ("DOE", "JANE", "MRN1234"):
        assert needle not in output, output
