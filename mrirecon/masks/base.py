"""The mask-function interface shared by every undersampling pattern.

A mask function is called as ``mask_func(shape, offset=None, seed=None)`` with ``shape`` the complex
k-space shape ``(..., H, W)`` and returns ``(mask, num_low_frequencies)``: a float32 0/1 tensor of
shape ``(1, ..., 1, W)`` for Cartesian line masks (it broadcasts against the k-space along W) or
``(1, ..., 1, H, W)`` for 2-D masks, and the number of fully sampled centre lines (for 2-D masks:
the side of the fully sampled centre block along W).

Randomness follows fastMRI exactly: each mask function owns a ``numpy.random.RandomState`` seeded
at construction; a per-call ``seed`` (an int or a tuple of ints, e.g. derived from the file name)
reseeds it for that call only and restores its state afterwards.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from mrirecon.errors import ConfigError

__all__ = ["MaskFunc", "Seed", "temp_seed"]

Seed = int | tuple[int, ...] | None


@contextlib.contextmanager
def temp_seed(rng: np.random.RandomState, seed: Seed) -> Iterator[None]:
    """Reseed ``rng`` for the duration of the block and restore its previous state afterwards."""
    if seed is None:
        yield
        return
    state = rng.get_state()
    rng.seed(seed)
    try:
        yield
    finally:
        rng.set_state(state)


class MaskFunc(abc.ABC):
    """Base class: chooses a (centre fraction, acceleration) pair per call and samples a mask.

    Args:
        center_fractions: Fraction of the centre that is fully sampled; one is chosen per call.
        accelerations: Target accelerations, paired with ``center_fractions``.
        allow_any_combination: Choose the fraction and the acceleration independently.
        seed: Seed of the mask function's own random number generator.
    """

    #: ``"1d"`` for Cartesian line masks along W, ``"2d"`` for masks over (H, W).
    kind = "1d"
    #: Whether the pattern steps by whole lines, so that only whole accelerations are meaningful.
    integer_accelerations = False

    def __init__(
        self,
        center_fractions: Sequence[float],
        accelerations: Sequence[float],
        allow_any_combination: bool = False,
        seed: int | None = None,
    ):
        center_fractions = list(center_fractions)
        accelerations = list(accelerations)
        if not center_fractions or not accelerations:
            raise ConfigError("a mask needs at least one centre fraction and one acceleration")
        if len(center_fractions) != len(accelerations) and not allow_any_combination:
            raise ConfigError(
                f"got {len(center_fractions)} centre fractions and {len(accelerations)} accelerations",
                hint="give one centre fraction per acceleration, or allow any combination",
            )
        for r in accelerations:
            if r <= 1:
                raise ConfigError(f"acceleration must be greater than 1, got {r}")
            if self.integer_accelerations and float(r) != int(r):
                # the pattern steps by int(R): 2.5 would sample as 2 while recorded as 2.5
                raise ConfigError(
                    f"{type(self).__name__} samples every R-th line, so R must be a whole number, got {r}",
                    hint="use equispaced_fraction, magic_fraction or random for a fractional acceleration",
                )
        for cf in center_fractions:
            if not 0 <= cf < 1:
                raise ConfigError(f"centre fraction must lie in [0, 1), got {cf}")
        self.center_fractions = center_fractions
        self.accelerations = accelerations
        self.allow_any_combination = allow_any_combination
        self.rng = np.random.RandomState(seed)

    def settings(self) -> list[tuple[float, float]]:
        """Every (centre fraction, acceleration) pair :meth:`choose_acceleration` can return."""
        if self.allow_any_combination:
            return [(cf, r) for cf in self.center_fractions for r in self.accelerations]
        return list(zip(self.center_fractions, self.accelerations, strict=True))

    def choose_acceleration(self) -> tuple[float, float]:
        """Pick (centre fraction, acceleration) with the generator, in fastMRI's call order."""
        if self.allow_any_combination:
            return self.rng.choice(self.center_fractions), self.rng.choice(self.accelerations)
        choice = self.rng.randint(len(self.center_fractions))
        return self.center_fractions[choice], self.accelerations[choice]

    def __call__(
        self, shape: Sequence[int], offset: int | None = None, seed: Seed = None
    ) -> tuple[torch.Tensor, int]:
        """Sample a mask for k-space of ``shape`` ``(..., H, W)``; see the module docstring."""
        shape = tuple(int(s) for s in shape)
        if len(shape) < 2:
            raise ConfigError(f"k-space shape must have at least two axes (..., H, W), got {shape}")
        with temp_seed(self.rng, seed):
            mask, num_low = self.sample(shape, offset)
        return mask, num_low

    @abc.abstractmethod
    def sample(self, shape: tuple[int, ...], offset: int | None) -> tuple[torch.Tensor, int]:
        """Draw one mask with ``self.rng``; returns ``(mask, num_low_frequencies)``."""

    @staticmethod
    def reshape_line_mask(mask: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
        """A length-W 0/1 vector as a float32 tensor ``(1, ..., 1, W)`` of the rank of ``shape``."""
        out_shape = [1] * len(shape)
        out_shape[-1] = shape[-1]
        return torch.from_numpy(np.asarray(mask).reshape(out_shape).astype(np.float32))

    @staticmethod
    def reshape_plane_mask(mask: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
        """An (H, W) 0/1 array as a float32 tensor ``(1, ..., 1, H, W)`` of the rank of ``shape``."""
        out_shape = [1] * len(shape)
        out_shape[-2:] = shape[-2:]
        return torch.from_numpy(np.asarray(mask).reshape(out_shape).astype(np.float32))
