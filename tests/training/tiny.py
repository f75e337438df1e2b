"""A tiny unrolled reconstructor for the training tests, registered in the model registry on demand.

It has the shape of the recurrent models (``steps[cascade][time_step]``, the log-likelihood gradient
as input, a CNN behind ``complex_to_channels``) at a size that trains in seconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from mrirecon.models import registry
from mrirecon.models.base import ReconOutput, Reconstructor
from mrirecon.physics import (
    LogLikelihoodGradient,
    MultiCoilOperator,
    channels_to_complex,
    complex_to_channels,
)


@dataclass(frozen=True)
class TinyConfig:
    cascades: int = 2
    time_steps: int = 2
    channels: int = 8


class TinyUnrolled(Reconstructor):
    """x_{t+1} = x_t + CNN_c([x_t, ∇_t]) for c cascades of t time steps; x_0 = Aᴴy."""

    supports_checkpointing = True

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.nets = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(4, config.channels, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(config.channels, 2, 3, padding=1),
            )
            for _ in range(config.cascades)
        )

    def _update(self, net: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return x + channels_to_complex(net(complex_to_channels(torch.stack([x, grad], dim=1))))[:, 0]

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        op = MultiCoilOperator(coil_maps, mask)
        gradient = LogLikelihoodGradient(op, masked_kspace)
        x = op.adjoint(masked_kspace)
        steps = []
        for net in self.nets:
            cascade = []
            for _ in range(self.config.time_steps):
                if self.gradient_checkpointing and self.training:
                    x = checkpoint(self._update, net, x, gradient(x), use_reentrant=False)
                else:
                    x = self._update(net, x, gradient(x))
                cascade.append(x)
            steps.append(cascade)
        return ReconOutput(x, steps)


def register_tiny() -> None:
    """Add ``tiny`` to the registry (idempotent)."""
    registry.register_model("tiny", TinyUnrolled, TinyConfig, "tiny unrolled network for tests")


def unregister_tiny() -> None:
    registry.unregister_model("tiny")
