"""Simulation on the fly: a dataset whose every item is a freshly simulated realistic slice.

:class:`SimulatedSliceDataset` is a map-style dataset of ``length`` items. Item ``index`` is
simulated by :func:`~mrirecon.data.realistic.simulate_realistic_slice` from the seed
``(seed, epoch, index)`` (an endless, seeded stream: no two epochs see the same slice, and a
resumed run sees exactly what an uninterrupted one would) and turned into a
:class:`~mrirecon.data.sample.ReconSample` by the same :class:`~mrirecon.data.transforms.ReconTransform`
that serves files, so masks, normalisation and coil maps are identical to reading the slice from
disk. The training loader's :class:`~mrirecon.training.samplers.SeededDataset` passes the epoch
(``epoch_aware``); a plain integer index is epoch 0 (validation and test sets, the same every epoch).

The reference of an item is fastMRI's (the RSS of the noisy coil images) or, with
``target="expected"``, :func:`~mrirecon.data.realistic.expected_target`: the same level without the
noise, a training target that does not ask the network to predict noise.

The work runs in the DataLoader's worker processes when it has any (``data.num_workers``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mrirecon.data.raw import ArrayVolume
from mrirecon.data.realistic import (
    RealisticOptions,
    RealisticSlice,
    expected_target,
    simulate_realistic_slice,
)
from mrirecon.data.sample import ReconSample

__all__ = ["TARGETS", "SimulatedSliceDataset", "SimulatedSliceVolume"]


TARGETS = ("noisy", "expected")


class SimulatedSliceVolume(ArrayVolume):
    """One simulated slice as a one-slice volume: k-space, reference and lesion labels in memory.

    ``target``: ``"noisy"`` (fastMRI's reference) or ``"expected"`` (module docstring).
    """

    def __init__(self, name: str, sim: RealisticSlice, target: str = "noisy"):
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.target = sim.target if target == "noisy" else expected_target(sim)
        attrs = {
            "acquisition": sim.params.get("acquisition", ""),
            "max": float(self.target.max()),
            "mrirecon_snr": sim.snr,
            "mrirecon_noise_std": sim.noise_std,
        }
        super().__init__(name, sim.kspace[None], attrs=attrs)
        self.simulation = sim

    @property
    def has_target(self) -> bool:
        return True

    def read_target(self, index: int) -> np.ndarray | None:
        self._check_index(index)
        return self.target.copy()

    def read_lesion_labels(self, index: int) -> np.ndarray | None:
        self._check_index(index)
        return self.simulation.labels


class SimulatedSliceDataset:
    """``length`` simulated slices per epoch (module docstring).

    Args:
        length: Items per epoch.
        seed: Seed of the stream.
        options: What the simulator randomises.
        transform: A ``ReconTransform`` (or any ``(volume, index) -> sample`` callable).
        name: Prefix of the items' file names (they seed deterministic masks: ``{name}_{index}.h5``).
        target: The items' reference, ``"noisy"`` or ``"expected"`` (module docstring).
        stream: 0 for the training stream, seeded ``(seed, epoch, index)``; another number for a
            stream of its own, seeded ``(seed, epoch, index, stream)``, which no training stream
            of any seed shares (validation and test slices).
    """

    epoch_aware = True

    def __init__(
        self,
        length: int,
        seed: int,
        options: RealisticOptions,
        transform: Any,
        name: str = "sim",
        target: str = "noisy",
        stream: int = 0,
    ):
        if length < 1:
            raise ValueError(f"length must be at least 1, got {length}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.target = target
        self.length = int(length)
        self.seed = int(seed)
        self.options = options
        self.transform = transform
        self.name = name
        self.stream = int(stream)

    def __len__(self) -> int:
        return self.length

    def volume(self, key: int | tuple[int, int]) -> SimulatedSliceVolume:
        """The simulated slice of item ``key`` (``index`` or ``(epoch, index)``) as a volume."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if not 0 <= index < self.length:
            raise IndexError(f"item {index} out of range (the dataset has {self.length})")
        key3 = (self.seed, int(epoch), int(index))
        # (a trailing 0 seeds as nothing: a stream's number must not be 0 to be a stream of its own)
        sim = simulate_realistic_slice(self.options, key3 + ((self.stream,) if self.stream else ()))
        suffix = f"e{epoch}_{index:06d}" if epoch else f"{index:06d}"
        return SimulatedSliceVolume(f"{self.name}_s{self.seed}_{suffix}.h5", sim, self.target)

    def __getitem__(self, key: int | tuple[int, int]) -> ReconSample:
        return self.transform(self.volume(key), 0)
