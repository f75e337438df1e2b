"""The one interface every reconstructor implements, learned or classical.

``model(masked_kspace, mask, coil_maps)`` returns a :class:`ReconOutput`: the final complex image
and the estimates of every step (per cascade, per time step), which the multi-step losses of the
recurrent models need. Models that produce one estimate return ``steps = [[image]]``.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import nn

__all__ = ["ReconOutput", "Reconstructor"]


class ReconOutput(NamedTuple):
    """What a reconstructor returns.

    Attributes:
        image: ``(B, H, W)`` complex64, the final estimate (in the normalised scale of the input).
        steps: Intermediate estimates, ``steps[cascade][time_step]`` each ``(B, H, W)`` complex64;
            the last entry of the last list is ``image``.
    """

    image: torch.Tensor
    steps: list[list[torch.Tensor]]


class Reconstructor(nn.Module):
    """Base class of every model in the registry.

    Subclasses implement :meth:`forward` with the signature below and set ``trainable``.

    Shapes:
        masked_kspace: ``(B, C, H, W)`` complex64, measured k-space (zeros where not sampled).
        mask: ``(B, 1, 1, W)`` or ``(B, 1, H, W)`` float32, 1 = sampled.
        coil_maps: ``(B, C, H, W)`` complex64 sensitivity maps (Σ|S|² = 1 where there is signal).
    """

    #: Whether the model has parameters to train (classical baselines: False, no checkpoint needed).
    trainable: ClassVar[bool] = True
    #: Whether :meth:`set_gradient_checkpointing` can trade compute for activation memory.
    supports_checkpointing: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.gradient_checkpointing = False

    def needs_coil_maps(self) -> bool:
        """Whether :meth:`forward` uses the coil maps passed to it (models that estimate their own,
        like E2E-VarNet with learned maps or CS with ESPIRiT, do not)."""
        return True

    @property
    def fft_centered(self) -> bool:
        """The FFT convention the model transforms in: its config's ``fft_centered``; centred for
        the models without that setting (the baselines, U-Net, E2E-VarNet)."""
        return bool(getattr(getattr(self, "config", None), "fft_centered", True))

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute activations in the backward pass (per time step / cascade) to save memory.

        Models that unroll many steps override :attr:`supports_checkpointing`; for the others this
        is a no-op. It changes no result, only the memory/compute trade-off of training.
        """
        self.gradient_checkpointing = bool(enabled) and self.supports_checkpointing

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        """Reconstruct a batch of slices."""
        raise NotImplementedError
