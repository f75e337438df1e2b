"""Slices in flight: the batch sampler, the collate function, errors in workers, reassembly."""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mrirecon.data.transforms import ReconTransform
from mrirecon.errors import ModelError
from mrirecon.inference.assemble import VolumeAssembler
from mrirecon.inference.plan import EXPORT, RECONSTRUCT, VolumeTask
from mrirecon.inference.slices import SliceItem, SliceItems, VolumeBatchSampler, collate_slices
from mrirecon.inference.step import SliceResult, forward
from mrirecon.inference.undersampling import VolumeSampling
from tests.inference import fakes


def _task(
    index: int, slices: int, shape=(4, 8, 8), action=RECONSTRUCT, path: Path | None = None
) -> VolumeTask:
    return VolumeTask(
        index,
        path or Path(f"v{index}.h5"),
        None,  # type: ignore[arg-type]
        slices,
        shape,
        shape[1:],
        True,
        VolumeSampling("none"),
        action,
    )


def test_batches_cover_every_slice_once_in_order_and_never_mix_shapes() -> None:
    rng = random.Random(0)
    tasks = [
        _task(
            i,
            rng.randint(1, 6),
            shape=rng.choice([(4, 8, 8), (4, 8, 6)]),
            action=rng.choice([RECONSTRUCT, EXPORT]),
        )
        for i in range(12)
    ]
    items = SliceItems(tasks, transform=None)  # type: ignore[arg-type]
    for size in (1, 3, 8):
        sampler = VolumeBatchSampler(items, size)
        batches = list(sampler)
        assert len(sampler) == len(batches)
        assert [k for b in batches for k in b] == list(range(len(items)))
        assert all(1 <= len(b) <= size for b in batches)
        for b in batches:
            shapes = {tasks[items.keys[k][0]].kspace_shape for k in b}
            assert len(shapes) == 1
    assert {p for p, _ in items.keys} == {i for i, t in enumerate(tasks) if t.action == RECONSTRUCT}


def test_the_sampler_stops_when_told() -> None:
    items = SliceItems([_task(0, 10)], transform=None)  # type: ignore[arg-type]
    stop = threading.Event()
    seen = []
    for batch in VolumeBatchSampler(items, 2, stop):
        seen.append(batch)
        stop.set()
    assert seen == [[0, 1]]


def _item(task: int, index: int, shape=(2, 4, 4), error=None) -> SliceItem:
    if error:
        return SliceItem(task, index, True, error=("DataError", error))
    return SliceItem(
        task,
        index,
        True,
        torch.full(shape, task + index / 10, dtype=torch.complex64),
        torch.ones(1, 1, shape[-1]),
        torch.ones(shape, dtype=torch.complex64),
        2.0 + index,
    )


def test_collate_groups_by_shape_and_passes_errors_on() -> None:
    batch = collate_slices([_item(0, 0), _item(0, 1), _item(1, 0, shape=(3, 4, 4)), _item(2, 0, error="bad")])
    assert batch.errors == [(2, 0, "DataError", "bad")] and batch.num_slices == 4
    first, second = batch.groups
    assert (first.tasks, first.slices, second.tasks) == ([0, 0], [0, 1], [1])
    assert first.masked_kspace.shape == (2, 2, 4, 4) and second.coil_maps.shape == (1, 3, 4, 4)
    assert torch.equal(first.scale, torch.tensor([2.0, 3.0], dtype=torch.float64))
    assert first.masked_kspace[1, 0, 0, 0] == 0.1


def test_a_slice_that_fails_to_read_becomes_an_error_item(tmp_path: Path, installed) -> None:
    good = fakes.write_input(tmp_path / "good.h5", slices=2)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"nope")
    tasks = [_task(0, 2, shape=(4, 32, 24), path=good), _task(1, 1, path=bad)]
    items = SliceItems(tasks, ReconTransform())
    loaded = [items[k] for k in range(len(items))]
    assert [i.error is None for i in loaded] == [True, True, False]
    assert loaded[2].error is not None and loaded[2].error[0] == "DataError"
    assert "cannot open the file as HDF5" in loaded[2].error[1] and str(bad) in loaded[2].error[1]
    assert len(items._volumes) == 1  # the good file stays open for its next slices
    items.close()


def test_volumes_are_assembled_whatever_the_order_and_failures_drop_them() -> None:
    tasks = [_task(0, 3), _task(1, 2)]
    assembler = VolumeAssembler(tasks)

    def result(t, s):
        return SliceResult(t, s, np.full((8, 8), 10 * t + s, np.float32), np.zeros((8, 8), np.float32))

    assert assembler.add(result(0, 2)) is None
    assert assembler.fail(1) is True and assembler.fail(1) is False  # reported once
    assert assembler.add(result(0, 0)) is None
    done = assembler.add(result(0, 1))
    assert done is not None and done.task is tasks[0]
    assert done.reconstruction is not None and done.reconstruction[:, 0, 0].tolist() == [0, 1, 2]
    assert assembler.pending == 0  # failed volume 1 received both slices: forgotten


def test_a_model_that_cannot_take_the_input_is_a_model_error() -> None:
    model = fakes.FakeLearned(fakes.LearnedConfig(coils=4))
    kspace = torch.ones(2, 6, 8, 8, dtype=torch.complex64)
    with pytest.raises(
        ModelError, match=r"model 'fake_learned' cannot take k-space of 6 coil\(s\): it was trained for 4"
    ) as e:
        forward(model, "fake_learned", kspace, torch.ones(2, 1, 1, 8), kspace)
    assert "\n" not in e.value.one_line()
    nan = fakes.FakeNan(fakes.NanConfig())
    with pytest.raises(ModelError, match="returned NaN or infinite values"):
        forward(nan, "fake_nan", kspace, torch.ones(2, 1, 1, 8), kspace)


