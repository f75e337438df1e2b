"""Samplers and a dataset wrapper that make data order and training randomness a function of the seed.

Exact resume needs the batches after a restart to be those an uninterrupted run would have seen.
Lightning does not save random-number states, so nothing here depends on them:

- :class:`EpochShuffleSampler` shuffles with ``(seed, epoch)`` (like ``DistributedSampler``, which it
  extends: shards per rank, padded so that every rank takes the same number of steps) and yields
  ``(epoch, index)`` pairs;
- :class:`SeededDataset` seeds torch, NumPy, ``random`` and the mask function's generator from
  ``(seed, epoch, index)`` while it loads item ``index`` (the training masks are drawn then), and
  restores their previous states;
- :class:`ShardSampler` splits evaluation data over ranks without padding, so every slice is
  scored once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

__all__ = ["EpochShuffleSampler", "SeededDataset", "ShardSampler", "item_seed"]


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for item ``index`` in ``epoch`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index]).generate_state(1)[0])


class EpochShuffleSampler(DistributedSampler):
    """A shuffled shard of the training set per epoch, yielding ``(epoch, index)``.

    Args:
        dataset: The training set (only its length is used).
        num_replicas: Processes (DDP world size; 1 without DDP).
        rank: This process's rank.
        seed: The run's seed; the order of epoch ``e`` is a function of ``(seed, e)`` only.
        shuffle: Shuffle (``False``: the dataset's order).
        epoch_source: Called when an iteration starts, it returns the epoch being started; without
            it the epoch is the last one given to :meth:`set_epoch`. (Lightning builds the first
            iterator, whose workers prefetch indices at once, before it calls ``set_epoch``, and on
            resume before its loops are restored; asking the trainer's loop at iteration time is
            always right.)
    """

    def __init__(
        self,
        dataset: Any,
        *,
        num_replicas: int,
        rank: int,
        seed: int,
        shuffle: bool = True,
        epoch_source: Callable[[], int] | None = None,
    ):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.epoch_source = epoch_source

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.epoch_source is not None:
            self.set_epoch(int(self.epoch_source()))
        epoch = int(self.epoch)
        for index in super().__iter__():
            yield epoch, int(index)


def _mask_generator(dataset: Any) -> np.random.RandomState | None:
    """The random generator of a dataset's mask function (``dataset.transform.mask_func.rng``), if any.

    mrirecon's mask functions draw from their own ``RandomState`` (as fastMRI's do), not from
    NumPy's global one; the data layer's ``SliceDataset`` holds its ``ReconTransform`` as
    ``transform``.
    """
    mask_func = getattr(getattr(dataset, "transform", None), "mask_func", None)
    rng = getattr(mask_func, "rng", None)
    return rng if isinstance(rng, np.random.RandomState) else None


class SeededDataset(Dataset):
    """Loads item ``(epoch, index)`` with its randomness seeded from ``(seed, epoch, index)``.

    Seeded while the item loads: torch's, NumPy's and ``random``'s global generators and the mask
    function's own generator (``dataset.transform.mask_func.rng``, where the training masks come
    from). Their states are restored afterwards, so nothing else sees a difference. A plain
    integer index is taken as epoch 0.

    Args:
        dataset: A map-style dataset.
        seed: The run's seed.
    """

    def __init__(self, dataset: Any, seed: int):
        self.dataset = dataset
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        seed = item_seed(self.seed, epoch, index)
        mask_rng = _mask_generator(self.dataset)
        mask_state = mask_rng.get_state() if mask_rng is not None else None
        np_state = np.random.get_state()  # noqa: NPY002 (the global generator is what datasets may use)
        py_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            np.random.seed(seed)  # noqa: NPY002
            random.seed(seed)
            if mask_rng is not None:
                mask_rng.seed(seed)
            try:
                # a dataset that makes its items afresh each epoch (simulation on the fly) gets the epoch
                return self.dataset[(epoch, index) if getattr(self.dataset, "epoch_aware", False) else index]
            finally:
                np.random.set_state(np_state)  # noqa: NPY002
                random.setstate(py_state)
                if mask_rng is not None and mask_state is not None:
                    mask_rng.set_state(mask_state)


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + W, rank + 2W, …`` of a dataset: every index on exactly one rank.

    Unlike ``DistributedSampler`` it does not pad shards to equal length, so no slice is scored
    twice; ranks may take different numbers of evaluation steps (nothing synchronises per step).
    """

    def __init__(self, length: int, *, num_replicas: int = 1, rank: int = 0):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.length = int(length)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.num_replicas))
