"""Process settings: BLAS threads (configure_threads), signals and interruptions."""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest
import torch
from threadpoolctl import threadpool_limits

from mrirecon.runtime import configure_threads
from tests.helpers import blas_threads


@pytest.mark.parametrize("threads", [1, 2])
def test_configure_threads_sets_torch_and_blas(threads: int) -> None:
    before_torch, before_blas = torch.get_num_threads(), max(blas_threads())
    try:
        assert configure_threads(threads) == threads
        assert set(blas_threads()) == {threads}
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
        # a SIGKILLed peer printed nothing: the hint said its error "is printed above"; and it names
        # how the distributed runs (train, batch) continue, not simulate's
        assert error.hint is not None and "a killed process prints none" in error.hint
        assert "--resume" in error.hint and "--overwrite" not in error.hint
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


def test_a_sigterm_sets_torchs_sigchld_handler_aside_at_once() -> None:
    """Workers a SIGTERM to the process group reached died during Lightning's shutdown, before the
    stop reached stoppable: torch's SIGCHLD handler raised inside a weakref callback and its
    traceback ("Exception ignored in ...") came after "Detected KeyboardInterrupt" in the log."""
    import os
    import signal

    from mrirecon.runtime import TERMINATED, Terminated, interruptible

    def torchs(signum: int, frame: object) -> None:
        raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Terminated.")

    previous = signal.signal(signal.SIGCHLD, torchs)
    try:
        with pytest.raises(Terminated), interruptible():
            assert signal.getsignal(signal.SIGCHLD) is torchs  # a run keeps it until a stop
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # (the handler raises before)
        assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGCHLD, previous)
        TERMINATED.clear()


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
