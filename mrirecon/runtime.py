"""Process-level settings that make CPU runs faster: the allocator and the thread count.

PyTorch frees large CPU tensors back to the kernel (glibc returns every allocation above 32 MiB
with ``munmap``), so the next tensor of that size page-faults all over again; on a two-core machine
that costs a large share of an FFT-bound step. :func:`tune_allocator` tells glibc to keep freed
memory for reuse (no ``mmap`` for large blocks, no trimming). The CLI and the benchmarks call it
once at start-up; library code never changes process settings behind the caller's back.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = [
    "CONTINUES",
    "INTERRUPTED",
    "TERMINATED",
    "Terminated",
    "allocator_tuned",
    "check_interrupted",
    "check_shared_memory",
    "configure_threads",
    "interruptible",
    "interruption",
    "killed_worker",
    "launched_rank",
    "leave_dying_workers",
    "lightning_info_silenced",
    "lightning_leaves_sigterm",
    "limit_blas",
    "lost_peer",
    "stoppable",
    "tune_allocator",
]

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4
_tuned = False


def tune_allocator() -> bool:
    """Keep freed heap memory for reuse (glibc only). Returns whether the setting was applied.

    Set ``MRIRECON_NO_MALLOC_TUNING=1`` to leave the allocator alone.
    """
    global _tuned
    if _tuned:
        return True
    if os.environ.get("MRIRECON_NO_MALLOC_TUNING", "") not in ("", "0"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    mallopt(_M_TOP_PAD, 64 << 20)
    _tuned = ok
    return ok


def allocator_tuned() -> bool:
    """Whether :func:`tune_allocator` applied its setting in this process."""
    return _tuned


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op threads and NumPy's/SciPy's BLAS threads (``None`` keeps the
    defaults); returns torch's number in use."""
    import torch

    if threads is not None and threads > 0:
        torch.set_num_threads(threads)
        limit_blas(threads)
    return torch.get_num_threads()


def limit_blas(threads: int) -> None:
    """At most ``threads`` threads for NumPy's and SciPy's BLAS in this process."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads, user_api="blas")


@contextlib.contextmanager
def lightning_info_silenced() -> Iterator[None]:
    """Raise Lightning's loggers to WARNING for the block: no device summaries, tips or hints."""
    import pytorch_lightning  # noqa: F401  (it sets its loggers' levels when imported)

    names = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def launched_rank() -> int:
    """This process's rank as its launcher set it before any process group exists: torchrun
    (``RANK``), SLURM (``SLURM_PROCID``), Lightning's DDP children (``NODE_RANK``, ``LOCAL_RANK``);
    0 for a process started alone. Only "zero or not" is meaningful across launchers."""
    for name in ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) != 0:
            return int(value)
    return 0


def check_shared_memory(nbytes: int, largest: int | None = None) -> None:
    """Check that this process can hand ``nbytes`` to DataLoader workers through shared memory.

    DataLoader workers send their tensors through ``/dev/shm``. Where it is too small (Docker's
    default 64 MB) or a file-size limit applies, the workers fail and the main process waits for
    them forever; checking first turns that into one clear error in milliseconds: the free space
    of ``/dev/shm`` against ``nbytes``, and one shared tensor of ``largest`` bytes (the largest a
    worker sends; at most 256 MiB), which a file-size limit would refuse. Nothing of ``nbytes``
    itself is allocated (that took seconds for gigabytes).

    Raises:
        ConfigError: naming the cause and the two fixes.
    """
    import torch

    from mrirecon.errors import ConfigError

    hint = (
        "give it more shared memory (docker run --shm-size 8g; a larger /dev/shm), "
        "or read in the main process with --num-workers 0"
    )
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:  # no /dev/shm (not Linux): the probe below decides
        stat = None
    if stat is not None and stat.f_bavail * stat.f_frsize < nbytes:
        free = stat.f_bavail * stat.f_frsize
        raise ConfigError(
            f"DataLoader workers cannot share {nbytes / 2**20:.0f} MB of memory with this process "
            f"(/dev/shm has {free / 2**20:.0f} MB free)",
            hint=hint,
        )
    size = max(1, min(int(nbytes), int(largest if largest is not None else nbytes), 256 * 2**20))
    try:
        probe = torch.empty(size, dtype=torch.uint8).share_memory_()
    except (RuntimeError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"DataLoader workers cannot share {nbytes / 2**20:.0f} MB of memory with this process ({reason})",
            hint=hint,
        ) from error
    del probe


