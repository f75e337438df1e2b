"""Slices in flight: the dataset DataLoader workers read, the batches they form, and their errors.

The dataset serves the slices of a rank's volumes in order, so DataLoader workers read (and estimate
coil maps for) the next volumes while the model reconstructs the current batch. An input that fails
to read is not an exception in a worker (that would stop the loader and the whole run): the item
carries the error, and the runner records the volume as failed and goes on.

Batches hold up to ``batch_size`` consecutive slices; they may span volumes of the same k-space
shape. The collate function groups the slices of a batch by tensor shapes, so each group can be
stacked onto the device in one piece.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from mrirecon.data.ismrmrd_raw import Frame
from mrirecon.errors import MriReconError
from mrirecon.export import InputMetadata
from mrirecon.inference import components
from mrirecon.inference.failures import error_text
from mrirecon.inference.plan import RECONSTRUCT, VolumeTask

__all__ = ["SampleGroup", "SliceBatch", "SliceItem", "SliceItems", "VolumeBatchSampler", "collate_slices"]


@dataclass
class SliceItem:
    """One slice as a worker read it: the sample, or the error that stopped it."""

    task: int
    slice: int
    centered: bool
    masked_kspace: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    coil_maps: torch.Tensor | None = None
    scale: float = 1.0
    error: tuple[str, str] | None = None
    meta: InputMetadata | None = None  # with slice 0: what the outputs copy from the input


@dataclass
class SampleGroup:
    """Slices of one batch with equal shapes, stacked.

    Attributes:
        tasks: Task position (in the rank's task list) of each slice, ``B`` entries.
        slices: Slice index of each, ``B`` entries.
        centered: FFT convention (equal for the group).
        masked_kspace: ``(B, C, H, W)`` complex64, normalised by ``scale``.
        mask: ``(B, 1, 1, W)`` or ``(B, 1, H, W)`` float32.
        coil_maps: ``(B, C, H, W)`` complex64.
        scale: ``(B,)`` float64, the normalisation of each slice.
    """

    tasks: list[int]
    slices: list[int]
    centered: bool
    masked_kspace: torch.Tensor
    mask: torch.Tensor
    coil_maps: torch.Tensor
    scale: torch.Tensor

    def pin_memory(self) -> SampleGroup:
        """Page-locked copies (faster, asynchronous copies to a GPU)."""
        return SampleGroup(
            self.tasks,
            self.slices,
            self.centered,
            self.masked_kspace.pin_memory(),
            self.mask.pin_memory(),
            self.coil_maps.pin_memory(),
            self.scale.pin_memory(),
        )


@dataclass
class SliceBatch:
    """What the DataLoader yields: groups of stackable slices, and the slices that failed."""

    groups: list[SampleGroup] = field(default_factory=list)
    errors: list[tuple[int, int, str, str]] = field(default_factory=list)  # task, slice, kind, text
    metadata: dict[int, InputMetadata] = field(default_factory=dict)  # task → its input's metadata

    @property
    def num_slices(self) -> int:
        """Slices in the batch, failed ones included."""
        return sum(len(g.tasks) for g in self.groups) + len(self.errors)

    def pin_memory(self) -> SliceBatch:
        """Page-locked copies of every group."""
        return SliceBatch([g.pin_memory() for g in self.groups], self.errors, self.metadata)


class SliceItems(Dataset[SliceItem]):
    """The slices of ``tasks`` (only those to reconstruct), read through the data layer.

    Args:
        tasks: The rank's volumes.
        transform: The slice transform (:func:`mrirecon.inference.components.make_transform`).
        npy_axes: Axis order of ``.npy`` inputs.
        frame: The frame of ISMRMRD raw inputs to read (None: the first of each).
        open_volumes: Volumes each worker keeps open (consecutive slices of a volume reuse it); of
            the volumes read whole when opened, one.
    """

    def __init__(
        self,
        tasks: Sequence[VolumeTask],
        transform: components.SliceTransform,
        *,
        npy_axes: str | None = None,
        open_volumes: int = 2,
        frame: Frame | None = None,
    ):
        self.tasks = list(tasks)
        self.transform = transform
        self.npy_axes = npy_axes
        self.frame = frame
        self.open_volumes = max(1, open_volumes)
        self.keys = [
            (position, index)
            for position, task in enumerate(self.tasks)
            if task.action == RECONSTRUCT
            for index in range(task.num_slices)
        ]
        self._volumes: OrderedDict[int, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self.keys)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_volumes"] = OrderedDict()  # open files stay in the process that opened them
        return state

    def _volume(self, position: int) -> Any:
        if position in self._volumes:
            self._volumes.move_to_end(position)
            return self._volumes[position]
        if self.tasks[position].opens_whole:
            # the sampler gives a worker the next volume read whole once it is done with the last
            # one (VolumeBatchSampler): that one, in memory whole, goes before this one is read
            for other in [p for p in self._volumes if self.tasks[p].opens_whole]:
                self._volumes.pop(other).close()
        volume = components.open_input(
            self.tasks[position].input_path, npy_axes=self.npy_axes, frame=self.frame
        )
        self._volumes[position] = volume
        while len(self._volumes) > self.open_volumes:
            _, old = self._volumes.popitem(last=False)
            old.close()
        return volume

    def __getitem__(self, key: int) -> SliceItem:
        position, index = self.keys[key]
        centered = self.tasks[position].centered
        try:
            volume = self._volume(position)
            sample = components.make_sample(self.transform, volume, index)
            return SliceItem(
                position,
                index,
                centered,
                sample.masked_kspace,
                sample.mask,
                sample.coil_maps,
                float(sample.scale),
                meta=(
                    components.input_metadata(volume, source=self.tasks[position].input_path)
                    if index == 0
                    else None
                ),
            )
        except (
            MriReconError,
            OSError,
        ) as error:  # bad input: recorded against the volume, the loader goes on
            return SliceItem(position, index, centered, error=(type(error).__name__, error_text(error)))

    def close(self) -> None:
        """Close the volumes this process holds open."""
        while self._volumes:
            _, volume = self._volumes.popitem()
            volume.close()


class VolumeBatchSampler(Sampler[list[int]]):
    """Batches of up to ``batch_size`` consecutive slices with the same k-space shape and FFT
    convention (a batch may hold the end of one volume and the start of the next).

    With ``workers`` DataLoader workers the loader hands batch ``k`` to worker ``k mod workers``.
    The slices of an input that is read whole when opened (:attr:`VolumeTask.opens_whole`: an
    ISMRMRD raw file is converted, a NumPy or BART array read into memory) and has more slices than
    a batch are placed so that one worker gets all of them and opens the input once, instead of
    every worker converting it; its batches hold slices of that volume only. A worker with nothing
    left of its own takes the second half of the largest remaining volume (the last volumes of a
    run, or a run of one volume, are still read by several workers), and gets an empty batch when
    no volume has two batches left.

    The sampler runs in the main process; once ``stop`` is set it yields nothing more, so the
    DataLoader ends after the batches already requested (a run stopping on a fatal error does not
    read the rest of the archive).
    """

    def __init__(
        self,
        items: SliceItems,
        batch_size: int,
        stop: threading.Event | None = None,
        *,
        workers: int = 0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.items = items
        self.batch_size = batch_size
        self.stop = stop
        self.workers = workers
        self._schedule: list[list[int]] | None = None

    def _group(self, key: int) -> tuple[Any, ...]:
        task = self.items.tasks[self.items.keys[key][0]]
        return (task.kspace_shape, task.centered)

    def _batches(self, keys: Sequence[int]) -> list[list[int]]:
        batches: list[list[int]] = []
        for key in keys:
            batch = batches[-1] if batches else None
            if batch is None or len(batch) == self.batch_size or self._group(key) != self._group(batch[0]):
                batches.append([key])
            else:
                batch.append(key)
        return batches

    def schedule(self) -> list[list[int]]:
        """Every batch in the order the loader requests them."""
        if self._schedule is None:
            self._schedule = self._make_schedule()
        return self._schedule

    def _make_schedule(self) -> list[list[int]]:
        tasks, keys = self.items.tasks, self.items.keys
        # a volume that fits one batch is opened once anyway (twice at most, by the two workers of
        # the batches it straddles): it stays in the shared stream, batched with its neighbours
        whole = [
            p
            for p in dict.fromkeys(p for p, _ in keys)
            if tasks[p].opens_whole and tasks[p].num_slices > self.batch_size
        ]
        if self.workers < 2 or not whole:
            return self._batches(range(len(keys)))
        keys_of: dict[int, list[int]] = {p: [] for p in whole}
        shared_keys: list[int] = []
        for key, (position, _) in enumerate(keys):
            keys_of.get(position, shared_keys).append(key)
        shared = deque(self._batches(shared_keys))
        waiting = deque(deque(self._batches(keys_of[p])) for p in whole)
        lanes: list[deque[list[int]]] = [deque() for _ in range(self.workers)]
        schedule: list[list[int]] = []
        while shared or waiting or any(lanes):
            lane = lanes[len(schedule) % self.workers]
            if not lane and waiting:
                lane.extend(waiting.popleft())
            if not lane and not shared:
                largest = max(lanes, key=len)
                lane.extend(reversed([largest.pop() for _ in range(len(largest) // 2)]))
            if lane:
                schedule.append(lane.popleft())
            elif shared:
                schedule.append(shared.popleft())
            else:  # nothing this worker can take without opening a volume for one batch
                schedule.append([])
        return schedule

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.schedule():
            if self.stop is not None and self.stop.is_set():
                return
            yield batch

    def __len__(self) -> int:
        return len(self.schedule())


def collate_slices(items: list[SliceItem]) -> SliceBatch:
    """Stack the slices of a batch by shape; failed slices travel as errors."""
    batch = SliceBatch()
    groups: dict[tuple[Any, ...], list[SliceItem]] = {}
    for item in items:
        if item.meta is not None:
            batch.metadata[item.task] = item.meta
        if item.error is not None:
            batch.errors.append((item.task, item.slice, *item.error))
            continue
        assert item.masked_kspace is not None and item.mask is not None and item.coil_maps is not None
        key = (
            tuple(item.masked_kspace.shape),
            tuple(item.mask.shape),
            tuple(item.coil_maps.shape),
            item.centered,
        )
        groups.setdefault(key, []).append(item)
    for members in groups.values():
        batch.groups.append(
            SampleGroup(
                tasks=[m.task for m in members],
                slices=[m.slice for m in members],
                centered=members[0].centered,
                masked_kspace=torch.stack([m.masked_kspace for m in members]),  # type: ignore[misc]
                mask=torch.stack([m.mask for m in members]).to(torch.float32),  # type: ignore[misc]
                coil_maps=torch.stack([m.coil_maps for m in members]),  # type: ignore[misc]
                scale=torch.tensor([m.scale for m in members], dtype=torch.float64),
            )
        )
    return batch
