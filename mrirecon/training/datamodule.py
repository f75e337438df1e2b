"""The LightningDataModule: train/val/test datasets of ReconSample slices and their loaders.

Any map-style datasets of :class:`~mrirecon.data.sample.ReconSample` will do (tests use in-memory
ones; they must pickle where a distributed run spawns its workers, :mod:`mrirecon.workers`);
:func:`mrirecon.training.sources.build_datasets` makes them from a config's folders or manifests.
The loaders choose their own samplers (Lightning's ``use_distributed_sampler`` is off):

- training: :class:`~mrirecon.training.samplers.EpochShuffleSampler` over a
  :class:`~mrirecon.training.samplers.SeededDataset`: order and training masks follow from
  ``(seed, epoch, index)``, so a resumed run sees the batches an uninterrupted run would;
- validation and test: :class:`~mrirecon.training.samplers.ShardSampler`: every slice on one rank,
  none repeated; validation masks are seeded per volume by the data transform.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from mrirecon.data.dataset import collate_samples
from mrirecon.training.samplers import EpochShuffleSampler, SeededDataset, ShardSampler
from mrirecon.workers import loader_workers

__all__ = ["ReconDataModule"]


class ReconDataModule(pl.LightningDataModule):
    """Loaders over ready-made datasets.

    Args:
        datasets: Split (``train``, ``val``, ``test``, ``predict``) → map-style dataset of
            ReconSample; missing splits have no loader.
        batch_size: Training slices per batch and device.
        val_batch_size: Evaluation slices per batch and device.
        num_workers: Worker processes per loader.
        pin_memory: Pin host memory (applied only when training on a GPU).
        seed: The run's seed (data order and training masks).
    """

    def __init__(
        self,
        datasets: Mapping[str, Any],
        *,
        batch_size: int = 1,
        val_batch_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        unknown = set(datasets) - {"train", "val", "test", "predict"}
        if unknown:
            raise ValueError(f"unknown splits {sorted(unknown)}; known: train, val, test, predict")
        self.datasets = dict(datasets)
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed

    def _ranks(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _pin(self) -> bool:
        trainer = self.trainer
        on_gpu = trainer is not None and trainer.strategy.root_device.type == "cuda"
        return self.pin_memory and on_gpu and torch.cuda.is_available()

    def _loader(self, dataset: Any, sampler: Any, batch_size: int) -> DataLoader[Any]:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            # the per-slice numbers as lists (the module reads them with torch.as_tensor): fewer
            # one-number tensors to pass from the workers (docs/data.md)
            collate_fn=collate_samples,
            num_workers=self.num_workers,
            **loader_workers(self._ranks()[0], self.num_workers),
            pin_memory=self._pin(),
            persistent_workers=self.num_workers > 0,
        )

    def _split(self, split: str) -> Any:
        if split not in self.datasets:
            raise ValueError(f"no {split} data: give data.{split} (or data.manifest) in the config")
        return self.datasets[split]

    def train_dataloader(self) -> DataLoader[Any]:
        dataset = SeededDataset(self._split("train"), self.seed)
        world, rank = self._ranks()
        trainer = self.trainer
        sampler = EpochShuffleSampler(
            dataset,
            num_replicas=world,
            rank=rank,
            seed=self.seed,
            # the epoch Lightning is starting (the count it passes to set_epoch), read when an
            # iteration starts: right on resume too, where the first iterator predates set_epoch
            epoch_source=(lambda: trainer.fit_loop.epoch_progress.current.processed) if trainer else None,  # type: ignore[attr-defined]
        )
        return self._loader(dataset, sampler, self.batch_size)

    def _eval_loader(self, split: str) -> DataLoader[Any]:
        dataset = self._split(split)
        world, rank = self._ranks()
        return self._loader(
            dataset, ShardSampler(len(dataset), num_replicas=world, rank=rank), self.val_batch_size
        )

    def val_dataloader(self) -> DataLoader[Any]:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader[Any]:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader[Any]:
        return self._eval_loader("predict")