def _schedule_workers(sampler: VolumeBatchSampler) -> dict[int, set[int]]:
    """Volume position → the workers its batches go to (batch k goes to worker k mod workers)."""
    readers: dict[int, set[int]] = {}
    for k, batch in enumerate(sampler.schedule()):
        for key in batch:
            readers.setdefault(sampler.items.keys[key][0], set()).add(k % sampler.workers)
    return readers


@pytest.mark.parametrize("workers", [2, 3, 4])
@pytest.mark.parametrize("size", [1, 2, 5])
def test_a_volume_read_whole_goes_to_one_worker_until_the_last_ones(workers: int, size: int) -> None:
    """A raw ISMRMRD file is converted, a NumPy array read whole, by each worker that reads one of its
    slices: all its slices go to one worker; only the last volumes (no other work left) are shared."""
    rng = random.Random(workers * 10 + size)
    tasks = [
        replace(_task(i, rng.randint(1, 9), shape=rng.choice([(4, 8, 8), (4, 8, 6)])), opens_whole=i % 4 != 3)
        for i in range(14)
    ]
    items = SliceItems(tasks, transform=None)  # type: ignore[arg-type]
    sampler = VolumeBatchSampler(items, size, workers=workers)
    batches = list(sampler)
    assert len(sampler) == len(batches)
    assert sorted(k for b in batches for k in b) == list(range(len(items)))  # every slice once
    # a volume read whole with more slices than a batch is pinned; one that fits a batch is batched
    # with its neighbours (opened by the workers of the one or two batches it spans)
    pinned = [i for i, t in enumerate(tasks) if t.opens_whole and t.num_slices > size]
    for batch in batches:
        assert len(batch) <= size and len({tasks[items.keys[k][0]].kspace_shape for k in batch}) <= 1
        volumes = {items.keys[k][0] for k in batch}
        assert len(volumes) <= 1 or not volumes & set(pinned)
    readers = _schedule_workers(sampler)
    assert all(len(readers[p]) == 1 for p in pinned[:-workers])
    assert sum(len(readers[p]) for p in pinned) <= len(pinned) + 2 * workers
    assert all(len(readers[p]) <= 2 for p, t in enumerate(tasks) if t.opens_whole and p not in pinned)
    for p in range(len(tasks)):  # the slices of a volume still arrive in order on each worker
        mine = [k for b in batches for k in b if items.keys[k][0] == p]
        for w in readers[p]:
            ordered = [k for i, b in enumerate(batches) if i % workers == w for k in b if k in mine]
            assert ordered == sorted(ordered) and set(ordered) <= set(mine)


def test_one_volume_read_whole_is_still_shared_by_every_worker() -> None:
    items = SliceItems([replace(_task(0, 12), opens_whole=True)], transform=None)  # type: ignore[arg-type]
    sampler = VolumeBatchSampler(items, 1, workers=3)
    assert _schedule_workers(sampler) == {0: {0, 1, 2}}
    assert sorted(k for b in sampler for k in b) == list(range(12))


def test_without_workers_or_whole_reads_the_batches_are_consecutive() -> None:
    tasks = [replace(_task(i, 3), opens_whole=True) for i in range(3)]
    items = SliceItems(tasks, transform=None)  # type: ignore[arg-type]
    assert list(VolumeBatchSampler(items, 2, workers=0)) == [[0, 1], [2, 3], [4, 5], [6, 7], [8]]
    plain = SliceItems([_task(i, 3) for i in range(3)], transform=None)  # type: ignore[arg-type]
    assert list(VolumeBatchSampler(plain, 2, workers=3)) == [[0, 1], [2, 3], [4, 5], [6, 7], [8]]
    # single-slice files read whole are batched together as before (one slice per batch was 8× slower)
    single = SliceItems([replace(_task(i, 1), opens_whole=True) for i in range(16)], transform=None)  # type: ignore[arg-type]
    assert list(VolumeBatchSampler(single, 8, workers=2)) == [list(range(8)), list(range(8, 16))]


def test_a_worker_holds_one_volume_read_whole_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A converted raw file is the whole volume in memory: the one a worker is done with is closed
    before the next is read (it kept two, 1 GB each for a raw knee); volumes read slice by slice stay
    open as before."""
    from mrirecon.inference import components

    class Opened:
        def __init__(self, path: Path) -> None:
            self.path, self.closed = path, False

        def close(self) -> None:
            self.closed = True

    opened: dict[str, Opened] = {}

    def open_input(path: Path, **kwargs: object) -> Opened:
        opened[path.name] = Opened(path)
        return opened[path.name]

    monkeypatch.setattr(components, "open_input", open_input)
    tasks = [replace(_task(i, 2), opens_whole=i < 2) for i in range(4)]
    items = SliceItems(tasks, transform=None)  # type: ignore[arg-type]
    items._volume(0)
    items._volume(2)
    items._volume(1)
    assert opened["v0.h5"].closed and set(items._volumes) == {2, 1}  # v0 closed before v1 was read
    items._volume(3)  # then the least recently used, as for any volume
    assert opened["v2.h5"].closed and set(items._volumes) == {1, 3}
