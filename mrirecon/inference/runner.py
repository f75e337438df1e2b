"""The work of one rank: batches through the model, slices into volumes, volumes to the writer.

:class:`RankRunner` is driven by the prediction loop (:mod:`mrirecon.inference.lightning`): it is
started once the DataLoader workers exist, fed every batch, and finished at the end. It records per
volume what happened (written, failed) and how the time was spent (waiting for the loader,
computing, writing), which the run report aggregates over ranks.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import torch

from mrirecon import errors
from mrirecon.errors import ConfigError, ExportError, MriReconError
from mrirecon.inference.assemble import FinishedVolume, VolumeAssembler
from mrirecon.inference.failures import Failure, error_text
from mrirecon.inference.plan import EXPORT, RECONSTRUCT, VolumeTask
from mrirecon.inference.progress import Progress
from mrirecon.inference.slices import SampleGroup, SliceBatch
from mrirecon.inference.step import SliceResult, reconstruct_group
from mrirecon.inference.writer import VolumeWriter, WriteOutcome, WriteSettings
from mrirecon.models.base import Reconstructor

__all__ = ["RankReport", "RankRunner", "error_from_failure"]


@dataclass
class RankReport:
    """What one rank did (plain data: it travels between ranks).

    Attributes:
        rank: The rank.
        device: Where it computed.
        reconstructed: Input files reconstructed and written.
        exported: Input files whose DICOM series was exported from the finished HDF5.
        failures: Inputs that failed on this rank.
        slices: Slices that went through the model.
        seconds: Wall time from the first batch's request (the DataLoader made) to the last write.
        compute_seconds: Time in the model (and the copies to and from the device).
        loader_wait_seconds: Time the model loop waited for the DataLoader, the first batch's
            latency included.
        first_batch_seconds: The first batch's latency (worker start-up, reading, coil maps).
        write_seconds: Time the writer thread spent writing.
        fatal: The error that stopped this rank (disk full, no permission, ...), one line; "" if none.
        fatal_kind: Its class name.
    """

    rank: int
    device: str
    reconstructed: list[str] = field(default_factory=list)
    exported: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    slices: int = 0
    seconds: float = 0.0
    compute_seconds: float = 0.0
    loader_wait_seconds: float = 0.0
    first_batch_seconds: float = 0.0
    write_seconds: float = 0.0
    fatal: str = ""
    fatal_kind: str = ""


def error_from_failure(failure: Failure) -> MriReconError:
    """The :class:`MriReconError` to raise for a recorded failure (its class when it was one)."""
    cls = getattr(errors, failure.kind, None)
    if not (isinstance(cls, type) and issubclass(cls, MriReconError)):
        cls = errors.DataError
    return cls(failure.error)


class RankRunner:
    """Reconstructs the volumes of one rank.

    Args:
        model_name: Registry name (for messages).
        tasks: The rank's volumes (reconstruct and DICOM-only export tasks).
        settings: What the writer writes.
        rank: This rank.
        progress: Show a progress bar.
        max_pending_writes: Finished volumes that may wait for the writer.
    """

    def __init__(
        self,
        model_name: str,
        tasks: Sequence[VolumeTask],
        settings: WriteSettings,
        *,
        rank: int = 0,
        progress: bool = True,
        max_pending_writes: int = 2,
    ):
        self.model_name = model_name
        self.tasks = list(tasks)
        self.settings = settings
        self.rank = rank
        self.show_progress = progress
        self.max_pending_writes = max_pending_writes
        self.assembler = VolumeAssembler(self.tasks)
        self.report = RankReport(rank=rank, device="cpu")
        self._writer: VolumeWriter | None = None
        self._progress: Progress | None = None
        self._exports_submitted = False
        self._start = 0.0
        #: When the DataLoader was made (the first batch's request); set by the data module.
        self.requested: float | None = None
        self._last = 0.0
        #: Set on a fatal write error: the batch sampler stops handing out batches.
        self.stop = threading.Event()
        self.fatal: MriReconError | None = None

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called."""
        return self._writer is not None

    # -- life cycle -------------------------------------------------------------------------------
    def start(self, device: torch.device) -> None:
        """Start the writer thread (idle until the first volume) and the progress bar."""
        self.report.device = str(device)
        slices = sum(t.num_slices for t in self.tasks if t.action == RECONSTRUCT)
        self._progress = Progress(
            slices,
            len(self.tasks),
            enabled=self.show_progress,
            label="reconstructing" if self.rank == 0 else f"rank {self.rank}",
        )
        self._writer = VolumeWriter(self.settings, max_pending=self.max_pending_writes, on_done=self._written)
        now = time.perf_counter()
        self._start = self._last = self.requested if self.requested is not None else now
        self.report.first_batch_seconds = now - self._start

    def _submit_exports(self) -> None:
        """Queue the DICOM-only tasks (after the loader's workers have started: no fork mid-write)."""
        if self._exports_submitted:
            return
        self._exports_submitted = True
        for task in self.tasks:
            if task.action == EXPORT:
                self._writer_().submit(FinishedVolume(task))

    def _writer_(self) -> VolumeWriter:
        if self._writer is None:
            raise RuntimeError("RankRunner.start() was not called")
        return self._writer

    def finish(self) -> RankReport:
        """Write what is left, stop the writer and return the rank's report.

        A fatal write error (disk full, no permission, ...) does not raise here: it is in
        :attr:`fatal` and in the report, so that every rank reaches the end of the run.
        """
        writer = self._writer_()
        try:
            self._guard(self._submit_exports)
            self._guard(writer.close)
        finally:
            if self._progress is not None:
                self._progress.close()
        self.report.seconds = time.perf_counter() - self._start
        self.report.write_seconds = writer.busy_seconds
        if self.fatal is not None:
            self.report.fatal, self.report.fatal_kind = self.fatal.one_line(), type(self.fatal).__name__
        return self.report

    def _guard(self, action: Callable[[], None]) -> bool:
        """Run ``action``; a fatal write error is kept, stops the loader, and returns False."""
        if self.fatal is not None:
            return False
        try:
            action()
        except (ExportError, ConfigError) as error:
            self.fatal = error
            self.stop.set()
            return False
        return True

    def abort(self) -> None:
        """Stop the writer without writing what is queued (an error is propagating)."""
        if self._writer is not None:
            self._writer.abort()
        if self._progress is not None:
            self._progress.close()

    # -- per batch --------------------------------------------------------------------------------
    def process(self, batch: SliceBatch, model: Reconstructor, device: torch.device) -> None:
        """Reconstruct one batch; hand complete volumes to the writer. After a fatal write error
        the batches still in flight are dropped."""
        now = time.perf_counter()
        self.report.loader_wait_seconds += now - self._last
        if not self._guard(self._submit_exports):
            return
        for position, meta in batch.metadata.items():
            self.assembler.set_metadata(position, meta)
        for task, _index, kind, text in batch.errors:
            self._fail(task, Failure(os.fspath(self.tasks[task].input_path), text, kind))
        reconstructed = 0  # the slices of volumes that failed here are not counted
        for group in batch.groups:
            results = self._reconstruct(group, model, device)
            reconstructed += len(results)
            for result in results:
                finished = self.assembler.add(result)
                if finished is not None and not self._guard(partial(self._writer_().submit, finished)):
                    return
        if self._progress is not None:
            self._progress.slices(batch.num_slices)
        self.report.slices += reconstructed
        self._last = time.perf_counter()
        self.report.compute_seconds += self._last - now

    def _reconstruct(
        self, group: SampleGroup, model: Reconstructor, device: torch.device
    ) -> list[SliceResult]:
        positions = sorted(set(group.tasks))
        source = self.tasks[positions[0]].input_path if len(positions) == 1 else None
        crops = [self.tasks[t].crop_size for t in group.tasks]
        try:
            return reconstruct_group(model, self.model_name, group, device, crops, source=source)
        except MriReconError as error:
            if source is not None:
                failure = Failure(os.fspath(source), error_text(error), type(error).__name__)
                self._fail(positions[0], failure, slices=len(group.tasks))
                return []
        # several volumes in the group: retry each alone, so only the failing ones are recorded
        results: list[SliceResult] = []
        for position in positions:
            results += self._reconstruct(_subgroup(group, position), model, device)
        return results

    def _fail(self, position: int, failure: Failure, *, slices: int = 1) -> None:
        if self.assembler.fail(position, slices):
            self.report.failures.append(failure)
            if self._progress is not None:
                self._progress.volume()

    def _written(self, outcome: WriteOutcome) -> None:
        task = outcome.volume.task
        if outcome.failure is not None:
            self.report.failures.append(outcome.failure)
        elif task.action == EXPORT:
            self.report.exported.append(os.fspath(task.input_path))
        else:
            self.report.reconstructed.append(os.fspath(task.input_path))
        if self._progress is not None:
            self._progress.volume()


def _subgroup(group: SampleGroup, position: int) -> SampleGroup:
    keep = [i for i, t in enumerate(group.tasks) if t == position]
    index = torch.tensor(keep)
    return SampleGroup(
        tasks=[group.tasks[i] for i in keep],
        slices=[group.slices[i] for i in keep],
        centered=group.centered,
        masked_kspace=group.masked_kspace[index],
        mask=group.mask[index],
        coil_maps=group.coil_maps[index],
        scale=group.scale[index],
    )
