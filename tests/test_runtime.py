"""Process settings: BLAS threads in DataLoader workers and with configure_threads."""

from __future__ import annotations

import contextlib
import io
import multiprocessing.resource_sharer
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits
from torch.utils.data import DataLoader, Dataset

from mrirecon import runtime
from mrirecon.runtime import configure_threads, init_worker
from mrirecon.training.datamodule import ReconDataModule


def _blas_threads() -> list[int]:
    return [int(pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"]


class _Report(Dataset[Any]):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> Any:
        return _blas_threads()


def test_workers_run_one_blas_thread() -> None:
    assert _blas_threads(), "NumPy's BLAS is not visible to threadpoolctl"
    loader = DataLoader(_Report(), batch_size=None, num_workers=1, worker_init_fn=init_worker)
    assert next(iter(loader)) == [1] * len(_blas_threads())


def test_a_distributed_run_spawns_its_workers_where_a_fork_can_hang(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "FORK_CAN_HANG", True)
    context = runtime.worker_context(2, 1)
    assert context is not None and context.get_start_method() == "spawn"
    assert runtime.worker_context(1, 4) is None  # one process: PyTorch's fork
    assert runtime.worker_context(2, 0) is None  # no workers (the DataLoader refuses a context)
    monkeypatch.setattr(runtime, "FORK_CAN_HANG", False)
    assert runtime.worker_context(2, 1) is None


def test_workers_start_while_native_threads_enter_python() -> None:
    """Before CPython 3.11.10 a fork while a native thread entered Python hung the child (a DDP
    run at a worker's start, about 1 run in 12): 11 of 150 forks here hung on Python 3.11.7."""
    script = Path(__file__).with_name("fork_churn.py")
    result = subprocess.run(
        [sys.executable, str(script), "150"], capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("started 150 hung 0"), result.stdout + result.stderr


def _printed(error: BaseException, filename: str) -> str:
    """What the worker's ``sys.excepthook`` prints for ``error`` raised in code of ``filename``."""
    try:
        exec(compile("raise error", filename, "exec"), {"error": error})
    except BaseException:  # any exception is handed to the hook, as a thread hands it
        info = sys.exc_info()
    with contextlib.redirect_stderr(io.StringIO()) as stderr:
        sys.excepthook(*info)
    return stderr.getvalue()


class _Hooked(Dataset[Any]):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> Any:
        sharer = multiprocessing.resource_sharer.__file__
        return [
            _printed(ConnectionResetError(104, "Connection reset by peer"), sharer),
            _printed(BrokenPipeError(32, "Broken pipe"), sharer),
            _printed(ConnectionResetError(104, "Connection reset by peer"), __file__),
            _printed(ValueError("a bug"), sharer),
        ]


def test_workers_print_no_traceback_for_a_main_process_that_stopped() -> None:
    """A worker's resource-sharer thread printed ConnectionResetError after "Stopped by SIGTERM"
    when the main process stopped while it fetched a batch; other errors are still printed."""
    loader = DataLoader(_Hooked(), batch_size=None, num_workers=1, worker_init_fn=init_worker)
    sharer_reset, sharer_pipe, elsewhere, bug = next(iter(loader))
    assert sharer_reset == "" and sharer_pipe == ""
    assert "Traceback" in elsewhere and "ConnectionResetError" in elsewhere
    assert "Traceback" in bug and "ValueError: a bug" in bug


def test_training_loaders_use_it() -> None:
    module = ReconDataModule({"train": _Report()}, batch_size=1, val_batch_size=1, num_workers=1)
    assert module.train_dataloader().worker_init_fn is init_worker


@pytest.mark.parametrize("threads", [1, 2])
def test_configure_threads_sets_torch_and_blas(threads: int) -> None:
    before_torch, before_blas = torch.get_num_threads(), max(_blas_threads())
    try:
        assert configure_threads(threads) == threads
        assert set(_blas_threads()) == {threads}
    finally:
        torch.set_num_threads(before_torch)
        threadpool_limits(before_blas, user_api="blas")


def test_shared_memory_is_checked_from_its_free_space_without_allocating_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os
    import time
    from types import SimpleNamespace

    from mrirecon.errors import ConfigError
    from mrirecon.runtime import check_shared_memory

    stat = os.statvfs("/dev/shm")
    nbytes = min(2**30, stat.f_bavail * stat.f_frsize // 2)
    start = time.perf_counter()
    check_shared_memory(nbytes, largest=2**20)  # up to a gigabyte in flight: checked, not allocated
    assert time.perf_counter() - start < 1.0
    monkeypatch.setattr(os, "statvfs", lambda _path: SimpleNamespace(f_bavail=16, f_frsize=2**22))
    with pytest.raises(ConfigError, match=r"cannot share 1024 MB .*\(/dev/shm has 64 MB free\)"):
        check_shared_memory(2**30, largest=2**20)


def test_a_lost_distributed_peer_is_one_line_not_a_bug() -> None:
    """When one process of a DDP run stops on an error, the others' collectives fail with gloo's
    or NCCL's connection error: said in one line (exit 2), not reported as a bug."""
    from mrirecon.errors import ConfigError
    from mrirecon.runtime import lost_peer

    for text in (
        "[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:41011",
        "Connection reset by peer",
        "NCCL communicator was aborted on rank 1",
    ):
        error = lost_peer(RuntimeError(text))
        assert (
            isinstance(error, ConfigError)
            and "another process of this distributed run stopped" in error.message
        )
    assert lost_peer(RuntimeError("shape mismatch")) is None
    assert lost_peer(ValueError("Connection closed by peer")) is None


def test_a_stopped_run_sets_torchs_sigchld_handler_aside_before_it_raises() -> None:
    """Workers the SIGTERM also reached died while the stop travelled up through click: torch's
    SIGCHLD handler raised "DataLoader worker killed" there, and the CLI said "internal error"
    (exit 3) instead of "Stopped by SIGTERM". A failure that is no stop leaves the handler alone."""
    import signal

    from mrirecon.runtime import stoppable

    def torchs(signum: int, frame: object) -> None:
        raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Terminated.")

    def stopped() -> None:
        raise KeyboardInterrupt

    def failed() -> None:
        raise ValueError("a bug")

    previous = signal.signal(signal.SIGCHLD, torchs)
    try:
        with pytest.raises(ValueError):
            stoppable(failed, worker_hint="x")
        assert signal.getsignal(signal.SIGCHLD) is torchs
        with pytest.raises(KeyboardInterrupt):
            stoppable(stopped, worker_hint="x")
        assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGCHLD, previous)


def test_only_lightnings_exit_after_an_interruption_is_an_interruption() -> None:
    """Lightning ends a Ctrl-C with ``sys.exit(1)`` inside its KeyboardInterrupt handler: that is
    an interruption (exit 130); a plain ``sys.exit(0)`` of a callback stays an exit."""
    import sys

    from mrirecon.runtime import stoppable

    def lightning_after_ctrl_c() -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            sys.exit(1)

    with pytest.raises(KeyboardInterrupt):
        stoppable(lightning_after_ctrl_c, worker_hint="x")
    with pytest.raises(SystemExit) as exited:
        stoppable(lambda: sys.exit(0), worker_hint="x")
    assert exited.value.code == 0 and not isinstance(exited.value, KeyboardInterrupt)


def test_a_sigterm_is_forgotten_when_its_block_ends_and_a_watchdog_timeout_is_no_lost_peer() -> None:
    import os
    import signal
    import time

    from mrirecon.runtime import TERMINATED, Terminated, interruptible, lost_peer

    with pytest.raises(Terminated), interruptible():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1.0)  # the handler raises here at the latest
    assert not TERMINATED.is_set()
    hang = RuntimeError(
        "NCCL communicator was aborted on rank 0. Watchdog caught collective operation timeout"
    )
    assert lost_peer(hang) is None


class _SignalledWhileFinalised:
    def __del__(self) -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1.0)  # the handler raises here, in a finaliser: Python drops the exception


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # not printed either
def test_a_sigterm_whose_exception_python_dropped_still_stops_the_block() -> None:
    from mrirecon.runtime import TERMINATED, Terminated, interruptible

    with pytest.raises(Terminated), interruptible():
        _SignalledWhileFinalised()  # made and finalised at once
        assert TERMINATED.is_set()  # the signal arrived; its exception did not get here
    assert not TERMINATED.is_set()


def test_only_a_dropped_stop_is_kept_from_the_unraisable_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from mrirecon.runtime import interruptible

    seen: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    with interruptible():  # no signal has arrived: an interrupt from elsewhere is reported
        sys.unraisablehook(SimpleNamespace(exc_value=KeyboardInterrupt()))
        sys.unraisablehook(SimpleNamespace(exc_value=ValueError("a finaliser's bug")))
    assert [type(u.exc_value) for u in seen] == [KeyboardInterrupt, ValueError]
    assert sys.unraisablehook == seen.append  # given back


def test_a_process_forked_in_an_interruptible_block_dies_of_sigterm_quietly() -> None:
    """DataLoader workers are forked while the run handles SIGTERM: they get the default action
    back, so SIGTERM to the process group kills them silently (raising in them printed a
    traceback from their exit handlers); the parent reports the stop."""
    import os
    import signal

    from mrirecon.runtime import interruptible

    with interruptible():
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the child: report its handler and wait to be killed
            os.write(write, b"default" if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else b"other")
            time.sleep(30)
            os._exit(0)
        assert os.read(read, 16) == b"default"
        os.kill(child, signal.SIGTERM)
        _, status = os.waitpid(child, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
        os.close(read)
        os.close(write)