class Terminated(KeyboardInterrupt):
    """The run was stopped from outside with SIGTERM (``docker stop``, systemd, SLURM, ``timeout``,
    ``kill``): an interruption like Ctrl-C, not a failure; a batch run continues when run again."""


#: Set while a run handles SIGTERM and one has arrived (Lightning turns the interruption into
#: ``SystemExit(1)``, and a DataLoader worker the signal reached dies of it: both are read by this).
TERMINATED = threading.Event()
#: Set while a run handles Ctrl-C (SIGINT) and one has arrived.
INTERRUPTED = threading.Event()


def _stop(signum: int, frame: object) -> None:  # noqa: ARG001 (the signal module passes them)
    """:func:`interruptible`'s SIGTERM handler: the run stops as on Ctrl-C. Workers a SIGTERM to
    the process group reached die at once: torch's SIGCHLD handler is set aside here, before
    Lightning's shutdown, where it raised about them inside a weakref callback ("Exception ignored
    in ... RuntimeError: DataLoader worker (pid 31072) is killed by signal: Terminated" in the log)."""
    leave_dying_workers()
    TERMINATED.set()
    raise Terminated()


def _interrupt(signum: int, frame: object) -> None:  # noqa: ARG001 (the signal module passes them)
    """:func:`interruptible`'s SIGINT handler: Python's own (KeyboardInterrupt), remembered."""
    INTERRUPTED.set()
    raise KeyboardInterrupt


def _default_handlers_in_child() -> None:
    """A process forked while :func:`interruptible` handles the signals (a DataLoader worker) gets
    the defaults back: it dies of SIGTERM as processes do, quietly (raising in it would print a
    traceback from wherever it is, its exit handlers, say), and its parent reports the stop."""
    if signal.getsignal(signal.SIGTERM) is _stop:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) is _interrupt:
        signal.signal(signal.SIGINT, signal.default_int_handler)


os.register_at_fork(after_in_child=_default_handlers_in_child)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, SIGTERM stops the run as Ctrl-C does (raising :class:`Terminated` in the
    main thread), instead of being ignored (Lightning only records it) or killing the DataLoader
    workers into an error that reads as the machine's memory; and a SIGTERM or Ctrl-C whose
    exception Python dropped still stops it (:func:`check_interrupted`). Ctrl-C keeps Python's
    behaviour otherwise, and is left alone where it is ignored (a job started in the background).
    A no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    TERMINATED.clear()
    INTERRUPTED.clear()
    previous = signal.signal(signal.SIGTERM, _stop)
    previous_int = signal.getsignal(signal.SIGINT)
    ctrl_c = previous_int is signal.default_int_handler
    if ctrl_c:
        signal.signal(signal.SIGINT, _interrupt)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _QuietDroppedStop(previous_hook)
    try:
        yield
        check_interrupted()  # a signal whose exception was lost still stops the run
    finally:
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGTERM, previous)
        if ctrl_c:  # (Lightning ignores Ctrl-C while it shuts down after one)
            signal.signal(signal.SIGINT, previous_int)
        TERMINATED.clear()  # what the block's signals explained is said; nothing after them is
        INTERRUPTED.clear()


