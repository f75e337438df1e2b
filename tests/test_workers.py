"""DataLoader workers: one BLAS thread, no traceback for a lost main process, spawned where a fork
can hang, and a spawned worker shows warnings and uses the allocator as its process does."""

from __future__ import annotations

import contextlib
import functools
import io
import multiprocessing.resource_sharer
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from torch.utils.data import DataLoader, Dataset

from mrirecon import runtime, workers
from mrirecon.errors import Notice
from mrirecon.export.deidentify import scrub
from mrirecon.training.datamodule import ReconDataModule
from mrirecon.workers import Display, WarningDisplay, init_worker, loader_workers
from tests.helpers import blas_threads


class _Report(Dataset[Any]):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> Any:
        return blas_threads()


def test_workers_run_one_blas_thread() -> None:
    assert blas_threads(), "NumPy's BLAS is not visible to threadpoolctl"
    loader = DataLoader(_Report(), batch_size=None, num_workers=1, worker_init_fn=init_worker)
    assert next(iter(loader)) == [1] * len(blas_threads())


def test_a_distributed_run_spawns_its_workers_where_a_fork_can_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "FORK_CAN_HANG", True)
    spawned = loader_workers(2, 1)
    assert spawned["multiprocessing_context"].get_start_method() == "spawn"
    assert isinstance(spawned["worker_init_fn"], functools.partial)
    assert spawned["worker_init_fn"].func is init_worker
    forked = {"worker_init_fn": init_worker}  # PyTorch's default start: a fork
    assert loader_workers(1, 4) == forked  # one process
    assert loader_workers(2, 0) == forked  # no workers (the DataLoader refuses a context)
    monkeypatch.setattr(workers, "FORK_CAN_HANG", False)
    assert loader_workers(2, 1) == forked


def test_workers_start_while_native_threads_enter_python() -> None:
    """Before CPython 3.11.10 a fork while a native thread entered Python hung the child (a DDP
    run at a worker's start, about 1 run in 12): 11 of 150 forks here hung on Python 3.11.7."""
    script = Path(__file__).with_name("fork_churn.py")
    result = subprocess.run(
        [sys.executable, str(script), "150"], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("started 150 hung 0"), result.stdout + result.stderr


_SCAN = "/scans/DOE_JANE.h5"


class _Warns(Dataset[Any]):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> Any:
        warnings.warn(Notice(f"{_SCAN}: no 'mask' dataset"), stacklevel=1)
        warnings.warn(f"{Path(_SCAN).name} from a library", UserWarning, stacklevel=1)
        return runtime.allocator_tuned()


def test_a_spawned_worker_shows_warnings_and_tunes_memory_as_its_process_does(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A forked worker inherits the CLI's "Note: ..." lines, a de-identified run's pseudonyms and
    the allocator setting; a spawned one printed a notice in Python's format, with the input's
    real name, and allocated with glibc's defaults."""
    monkeypatch.setattr(workers, "FORK_CAN_HANG", True)
    monkeypatch.setattr(runtime, "_tuned", True)  # as after tune_allocator
    monkeypatch.delenv("MRIRECON_NO_MALLOC_TUNING", raising=False)
    shown = WarningDisplay(Display(notes=True), warnings.showwarning)  # as the CLI and --deidentify
    rewrite = functools.partial(scrub, names={_SCAN: "anon-7f3a"})
    monkeypatch.setattr(warnings, "showwarning", WarningDisplay(Display(rewrite=rewrite), shown))
    options = loader_workers(2, 1)
    assert next(iter(DataLoader(_Warns(), batch_size=None, num_workers=1, **options))) is True
    printed = capfd.readouterr().err
    assert "Note: anon-7f3a: no 'mask' dataset\n" in printed, printed
    assert "anon-7f3a from a library" in printed and "UserWarning" in printed, printed  # Python's format
    assert "DOE" not in printed and "Notice:" not in printed, printed


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
