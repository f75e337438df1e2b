"""Optimisers and learning-rate schedules from :class:`~mrirecon.training.config.OptimSection`.

The schedule is a ``LambdaLR`` whose factor is a small callable object (:class:`LRFactor`) of plain
numbers, so its state sits in a checkpoint without pickled code and resumes exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from mrirecon.training.config import OptimSection

__all__ = ["LRFactor", "build_optimizer", "build_scheduler"]


class LRFactor:
    """The learning-rate factor at optimiser step ``step`` (0-based): warm-up, then the schedule.

    Args:
        kind: ``constant``, ``step`` or ``cosine``.
        warmup_steps: Linear warm-up from ``warmup_start_factor`` to 1 over this many steps.
        warmup_start_factor: The factor at step 0 of the warm-up.
        step_size: ``step``: steps between decays (counted after the warm-up).
        gamma: ``step``: the decay factor.
        total_steps: ``cosine``: the last step (the factor reaches ``min_factor`` there).
        min_factor: ``cosine``: the final factor.
    """

    def __init__(
        self,
        kind: str,
        *,
        warmup_steps: int = 0,
        warmup_start_factor: float = 0.1,
        step_size: int = 1000,
        gamma: float = 0.1,
        total_steps: int = 1,
        min_factor: float = 0.0,
    ):
        if kind not in ("constant", "step", "cosine"):
            raise ValueError(f"unknown schedule {kind!r}; known: constant, step, cosine")
        self.kind = kind
        self.warmup_steps = int(warmup_steps)
        self.warmup_start_factor = float(warmup_start_factor)
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        self.total_steps = max(int(total_steps), 1)
        self.min_factor = float(min_factor)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            fraction = step / self.warmup_steps
            return self.warmup_start_factor + (1.0 - self.warmup_start_factor) * fraction
        after = step - self.warmup_steps
        if self.kind == "step":
            return float(self.gamma ** (after // self.step_size))
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = min(after / span, 1.0)
            return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0


def build_optimizer(parameters: Iterable[torch.nn.Parameter], optim: OptimSection) -> torch.optim.Optimizer:
    """Adam or AdamW over ``parameters`` with the section's learning rate, betas and weight decay."""
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    cls = torch.optim.AdamW if optim.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, optim: OptimSection, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The section's schedule as a per-step ``LambdaLR`` (``total_steps`` sets the cosine's length)."""
    factor = LRFactor(
        optim.scheduler,
        warmup_steps=optim.warmup_steps,
        warmup_start_factor=optim.warmup_start_factor,
        step_size=optim.step_size,
        gamma=optim.gamma,
        total_steps=total_steps,
        min_factor=optim.min_lr_factor,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