class _QuietDroppedStop:
    """A ``sys.unraisablehook`` that says nothing of the stop a signal handler raised where Python
    drops exceptions (its "Exception ignored in ..." traceback read as a bug): the signal is
    remembered, and :func:`check_interrupted` raises it again. Anything else goes to ``hook``."""

    def __init__(self, hook: Callable[[Any], object]) -> None:
        self.hook = hook

    def __call__(self, unraisable: Any) -> None:
        if not (isinstance(unraisable.exc_value, KeyboardInterrupt) and _stop_pending()):
            self.hook(unraisable)


def _stop_pending() -> bool:
    """Whether a SIGTERM or a Ctrl-C arrived in the :func:`interruptible` block."""
    return TERMINATED.is_set() or INTERRUPTED.is_set()


def check_interrupted() -> None:
    """Raise :class:`Terminated` if a SIGTERM, or ``KeyboardInterrupt`` if a Ctrl-C, arrived in an
    :func:`interruptible` block.

    A handler raises where the main thread happens to be, and Python drops an exception raised in a
    fork handler or a finaliser (printing "Exception ignored in ..."): a SIGTERM that arrived while
    a DataLoader forked its workers was lost, and the batch ran to its end and exited 0. The block
    calls this at its end, and Lightning runs call it before every batch
    (:func:`lightning_leaves_sigterm`), so such a run stops at its next batch; the block does not
    print the dropped exception.
    """
    if TERMINATED.is_set():
        raise Terminated()
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


def lightning_leaves_sigterm(trainer: Any) -> None:
    """Keep Lightning from installing its SIGTERM handler on ``trainer`` (SIGUSR1 for SLURM's
    requeue is still its own): that handler broadcasts to the other processes from inside the
    signal handler, so a distributed run whose processes are in another collective when the signal
    arrives waits there for ever. :func:`interruptible` handles SIGTERM instead, and a callback
    added to ``trainer`` calls :func:`check_interrupted` before every batch."""
    trainer.callbacks.append(_stop_check_class()())
    connector = getattr(trainer, "_signal_connector", None)
    if connector is None:
        return
    register = connector.register_signal_handlers

    def register_all_but_sigterm() -> None:
        previous = signal.getsignal(signal.SIGTERM)
        register()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)

    connector.register_signal_handlers = register_all_but_sigterm


@functools.cache
def _stop_check_class() -> type:
    """A Lightning callback that calls :func:`check_interrupted` before every batch of every loop
    (made on first use: this module does not import Lightning)."""
    from pytorch_lightning.callbacks import Callback

    class StopCheck(Callback):
        """Stops the run at its next batch after a SIGTERM or Ctrl-C whose exception was lost."""

        def on_train_batch_start(self, *args: Any, **kwargs: Any) -> None:
            check_interrupted()

        def on_validation_batch_start(self, *args: Any, **kwargs: Any) -> None:
            check_interrupted()

        def on_test_batch_start(self, *args: Any, **kwargs: Any) -> None:
            check_interrupted()

        def on_predict_batch_start(self, *args: Any, **kwargs: Any) -> None:
            check_interrupted()

    return StopCheck


def killed_worker(error: BaseException, hint: str) -> BaseException | None:
    """A DataLoader worker killed from outside (the out-of-memory killer, most often) is the
    machine's limit, not a bug: a ``ConfigError`` with ``hint`` (what to lower); one killed by
    SIGTERM (sent to the run's process group: systemd, SLURM, ``timeout``) stopped the run as
    SIGTERM does (:class:`Terminated`). None for any other error."""
    from mrirecon.errors import ConfigError

    match = re.search(r"DataLoader worker \(pid \d+\) is killed by signal: (\w+)", str(error))
    if not isinstance(error, RuntimeError) or match is None:
        return None
    if TERMINATED.is_set() or match.group(1) == "Terminated":
        return Terminated()
    return ConfigError(
        f"a DataLoader worker was killed ({match.group(1)}; most often the system ran out of memory)",
        hint=hint,
    )


