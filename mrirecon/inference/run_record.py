"""run.json, the record of a ``batch`` run: what it did when it ended, or how far it got when it
stopped (interrupted, aborted by an error, crashed), and :class:`RunResult`, what a run returns."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mrirecon._version import __version__
from mrirecon.atomic import atomic_file
from mrirecon.errors import ExportError, MriReconError
from mrirecon.inference.failures import Failure
from mrirecon.inference.loading import LoadedModel
from mrirecon.inference.options import RunOptions
from mrirecon.inference.runner import RankReport
from mrirecon.runtime import launched_rank

if TYPE_CHECKING:
    from mrirecon.inference.lightning import PredictionData

__all__ = ["RUN_JSON", "RunResult", "counts_so_far", "record_status", "still_running", "write_run_json"]

RUN_JSON = "run.json"


@dataclass
class RunResult:
    """What a run did (the same on every rank).

    Attributes:
        inputs: Inputs listed.
        skipped: Inputs whose outputs were already finished.
        reconstructed: Inputs reconstructed and written.
        exported: Inputs whose DICOM series was exported from their finished HDF5.
        failures: Inputs that failed (file, one-line error).
        slices: Slices reconstructed.
        seconds: Wall time of the run.
        world_size: Processes that took part.
        run_json, failures_csv: The reports written (None without reports).
    """

    inputs: int
    skipped: int
    reconstructed: int
    exported: int
    failures: list[Failure]
    slices: int
    seconds: float
    world_size: int
    run_json: Path | None = None
    failures_csv: Path | None = None
    ranks: list[RankReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing failed."""
        return not self.failures


def record_status(
    path: Path,
    loaded: LoadedModel,
    source: str | os.PathLike[str],
    options: RunOptions,
    started: datetime.datetime,
    status: str,
    error: BaseException | None = None,
    counts: dict[str, int] | None = None,
) -> None:
    """run.json of a run that has not ended normally: ``running`` (written at its start, so that a
    run killed with SIGKILL is not taken for the previous run's complete record), ``interrupted``
    (SIGINT, SIGTERM), ``aborted`` (a user's error or a fault stopped it: its one line) or
    ``crashed`` (a bug: an exception no input explains; what crashed, where). ``counts``: what
    this process had done when the run stopped (:func:`_counts_so_far`)."""
    import traceback

    if launched_rank() != 0:
        return
    payload: dict[str, Any] = {"mrirecon_version": __version__, "status": status}
    if isinstance(error, MriReconError):  # its one line (a de-identified run names nothing)
        payload["error"] = None if options.dicom_options.deidentify else error.one_line()
    elif error is not None:
        frames = traceback.extract_tb(error.__traceback__)
        payload["error"] = f"{type(error).__name__}: {error}"
        payload["where"] = [f"{f.filename}:{f.lineno} in {f.name}" for f in frames[-5:]]
    payload.update(
        {
            "model": loaded.name,
            "checkpoint_sha256": loaded.checkpoint_sha256 or None,
            "config": {"model": loaded.config, "run": options.summary()},
            "input": "(de-identified run)" if options.dicom_options.deidentify else os.fspath(source),
            "started": started.isoformat(timespec="seconds"),
        }
    )
    if counts is not None:
        payload["counts_so_far"] = counts
    if status != "running":
        payload["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    with contextlib.suppress(ExportError), atomic_file(path, what="run.json") as temporary:
        temporary.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def still_running(path: Path) -> bool:
    """Whether the run.json at ``path`` still says ``running`` (nothing has recorded how the run
    ended); False when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("status") == "running"
    except (OSError, ValueError, AttributeError):
        return False


def counts_so_far(data: PredictionData) -> dict[str, int] | None:
    """What this process had done when a run stopped: its plan's inputs and finished ones, the
    volumes it wrote, its failures and slices (None before the plan is made)."""
    plan, runner = data.plan, data.runner
    if plan is None:
        return None
    report = runner.report if runner is not None else None
    return {
        "inputs": plan.total_inputs,
        "skipped_finished": len(plan.finished),
        "reconstructed": len(report.reconstructed) if report else 0,
        "dicom_exported_from_hdf5": len(report.exported) if report else 0,
        "failed": len(plan.failures) + (len(report.failures) if report else 0),
        "slices_reconstructed": report.slices if report else 0,
    }


def write_run_json(
    path: Path,
    loaded: LoadedModel,
    source: str | os.PathLike[str],
    options: RunOptions,
    result: RunResult,
    started: datetime.datetime,
    fatal: RankReport | None,
) -> None:
    ranks = result.ranks
    predict_seconds = max((r.seconds for r in ranks), default=0.0)
    payload = {
        "mrirecon_version": __version__,
        "status": "aborted" if fatal else ("complete" if result.ok else "complete with failures"),
        "error": fatal.fatal if fatal else None,
        "model": loaded.name,
        "checkpoint": os.fspath(loaded.checkpoint) if loaded.checkpoint else None,
        "checkpoint_sha256": loaded.checkpoint_sha256 or None,
        "config": {"model": loaded.config, "run": options.summary()},
        "input": "(de-identified run)" if options.dicom_options.deidentify else os.fspath(source),
        "output_dir": os.fspath(options.output_dir),
        "counts": {
            "inputs": result.inputs,
            "skipped_finished": result.skipped,
            "reconstructed": result.reconstructed,
            "dicom_exported_from_hdf5": result.exported,
            "failed": len(result.failures),
            "slices_reconstructed": result.slices,
        },
        "timings": {
            "total_s": round(result.seconds, 3),
            "predict_s": round(predict_seconds, 3),
            "slices_per_s": round(result.slices / predict_seconds, 3) if predict_seconds > 0 else None,
            "compute_s": round(sum(r.compute_seconds for r in ranks), 3),
            "loader_wait_s": round(sum(r.loader_wait_seconds for r in ranks), 3),
            "first_batch_s": round(max((r.first_batch_seconds for r in ranks), default=0.0), 3),
            "write_s": round(sum(r.write_seconds for r in ranks), 3),
        },
        "world_size": result.world_size,
        "ranks": [
            {k: v for k, v in asdict(r).items() if k not in ("failures", "fatal", "fatal_kind")}
            for r in ranks
        ],
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    with atomic_file(path, what="run.json") as temporary:
        temporary.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
