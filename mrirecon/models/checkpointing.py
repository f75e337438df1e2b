"""Gradient checkpointing of one unrolled step, shared by the recurrent models.

With checkpointing on, a step keeps only its inputs for the backward pass and recomputes its
activations there (``torch.utils.checkpoint`` without re-entrance), so a T-step model holds the
activations of one step instead of T. The arithmetic is the same, so outputs and gradients are
identical (tests/models/test_checkpointing.py checks it bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

__all__ = ["run_step"]


def run_step(step: Callable[..., Any], *args: Any, checkpointed: bool) -> Any:
    """``step(*args)``, checkpointed when asked and when autograd records (training)."""
    if checkpointed and torch.is_grad_enabled():
        return checkpoint(step, *args, use_reentrant=False)
    return step(*args)
