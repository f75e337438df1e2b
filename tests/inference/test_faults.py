"""Faults while writing, in a separate process: a full disk (a file-size limit: EFBIG) and an output
folder without write permission. Each is one line and exit code 2; nothing already written is damaged
and no temporary is left behind."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mrirecon.export import read_reconstruction
from mrirecon.inference import RunOptions, load_reconstructor, run_batch
from tests.export.tools import unprivileged
from tests.inference import fakes
from tests.inference.processes import run_cli

pytestmark = pytest.mark.slow
QUIET = ["--no-progress", "--workers", "0", "--device", "cpu"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _everything(folder: Path) -> dict[str, str]:
    """Every output file's sha256 (the lock file, which names its last holder, aside)."""
    return {
        str(p.relative_to(folder)): _sha(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".mrirecon.lock"
    }


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def _first_run(inputs: Path, out: Path, *, dicom: bool = False) -> None:
    """An earlier, complete run (in this process) that wrote ``vol_0``."""
    fakes.write_input(inputs / "vol_0.h5", slices=1, size=(16, 16))
    options = RunOptions(output_dir=out, dicom=dicom, workers=0, progress=False, device="cpu")
    assert run_batch(load_reconstructor("zero_filled"), inputs, options).ok


def test_a_full_disk_stops_the_run_and_damages_nothing(tmp_path: Path, installed) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    _first_run(inputs, out)
    before = _sha(out / "vol_0.h5")
    fakes.write_input(inputs / "vol_1_big.h5", slices=4, size=(64, 64))
    fakes.write_input(inputs / "vol_2_small.h5", slices=1, size=(16, 16))
    args = ("batch", "--model", "zero_filled", "--input-dir", inputs, "-o", out, *QUIET)
    result = run_cli(*args, file_limit=64 * 1024)
    assert result.returncode == 2, result.stdout + result.stderr
    line = _error_line(result.stderr)
    assert f"{out / 'vol_1_big.h5'}: could not write the reconstruction HDF5: the file grew too large" in line
    assert "nothing already written was changed" in line
    assert _sha(out / "vol_0.h5") == before  # finished earlier: untouched
    assert not (out / "vol_1_big.h5").exists()
    assert not list(out.glob(".*")), "a temporary or the lock was left behind"
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "aborted" and "grew too large" in run["error"]
    # with space again, the restart finishes what is left
    options = RunOptions(output_dir=out, workers=0, progress=False, device="cpu")
    again = run_batch(load_reconstructor("zero_filled"), inputs, options)
    assert (again.skipped, again.reconstructed) == (1, 2)
    assert read_reconstruction(out / "vol_1_big.h5").shape == (4, 64, 64)


def test_an_output_folder_without_write_permission(tmp_path: Path, installed) -> None:
    prefix = unprivileged()
    inputs, out = tmp_path / "in", tmp_path / "out"
    _first_run(inputs, out, dicom=True)
    fakes.write_input(inputs / "vol_1.h5", slices=1, size=(16, 16))
    before = _everything(out)
    for folder, args in ((out, ()), (out / "dicom", ("--dicom",))):
        folder.chmod(0o555)
        try:
            result = run_cli(
                "batch",
                "--model",
                "zero_filled",
                "--input-dir",
                inputs,
                "-o",
                out,
                *args,
                *QUIET,
                prefix=prefix,
            )
        finally:
            folder.chmod(0o755)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"Error: {folder}: could not write the " in _error_line(result.stderr)
        assert "permission denied (make the output folder writable" in result.stderr
        assert _everything(out) == before


def test_a_second_writer_on_one_output_folder_is_refused(tmp_path: Path, installed) -> None:
    from mrirecon.atomic import exclusive_folder
    from mrirecon.errors import ConfigError

    inputs, out = tmp_path / "in", tmp_path / "out"
    fakes.write_input(inputs / "vol_0.h5", slices=1, size=(16, 16))
    options = RunOptions(output_dir=out, workers=0, progress=False, device="cpu")
    with exclusive_folder(out, what="reconstructions"):  # a run in progress
        with pytest.raises(ConfigError, match=r"another mrirecon run is writing .* \(process \d+ on "):
            run_batch(load_reconstructor("zero_filled"), inputs, options)
        assert not (out / "vol_0.h5").exists()
    assert run_batch(load_reconstructor("zero_filled"), inputs, options).ok  # free again
    # a run that died holding it does not block the next one (the kernel drops the lock)
    result = run_cli("batch", "--model", "zero_filled", "--input-dir", inputs, "-o", out, *QUIET)
    assert result.returncode == 0, result.stderr


def test_reports_that_cannot_be_written_are_said_on_stderr(tmp_path: Path, installed) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    fakes.write_input(inputs / "vol_1.h5", slices=2, size=(32, 32))
    args = ("batch", "--model", "zero_filled", "--input-dir", inputs, "-o", out, *QUIET)
    result = run_cli(*args, file_limit=1024)  # neither the HDF5 nor run.json fit
    assert result.returncode == 2, result.stdout + result.stderr
    assert "grew too large" in _error_line(result.stderr)
    notes = [line for line in result.stderr.splitlines() if line.startswith("Note:")]
    assert any("run.json" in line and "reports were not written" in line for line in notes), result.stderr
    # the small record written at the start fits; it says the run did not complete
    assert json.loads((out / "run.json").read_text())["status"] in ("running", "aborted")


def test_a_bug_in_a_model_stops_the_batch_with_its_traceback(tmp_path: Path, installed) -> None:
    """A plain RuntimeError is a bug, not bad input: not one failure row per volume."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    for k in range(3):
        fakes.write_input(inputs / f"vol_{k}.h5", slices=1, size=(16, 16))
    model = fakes.install_checkpoint(tmp_path / "bug.pt", "fake_bug")
    result = run_cli("batch", "--checkpoint", model, "--input-dir", inputs, "-o", out, *QUIET)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback (most recent call last)" in result.stderr and "RuntimeError: bug" in result.stderr
    assert "internal error (a bug, not your data)" in result.stderr
    assert not (out / "failures.csv").exists() or "vol_1" not in (out / "failures.csv").read_text()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "crashed" and run["error"] == "RuntimeError: bug"
    assert any("forward" in frame for frame in run["where"])


def test_an_input_truncated_while_it_is_read_is_a_failure_not_a_dead_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed
) -> None:
    """A file cut short after the worker opened it: through a memory map that was a SIGBUS that
    killed the worker and the run; read into memory it is that volume's failure."""
    from mrirecon.inference import slices

    inputs, out = tmp_path / "in", tmp_path / "out"
    fakes.write_input(inputs / "vol_0.h5", slices=2, size=(32, 32))
    bad = fakes.write_input(inputs / "vol_1.h5", slices=4, size=(64, 64))
    fakes.write_input(inputs / "vol_2.h5", slices=2, size=(32, 32))
    opened = slices.SliceItems._volume

    def open_then_truncate(self, position):  # in the DataLoader worker
        volume = opened(self, position)
        path = self.tasks[position].input_path
        if path.name == "vol_1.h5" and path.stat().st_size > 4096:
            with open(path, "r+b") as handle:
                handle.truncate(path.stat().st_size // 3)
        return volume

    monkeypatch.setattr(slices.SliceItems, "_volume", open_then_truncate)
    options = RunOptions(output_dir=out, workers=1, batch_size=1, progress=False, device="cpu")
    result = run_batch(load_reconstructor("zero_filled"), inputs, options)
    assert result.reconstructed == 2 and [Path(f.file).name for f in result.failures] == [bad.name]
    assert json.loads((out / "run.json").read_text())["status"] == "complete with failures"


def test_workers_without_shared_memory_fail_at_once_with_the_fix(tmp_path: Path, installed) -> None:
    """A file-size limit (or a small /dev/shm) stops workers from sharing tensors: one line in
    seconds, not a hang."""
    import time

    inputs, out = tmp_path / "in", tmp_path / "out"
    fakes.write_input(inputs / "vol_0.h5", slices=2, size=(128, 128))  # a batch's k-space > 256 KB
    args = ("batch", "--model", "zero_filled", "--input-dir", inputs, "-o", out)
    start = time.perf_counter()
    result = run_cli(*args, "--no-progress", "--num-workers", "1", "--device", "cpu", file_limit=256 * 1024)
    assert result.returncode == 2, result.stdout + result.stderr
    line = _error_line(result.stderr)
    assert "DataLoader workers cannot share" in line and "--shm-size" in line and "--num-workers 0" in line
    assert time.perf_counter() - start < 120


def _slow_batch_in_its_loop(tmp_path: Path, *, seconds: float, workers: int) -> tuple[Any, tuple[Any, ...]]:
    """A `batch` of 3 volumes of 2 slices with a model taking ``seconds`` per slice, started in its own
    process group and waited for until it is inside its predict loop; ``(process, its batch args)``."""
    import time

    from tests.inference.processes import start_cli

    inputs, out = tmp_path / "in", tmp_path / "out"
    for k in range(3):
        fakes.write_input(inputs / f"vol_{k}.h5", slices=2, size=(16, 16))
    config = tmp_path / "slow.yaml"
    marker = tmp_path / "called"
    config.write_text(f"seconds: {seconds}\nmarker: {marker}\n")
    args = ("batch", "--model", "fake_slow", "--model-config", config, "--input-dir", inputs, "-o", out)
    process = start_cli(
        *args, "--batch-size", 1, "--workers", workers, "--device", "cpu", log=tmp_path / "log"
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:  # the model's first call
        time.sleep(0.1)
    time.sleep(seconds / 2)  # inside the predict loop
    return process, args


def test_ctrl_c_stops_a_batch_as_an_interruption_not_a_crash(tmp_path: Path, installed) -> None:
    """Lightning turns Ctrl-C into SystemExit(1): that was exit 1 ("some inputs failed") with a
    crash record; it is exit 130, one line, and no crash record, and the run resumes."""
    import signal

    out = tmp_path / "out"
    process, _ = _slow_batch_in_its_loop(tmp_path, seconds=2.0, workers=0)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130, (tmp_path / "log").read_text()
    log = (tmp_path / "log").read_text()
    assert "Interrupted" in log and "internal error" not in log
    assert (
        not (out / "run.json").exists() or json.loads((out / "run.json").read_text())["status"] != "crashed"
    )


@pytest.mark.parametrize(
    ("name", "code", "said"), [("TERM", 143, "Stopped by SIGTERM"), ("INT", 130, "Interrupted")]
)
def test_a_signal_lost_in_a_fork_handler_still_stops_the_batch(
    tmp_path: Path, installed, name: str, code: int, said: str
) -> None:
    """A SIGTERM (or Ctrl-C) that arrived while the DataLoader forked its workers raised inside a
    fork handler, where Python drops exceptions: the batch ran to its end and exited 0. It stops at
    the next batch, exit 143 (130)."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    for k in range(3):
        fakes.write_input(inputs / f"vol_{k}.h5", slices=2, size=(16, 16))
    config = tmp_path / "slow.yaml"
    config.write_text("seconds: 0.2\n")
    args = ("batch", "--model", "fake_slow", "--model-config", config, "--input-dir", inputs, "-o", out)
    env = {"MRIRECON_TEST_SIGNAL_AT_FORK": name}
    result = run_cli(*args, "--batch-size", 1, "--workers", 2, "--device", "cpu", "--no-progress", env=env)
    assert result.returncode == code, result.stdout + result.stderr
    assert f"(test) SIG{name} inside a fork handler" in result.stderr
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr  # no "bug"
    assert said in result.stderr and "Reconstructed 3" not in result.stdout + result.stderr
    assert not list(out.glob("vol_*.h5"))  # stopped at its first batch


def test_a_killed_dataloader_worker_is_the_machines_limit_not_a_bug() -> None:
    from mrirecon.errors import ConfigError
    from mrirecon.inference.batch import WORKER_HINT
    from mrirecon.runtime import killed_worker

    error = killed_worker(
        RuntimeError("DataLoader worker (pid 11812) is killed by signal: Killed. "), WORKER_HINT
    )
    assert (
        isinstance(error, ConfigError)
        and "(Killed; most often the system ran out of memory)" in error.message
    )
    assert error.hint is not None and "--workers" in error.hint
    assert killed_worker(RuntimeError("bug"), WORKER_HINT) is None
    assert (
        killed_worker(ValueError("DataLoader worker (pid 1) is killed by signal: Killed."), WORKER_HINT)
        is None
    )


@pytest.mark.parametrize("whole_group", [False, True])
def test_sigterm_stops_a_batch_as_an_interruption(tmp_path: Path, installed, whole_group: bool) -> None:
    """docker stop / kill send SIGTERM to the run: Lightning only recorded it and the run went on to
    the end. systemd, SLURM and timeout send it to the process group: the killed DataLoader workers
    read as the machine running out of memory (or a bug). Both stop the run: exit 143, one line, no
    crash record, and the run continues when started again."""
    import os
    import signal

    out = tmp_path / "out"
    process, args = _slow_batch_in_its_loop(tmp_path, seconds=1.5, workers=2)
    if whole_group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 143, (tmp_path / "log").read_text()
    log = (tmp_path / "log").read_text()
    assert "Stopped by SIGTERM (a batch run continues where it stopped when run again)" in log
    assert "internal error" not in log and "ran out of memory" not in log and "Reconstructed 3" not in log
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted"  # not a bug's record
    written = len(list(out.glob("vol_*.h5")))  # how far it got is recorded (was: no counts at all)
    so_far = record["counts_so_far"]
    assert (so_far["inputs"], so_far["reconstructed"], so_far["failed"]) == (3, written, 0)
    assert 2 * written <= so_far["slices_reconstructed"] < 6
    again = run_cli(*args, *QUIET)
    assert again.returncode == 0, again.stderr
    assert len(list(out.glob("vol_*.h5"))) == 3
