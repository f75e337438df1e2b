"""Samplers and the seeded dataset: order and per-item randomness follow from (seed, epoch, index)."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import torch

from mrirecon.masks import create_mask_func
from mrirecon.training.samplers import EpochShuffleSampler, SeededDataset, ShardSampler


def test_epoch_shuffle_is_a_function_of_seed_and_epoch_and_shards_cover_everything() -> None:
    data = list(range(10))

    def order(seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[tuple[int, int]]:
        sampler = EpochShuffleSampler(data, num_replicas=world, rank=rank, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(3, 1) == order(3, 1)
    assert order(3, 1) != order(3, 2) and order(3, 1) != order(4, 1)
    assert all(epoch == 2 for epoch, _ in order(3, 2))
    assert sorted(i for _, i in order(3, 1)) == data
    shards = [order(3, 1, rank, 3) for rank in range(3)]
    assert len({len(s) for s in shards}) == 1  # padded: equal steps on every rank
    assert {i for s in shards for _, i in s} == set(data)


def test_shard_sampler_gives_every_index_to_exactly_one_rank() -> None:
    shards = [list(ShardSampler(11, num_replicas=4, rank=r)) for r in range(4)]
    assert sorted(i for s in shards for i in s) == list(range(11))
    assert [len(s) for s in shards] == [3, 3, 3, 2]
    assert len(ShardSampler(11, num_replicas=4, rank=3)) == 2


class _Noisy:
    """Draws from every generator a dataset might use, and a mask from its mask function."""

    def __init__(self) -> None:
        self.transform = SimpleNamespace(mask_func=create_mask_func("random", [0.08], [4.0]))

    def __len__(self) -> int:
        return 5

    def __getitem__(self, index: int) -> tuple[float, float, float, list[float]]:
        mask, _ = self.transform.mask_func((1, 8, 64))
        return float(torch.rand(())), float(np.random.rand()), random.random(), mask.flatten().tolist()  # noqa: NPY002


def _numpy_global_key() -> np.ndarray:
    """The key of NumPy's global generator (its stubs type ``get_state()`` as a dict, not the tuple)."""
    return cast(tuple[Any, ...], np.random.get_state())[1]  # noqa: NPY002


def test_seeded_dataset_items_repeat_per_epoch_and_leave_the_callers_generators_alone() -> None:
    data = SeededDataset(_Noisy(), seed=5)
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002
    random.seed(0)
    before = (torch.get_rng_state(), _numpy_global_key().copy(), random.getstate())
    first = data[(1, 2)]
    assert data[(1, 2)] == first  # mask function, torch, NumPy and random all seeded per item
    assert data[(2, 2)] != first and data[(1, 3)] != first
    assert SeededDataset(_Noisy(), seed=5)[(1, 2)] == first
    assert SeededDataset(_Noisy(), seed=6)[(1, 2)] != first
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(_numpy_global_key(), before[1])
    assert random.getstate() == before[2]
    assert data[2] == data[(0, 2)]
