"""Slices back into volumes: a volume is handed on when its last slice arrives, or dropped when one
of its slices fails (the failure is reported once, its remaining slices are discarded)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mrirecon.export import InputMetadata
from mrirecon.inference.plan import VolumeTask
from mrirecon.inference.step import SliceResult

__all__ = ["FinishedVolume", "VolumeAssembler"]


@dataclass
class FinishedVolume:
    """A volume ready to write.

    Attributes:
        task: What it is and where it goes.
        reconstruction: float32 ``(S, h, w)``; None for a DICOM-only export from the finished HDF5.
        zero_filled: float32 ``(S, h, w)``, or None.
        meta: What the outputs copy from the input (header, geometry, identifiers), or None.
    """

    task: VolumeTask
    reconstruction: np.ndarray | None = None
    zero_filled: np.ndarray | None = None
    meta: InputMetadata | None = None


class VolumeAssembler:
    """Collects :class:`SliceResult` s per volume (task position in the rank's task list)."""

    def __init__(self, tasks: Sequence[VolumeTask]):
        self.tasks = list(tasks)
        self._recon: dict[int, np.ndarray] = {}
        self._zero_filled: dict[int, np.ndarray] = {}
        self._received: dict[int, int] = {}
        self._failed: set[int] = set()
        self._meta: dict[int, InputMetadata] = {}

    def set_metadata(self, position: int, meta: InputMetadata) -> None:
        """Keep the input metadata of ``position`` until its volume is complete."""
        if position not in self._failed:
            self._meta[position] = meta

    def _arrive(self, position: int) -> bool:
        """Count one slice of ``position``; True when it was the volume's last."""
        self._received[position] = self._received.get(position, 0) + 1
        return self._received[position] == self.tasks[position].num_slices

    def _drop(self, position: int) -> None:
        self._meta.pop(position, None)
        self._recon.pop(position, None)
        self._zero_filled.pop(position, None)
        self._received.pop(position, None)

    def add(self, result: SliceResult) -> FinishedVolume | None:
        """Store one slice; returns the volume when it is complete."""
        position = result.task
        last = self._arrive(position)
        if position in self._failed:
            if last:
                self._drop(position)
            return None
        task = self.tasks[position]
        if position not in self._recon:
            shape = (task.num_slices, *result.recon.shape)
            self._recon[position] = np.zeros(shape, dtype=np.float32)
            self._zero_filled[position] = np.zeros(shape, dtype=np.float32)
        self._recon[position][result.slice] = result.recon
        self._zero_filled[position][result.slice] = result.zero_filled
        if not last:
            return None
        finished = FinishedVolume(
            task, self._recon[position], self._zero_filled[position], self._meta.get(position)
        )
        self._drop(position)
        return finished

    def fail(self, position: int, slices: int = 1) -> bool:
        """Mark ``slices`` slices of ``position`` as failed; True the first time the volume fails."""
        first = position not in self._failed
        self._failed.add(position)
        self._meta.pop(position, None)
        self._recon.pop(position, None)
        self._zero_filled.pop(position, None)
        for _ in range(slices):
            if self._arrive(position):
                self._drop(position)
        return first

    @property
    def pending(self) -> int:
        """Volumes with some but not all slices received."""
        return len(self._received)
