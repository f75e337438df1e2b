"""How mrirecon's DataLoader workers start and what they inherit: :func:`loader_workers` gives a
DataLoader its ``worker_init_fn`` (:func:`init_worker`) and, where a fork can hang, a spawn context.

A forked worker inherits its process's settings: the allocator tuning
(:func:`mrirecon.runtime.tune_allocator`) and the way warnings are shown, the
:class:`WarningDisplay` hooks installed as ``warnings.showwarning`` (the CLI's ``Note: ...`` lines,
a de-identified run's pseudonyms). A spawned worker starts from a fresh interpreter, so
:func:`loader_workers` reads those settings off the process and hands them over as plain data
(:class:`WorkerSettings`).
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any

from mrirecon.errors import Notice
from mrirecon.runtime import allocator_tuned, limit_blas, tune_allocator

__all__ = [
    "FORK_CAN_HANG",
    "Display",
    "WarningDisplay",
    "WorkerSettings",
    "init_worker",
    "loader_workers",
]

# CPython before 3.11.10 (gh-112275): a process forked while another thread adds a Python thread
# state (native code entering Python without one) inherits the interpreter's thread-list lock held,
# and its PyOS_AfterFork_Child waits for it for ever. In a DDP process gloo's threads do so each
# time they drop the last reference to a tensor of a finished collective: a 2-process CPU run hung
# at a DataLoader worker's start about 1 run in 12.
FORK_CAN_HANG = sys.version_info < (3, 11, 10)


@dataclasses.dataclass(frozen=True)
class Display:
    """How a :class:`WarningDisplay` shows warnings.

    Attributes:
        notes: Show :class:`~mrirecon.errors.Notice` warnings as ``Note: ...`` lines (the CLI's way).
        rewrite: Applied to every warning's text (a de-identified run's pseudonyms for its input
            names); it must pickle (a module-level function, or a ``functools.partial`` of one).
    """

    notes: bool = False
    rewrite: Callable[[str], str] | None = None


class WarningDisplay:
    """A ``warnings.showwarning`` that shows warnings as ``display`` says (their text rewritten;
    notices as ``Note: ...`` lines), handing the others to ``shown``."""

    def __init__(self, display: Display, shown: Callable[..., Any]) -> None:
        self.display = display
        self.shown = shown

    def __call__(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        text = str(message) if self.display.rewrite is None else self.display.rewrite(str(message))
        if self.display.notes and issubclass(category, Notice):
            sys.stderr.write(f"Note: {text}\n")
            sys.stderr.flush()
        else:
            self.shown(text, category, filename, lineno, file, line)


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    """What a spawned worker takes over from the process that loads through it.

    Attributes:
        displays: The process's :class:`WarningDisplay` hooks, outermost first.
        allocator: Apply :func:`~mrirecon.runtime.tune_allocator`.
    """

    displays: tuple[Display, ...] = ()
    allocator: bool = False

    @classmethod
    def of_this_process(cls) -> WorkerSettings:
        """The settings this process runs with."""
        displays = []
        show = warnings.showwarning
        while isinstance(show, WarningDisplay):
            displays.append(show.display)
            show = show.shown
        return cls(tuple(displays), allocator_tuned())

    def apply(self) -> None:
        """Make this process show warnings and use its allocator as described."""
        if self.allocator:
            tune_allocator()
        for display in reversed(self.displays):
            warnings.showwarning = WarningDisplay(display, warnings.showwarning)


def loader_workers(processes: int, workers: int) -> dict[str, Any]:
    """A DataLoader's ``worker_init_fn`` and ``multiprocessing_context`` for its ``workers`` in a
    run over ``processes`` processes.

    The workers are forked (PyTorch's default) except in a distributed run on a Python whose fork
    can hang there (:data:`FORK_CAN_HANG`): there they are spawned, fresh interpreters that import
    what the dataset needs (a few seconds per worker, once per run: the workers persist), receive
    the dataset pickled and take this process's :class:`WorkerSettings`. A spawned worker is still
    the loading process's child, so it exits when that process dies (PyTorch's watchdog), as a
    forked one does.
    """
    if workers > 0 and processes > 1 and FORK_CAN_HANG:
        _quiet_resource_tracker()
        return {
            "worker_init_fn": functools.partial(init_worker, settings=WorkerSettings.of_this_process()),
            "multiprocessing_context": multiprocessing.get_context("spawn"),
        }
    return {"worker_init_fn": init_worker}


def init_worker(worker_id: int, settings: WorkerSettings | None = None) -> None:  # noqa: ARG001 (the DataLoader passes it)
    """``worker_init_fn`` of mrirecon's DataLoaders: one BLAS thread, and no traceback for a lost
    main process, in each worker; a spawned worker's ``settings`` applied.

    PyTorch gives each worker one torch thread but leaves NumPy's OpenBLAS with one thread per
    core. The workers' NumPy work is small matrix products (the simulator's resampling and
    smooth fields, coil combinations), for which a second thread gains nothing and, while the
    other cores are busy (training, other workers), waits on a descheduled thread: a 384 × 9 ×
    384 product took 22 ms instead of 0.14 ms on a busy two-core machine.

    A worker hands the main process each batch's shared memory through a thread of
    ``multiprocessing.resource_sharer``; when the main process stops (SIGTERM, Ctrl-C) while it
    fetches one, that thread printed a ``ConnectionResetError`` traceback into the user's log
    after "Stopped by SIGTERM". Those connection errors are dropped; every other exception in the
    worker is printed as before.
    """
    limit_blas(1)
    sys.excepthook = _QuietLostPeer(sys.excepthook)
    if settings is not None:
        settings.apply()


class _QuietLostPeer:
    """A ``sys.excepthook`` that drops connection errors of the resource sharer's thread."""

    def __init__(self, hook: Callable[..., Any]) -> None:
        self.hook = hook

    def __call__(self, kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        lost = issubclass(kind, ConnectionError) and any(
            frame.f_code.co_filename.endswith("resource_sharer.py") for frame, _ in traceback.walk_tb(tb)
        )
        if not lost:
            self.hook(kind, value, tb)


def _quiet_resource_tracker() -> None:
    """Start ``multiprocessing``'s resource tracker without its warning about leaked semaphores.

    Spawned workers' queues use named semaphores, which the tracker unlinks when the process that
    made them dies without doing so. Lightning ends a stopped DDP run's other processes with
    SIGKILL, after which the tracker printed "There appear to be 22 leaked semaphore objects to
    clean up at shutdown" in the user's log below "Stopped by SIGTERM", while it cleaned them up.
    """
    from multiprocessing import resource_tracker

    saved = os.environ.get("PYTHONWARNINGS")
    quiet = "ignore:resource_tracker:UserWarning"  # the tracker reads it when it starts
    os.environ["PYTHONWARNINGS"] = f"{saved},{quiet}" if saved else quiet
    try:
        resource_tracker.ensure_running()
    finally:
        if saved is None:
            del os.environ["PYTHONWARNINGS"]
        else:
            os.environ["PYTHONWARNINGS"] = saved
