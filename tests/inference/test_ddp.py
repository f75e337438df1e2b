"""Several processes through Lightning's DDP prediction (two CPU processes, gloo): every volume is
reconstructed by exactly one rank, and the reports cover all of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mrirecon.export import read_reconstruction
from mrirecon.inference.failures import read_failures
from tests.inference import fakes
from tests.inference.processes import run_cli

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