def interruption(error: BaseException, worker_hint: str) -> BaseException | None:
    """What a Lightning run stopped by ``error`` raises instead, when ``error`` is how Lightning or
    the DataLoader report an interruption (None: the error itself). Lightning turns Ctrl-C and its
    own SIGTERM stop into ``SystemExit(1)``: :class:`Terminated` after a SIGTERM, else
    ``KeyboardInterrupt`` (the CLI exits 143 or 130, not 1 or 0); a killed DataLoader worker is
    :func:`killed_worker`'s."""
    if isinstance(error, SystemExit) and _lightning_interrupted(error):
        return Terminated() if TERMINATED.is_set() else KeyboardInterrupt()
    return killed_worker(error, worker_hint)


def _lightning_interrupted(error: SystemExit) -> bool:
    """Lightning's exit after an interruption: ``sys.exit(1)`` while handling a KeyboardInterrupt
    (Ctrl-C, or :class:`Terminated`), its own ``SIGTERMException``, or any exit after a SIGTERM or
    a Ctrl-C; not another ``sys.exit`` (a callback's ``sys.exit(0)`` stays one)."""
    return (
        _stop_pending()
        or isinstance(error.__context__, KeyboardInterrupt)
        or type(error).__name__ == "SIGTERMException"
    )


#: How each kind of run continues after it stopped (the CLI's stop message, the lost-peer hint).
CONTINUES = {
    "train": "mrirecon train -o <its output folder> --resume continues it from its last checkpoint, if it "
    "wrote one",
    "batch": "a batch run continues where it stopped when run again",
    "simulate": "the same command with --overwrite simulates the dataset again from the start",
}


def lost_peer(error: BaseException) -> BaseException | None:
    """In a distributed run, another process stopped (its own error printed by it) and this one's
    collective failed: a one-line ``ConfigError`` saying so, not a bug's traceback. None for any
    other error."""
    from mrirecon.errors import ConfigError

    text = str(error)
    if (
        not isinstance(error, RuntimeError)
        or not re.search(
            r"[Cc]onnection (closed|reset) by peer|[Bb]roken pipe|NCCL communicator was aborted", text
        )
        or "Watchdog caught collective operation timeout" in text  # a hang, not a stopped peer
    ):
        return None
    first = text.strip().splitlines()[0][:200] if text.strip() else type(error).__name__
    again = "; ".join(CONTINUES[kind] for kind in ("train", "batch"))  # the distributed runs
    return ConfigError(
        f"another process of this distributed run stopped, and this one with it ({first})",
        hint=f"its error is above if it could print one (a killed process prints none); fix it and start "
        f"the run again: {again}",
    )


T = TypeVar("T")


def stoppable(step: Callable[[], T], *, worker_hint: str, distributed: bool = False) -> T:
    """``step()`` (a Lightning fit, test or predict), with the interruptions it reports raised as
    :func:`interruption` says, and in a distributed run a lost peer as :func:`lost_peer` says."""
    try:
        return step()
    except BaseException as error:
        replacement = interruption(error, worker_hint)
        if replacement is None and distributed and isinstance(error, RuntimeError):
            # after a SIGTERM a collective fails because the others stopped too: the same stop
            replacement = Terminated() if TERMINATED.is_set() else lost_peer(error)
        if isinstance(replacement or error, KeyboardInterrupt):
            leave_dying_workers()  # the next one's death would raise on the way out
        if replacement is not None:
            raise replacement from error
        raise


def leave_dying_workers() -> None:
    """Set torch's SIGCHLD handler aside once a run stops: DataLoader workers the signal also
    reached die while this process exits, and that handler raises about each of them from wherever
    the main thread is (click's exit, the exit handlers): a traceback, and exit 3, after the stop
    was decided. Main thread only; the process is ending."""
    if hasattr(signal, "SIGCHLD") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
