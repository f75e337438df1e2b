"""Lightning's prediction loop, for one device or many (DDP across GPUs and nodes).

- :class:`PredictionData` plans the run on rank 0 (so every rank sees the same finished/unfinished
  state, even while other ranks start writing), broadcasts the plan, and gives each rank its own
  whole volumes (:func:`mrirecon.inference.plan.shard`): no DistributedSampler, whose padding would
  reconstruct some slices twice. Each volume is reconstructed by exactly one rank.
- :class:`PredictionModule` hands every batch to the rank's :class:`RankRunner`, which
  reconstructs, assembles volumes and writes them from a background thread.

Lightning launches the other processes (``devices > 1``: it re-runs the command once per extra
device) or joins an existing launch (``torchrun``, SLURM ``srun``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from mrirecon.errors import MriReconError
from mrirecon.inference import components
from mrirecon.inference.inputs import OutputPaths
from mrirecon.inference.loading import LoadedModel
from mrirecon.inference.options import RunOptions
from mrirecon.inference.plan import RunPlan, make_plan, shard
from mrirecon.inference.runner import RankRunner
from mrirecon.inference.slices import SliceBatch, SliceItems, VolumeBatchSampler, collate_slices
from mrirecon.inference.writer import WriteSettings
from mrirecon.models.base import Reconstructor
from mrirecon.runtime import check_shared_memory
from mrirecon.workers import loader_workers

__all__ = ["PredictionData", "PredictionJob", "PredictionModule"]

#: What one DataLoader worker of inference keeps prepared ahead, about (see ``_prefetch_factor``).
PREFETCH_BYTES = 1 << 30


@dataclass(frozen=True, eq=False)
class PredictionJob:
    """Everything every rank needs to know about a run."""

    loaded: LoadedModel
    inputs: list[Path]
    outputs: list[OutputPaths]
    options: RunOptions

    def plan(self) -> RunPlan:
        """Decide what to do with every input (rank 0 only)."""
        o = self.options
        return make_plan(
            self.inputs,
            self.outputs,
            model=self.loaded.name,
            checkpoint_sha256=self.loaded.checkpoint_sha256,
            model_config=self.loaded.config_json,
            coil_maps=o.coil_map_method,
            precision=o.precision,
            deidentify=o.dicom_options.deidentify,
            undersampling=o.undersampling,
            dicom=o.dicom,
            resume=o.resume,
            overwrite=o.overwrite,
            npy_axes=o.npy_axes,
            frame=o.frame,
        )

    def settings(self) -> WriteSettings:
        """What the writer writes."""
        o = self.options
        extra: dict[str, str | float | int | bool] = {
            "coil_maps": o.coil_map_method,
            "precision": o.precision,
        }
        if self.loaded.config_json:
            extra["model_config"] = self.loaded.config_json
        return WriteSettings(
            model=self.loaded.name,
            checkpoint_sha256=self.loaded.checkpoint_sha256,
            dicom=dataclasses.replace(o.dicom_options, overwrite=o.overwrite) if o.dicom else None,
            extra_attrs=extra,
            deidentify=o.dicom_options.deidentify,
            salt=o.dicom_options.salt,
            frame=o.frame_text,
        )


class PredictionData(pl.LightningDataModule):
    """The plan (made once, on rank 0) and this rank's DataLoader."""

    def __init__(self, job: PredictionJob):
        super().__init__()
        self.job = job
        # a rank may have no slices (one volume on two ranks, or the last volumes of a resumed run,
        # or export-only tasks): Lightning refuses such a loader unless told it is expected
        self.allow_zero_length_dataloader_with_multiple_devices = True
        self.plan: RunPlan | None = None
        self.runner: RankRunner | None = None
        self.items: SliceItems | None = None

    def setup(self, stage: str) -> None:
        trainer = self.trainer
        assert trainer is not None
        payload: tuple[str, Any] | None = None
        if trainer.global_rank == 0:
            try:
                payload = ("plan", self.job.plan())
            except MriReconError as error:
                payload = ("error", error)
        payload = trainer.strategy.broadcast(payload, src=0)
        assert payload is not None
        if payload[0] == "error":
            raise payload[1]
        self.plan = payload[1]
        tasks = shard(self.plan.tasks, trainer.world_size)[trainer.global_rank]
        options = self.job.options
        self.runner = RankRunner(
            self.job.loaded.name,
            tasks,
            self.job.settings(),
            rank=trainer.global_rank,
            progress=options.progress and trainer.global_rank == 0,
        )
        transform = components.make_transform(
            mask_func=options.undersampling.mask_func(), coil_maps=options.coil_map_method
        )
        self.items = SliceItems(tasks, transform, npy_axes=options.npy_axes, frame=options.frame)

    def predict_dataloader(self) -> DataLoader[Any]:
        assert self.items is not None and self.runner is not None and self.trainer is not None
        workers = self.job.options.workers
        self.runner.requested = time.perf_counter()  # the run's clock starts at the first request
        prefetch = self._prefetch_factor() if workers > 0 else None
        if prefetch is not None:  # what the workers will have in flight: fail now, not hang later
            total, batch = self._in_flight_bytes(workers, prefetch)
            check_shared_memory(total, largest=batch)
        return DataLoader(
            self.items,
            batch_sampler=VolumeBatchSampler(
                self.items, self.job.options.batch_size, self.runner.stop, workers=workers
            ),
            collate_fn=collate_slices,
            num_workers=workers,
            **loader_workers(self.trainer.world_size, workers),
            pin_memory=self.trainer.strategy.root_device.type == "cuda",
            prefetch_factor=prefetch,
        )

    def _largest_slice(self) -> int:
        """Complex values of the largest slice's k-space."""
        assert self.items is not None
        return max((int(np.prod(t.kspace_shape)) for t in self.items.tasks), default=0)

    def _prefetch_factor(self) -> int:
        """Batches each worker prepares ahead: 4, fewer when a batch (k-space and coil maps) is
        large, so that a worker keeps about :data:`PREFETCH_BYTES` in flight (at least one batch)."""
        batch = 2 * 8 * self._largest_slice() * self.job.options.batch_size
        return max(1, min(4, PREFETCH_BYTES // max(batch, 1)))

    def _in_flight_bytes(self, workers: int, prefetch: int) -> tuple[int, int]:
        """``(total, batch)``: an upper bound of the bytes workers queue (``prefetch`` batches of the
        largest slices per worker, k-space and coil maps, complex64; no more slices than the run
        has), and the k-space of one batch (the largest tensor a worker sends)."""
        assert self.items is not None
        largest = self._largest_slice()
        slices = sum(t.num_slices for t in self.items.tasks)
        batch = 8 * largest * min(self.job.options.batch_size, max(slices, 1))
        queued = min(self.job.options.batch_size * prefetch * workers, max(slices, 1))
        return 2 * 8 * largest * queued, batch

    def teardown(self, stage: str) -> None:
        if self.items is not None:
            self.items.close()


class PredictionModule(pl.LightningModule):
    """Wraps the reconstructor; every batch goes to the rank's runner."""

    def __init__(self, model: Reconstructor, data: PredictionData):
        super().__init__()
        self.model = model
        self._data = [data]  # a list: not registered as a submodule or hyperparameter

    @property
    def runner(self) -> RankRunner:
        runner = self._data[0].runner
        assert runner is not None, "PredictionData.setup() did not run"
        return runner

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch  # the runner moves each group itself (and keeps the CPU copies it needs)

    def predict_step(self, batch: SliceBatch, batch_idx: int) -> None:
        runner = self.runner
        if not runner.started:
            runner.start(self.device)
        runner.process(batch, self.model, self.device)
