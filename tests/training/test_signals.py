"""A training run stopped from outside: SIGTERM (docker stop, systemd, SLURM, ``timeout``) and
Ctrl-C stop it with exit 143 and 130 in one line, on one process and on two (DDP over gloo), and
the run resumes; a resume on another process count is refused."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.inference.processes import left_behind, run_cli, start_cli


def _config(folder: Path, workers: int = 1, **trainer: Any) -> Path:
    mapping = {
        "model": {"name": "rim", "params": {"channels": 4, "time_steps": 2}},
        "data": {
            "manifest": str(folder / "data" / "manifest.csv"),
            "synthetic": {"volumes": 4, "slices": 2, "size": 32, "coils": 2, "seed": 5},
            "mask": {"type": "random", "center_fractions": [0.08], "accelerations": [4]},
            "num_workers": workers,
        },
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 500,  # stopped long before
            "progress_bar": False,
            "seed": 3,
            "threads": 1,
            **trainer,
        },
    }
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return path


def _started(folder: Path, config: Path) -> Any:
    """The run, started in its own process group and waited for until it has a checkpoint."""
    process = start_cli("train", "-c", config, "-o", folder / "run", log=folder / "log")
    deadline = time.monotonic() + 240
    while not (folder / "run" / "checkpoints" / "last.ckpt").is_file():
        assert process.poll() is None, (folder / "log").read_text()
        assert time.monotonic() < deadline, (folder / "log").read_text()
        time.sleep(0.3)
    time.sleep(1.0)  # inside the next epoch
    return process


@pytest.mark.slow
@pytest.mark.parametrize(
    ("devices", "whole_group"),
    [(1, False), (1, True), (2, True), (2, False)],
    ids=["one", "one-group", "ddp-group", "ddp-main"],
)
def test_sigterm_stops_training_with_143_and_the_run_resumes(
    tmp_path: Path, devices: int, whole_group: bool
) -> None:
    """Lightning's SIGTERM handler broadcast to the other processes from inside the signal handler:
    a DDP run whose processes were in another collective waited for ever; one process exited 0,
    as if the run had finished."""
    extra: dict[str, Any] = {"devices": 2, "strategy": "ddp"} if devices == 2 else {}
    process = _started(tmp_path, _config(tmp_path, **extra))
    if whole_group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    left = left_behind(process.pid, seconds=30)
    log = (tmp_path / "log").read_text()
    assert code == 143, log
    assert not left, f"processes of the run still alive: {left}\n{log}"
    assert "Stopped by SIGTERM" in log and "internal error" not in log
    assert "--resume continues it from its last checkpoint" in log  # what to type next
    assert "leaked" not in log  # (multiprocessing's resource tracker, after Lightning killed rank 1)
    if devices == 1:  # (a DDP process may print gloo's complaint about its lost peer while it exits)
        assert "Traceback" not in log
    epoch = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    again = run_cli(
        "train", "-o", tmp_path / "run", "--resume", f"trainer.max_epochs={epoch + 2}", timeout=300
    )
    assert again.returncode == 0, again.stdout + again.stderr
    lower = run_cli("train", "-o", tmp_path / "run", "--resume", "trainer.max_epochs=1", timeout=300)
    assert lower.returncode == 2 and "raise trainer.max_epochs" in lower.stderr, lower.stdout + lower.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "code", "said"), [("TERM", 143, "Stopped by SIGTERM"), ("INT", 130, "Interrupted")]
)
def test_a_signal_lost_in_a_fork_handler_still_stops_training(
    tmp_path: Path, name: str, code: int, said: str
) -> None:
    """A SIGTERM (or Ctrl-C) that arrived while a DataLoader forked its workers raised inside a
    fork handler, where Python drops exceptions, and the run trained on to its end: it stops at its
    next batch."""
    env = {"MRIRECON_TEST_SIGNAL_AT_FORK": name}
    result = run_cli("train", "-c", _config(tmp_path, max_epochs=3), "-o", tmp_path / "run", env=env)
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert f"(test) SIG{name} inside a fork handler" in output and said in output
    assert "Exception ignored" not in output and "Traceback" not in output  # nothing reads as a bug
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()  # not one epoch more


@pytest.mark.slow
def test_ctrl_c_stops_training_with_130(tmp_path: Path) -> None:
    """Lightning turns Ctrl-C into exit 1 (a failure to a job script); it is 130."""
    process = _started(tmp_path, _config(tmp_path))
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130, (tmp_path / "log").read_text()
    assert "Interrupted" in (tmp_path / "log").read_text()


@pytest.mark.slow
def test_a_run_resumes_only_on_the_process_count_it_trained_on(tmp_path: Path) -> None:
    """On another count the learning-rate schedule, sized for the first, ends early (a cosine
    schedule trains on at 0): refused in one line, naming both counts."""
    config = _config(tmp_path, max_epochs=1)
    first = run_cli("train", "-c", config, "-o", tmp_path / "run", timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    other = run_cli(
        "train", "-o", tmp_path / "run", "--resume", "trainer.devices=2", "trainer.strategy=ddp", timeout=300
    )
    assert other.returncode == 2, other.stdout + other.stderr
    assert "the run trained on 1 process(es) and this start has 2" in other.stderr
