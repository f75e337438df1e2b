"""Recurrent inference machines: RIM (Putzky & Welling 2017; Lønning et al. 2019) and CIRIM
(Karkalousos et al. 2022), as in the authors' ATOMMIC/mridc code.

One RIM time step (:class:`RIMBlock`) feeds the current image ``x_t`` and the log-likelihood
gradient ``∇_t = Aᴴ(A·x_t − y)/σ²`` (four real channels) through

    conv 5×5 → ReLU → cell → conv 3×3 dil 2 → ReLU → cell → conv 3×3 → 2 channels

with replication padding, and adds the result to the image: ``x_{t+1} = x_t + Δ_t``. The cells'
hidden states carry over the time steps; the weights are shared by the steps of a block. The first
estimate is the zero-filled SENSE image ``x_0 = Aᴴy``.

A CIRIM chains cascades of such blocks (each with its own weights; IndRNN cells by default), each
starting from the previous cascade's last estimate. Data consistency is implicit by default (the
gradient is the only route of the measurements into the model); ``data_consistency="soft"``
ends each cascade with a learned soft data-consistency step in k-space,
``x ← Sᴴ F⁻¹ (k − λ·M⊙(k − y))`` with ``k = F S x`` and λ initialised to 1.
``data_consistency="soft_per_step"`` is the explicit data consistency of the CIRIM paper as its
code (mridc 0.0.1, ``no_dc: false``) computes it: every time step's estimate ``η_t`` of cascade c
becomes the k-space ``k_t = y − λ_c·M⊙(k_in − y) − F S η_t`` and the image ``Sᴴ F⁻¹ k_t``
(returned for every step and fed to the loss), ``k_in`` being the k-space the cascade started from
(``y`` for the first; the previous cascade's last ``k_t`` after it, which also gives the next
cascade's first image ``Sᴴ F⁻¹ k_in``). The recurrence itself runs on the ``η_t`` unchanged. The
subtraction of ``F S η_t`` (not an addition) is the authors' (E2E-VarNet's update with ``y`` in place
of the current k-space): kept as they trained it.

How cascades are coupled (the authors' code bases differ; see docs/models.md):

- ``cascade_gradients`` (default ``True``, as ATOMMIC): a cascade's loss also trains the cascades
  before it. ``False`` (mridc, the CIRIM paper era) detaches each cascade's starting estimate.
- ``carry_hidden_state`` (default ``True``, as ATOMMIC): a cascade starts from the previous one's
  hidden states. ``False`` (mridc) starts every cascade from zero states.

A RIM is a CIRIM with one cascade and GRU cells (8 steps, 64 channels; 128 channels for
Calgary-Campinas; DIRECT's comparison RIM: 128 channels, 16 steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal, cast

import torch
from torch import nn

from mrirecon.errors import ConfigError
from mrirecon.models.base import ReconOutput, Reconstructor
from mrirecon.models.cells import CELLS, CellKind, build_cell
from mrirecon.models.checkpointing import run_step
from mrirecon.models.inputs import check_inputs
from mrirecon.models.layers import channels_image, image_channels
from mrirecon.models.stack import RecurrentConvStack
from mrirecon.physics import LogLikelihoodGradient, MultiCoilOperator, SoftDataConsistency

__all__ = ["CIRIM", "DATA_CONSISTENCY", "RIM", "CIRIMConfig", "RIMBlock", "RIMConfig"]

#: The CIRIM's data-consistency forms (``CIRIMConfig.data_consistency``).
DATA_CONSISTENCY = ("implicit", "soft", "soft_per_step")


def _check_common(cell: str, channels: int, time_steps: int, sigma: float) -> None:
    if cell not in CELLS:
        raise ConfigError(f"unknown cell '{cell}'", hint=f"choose one of {', '.join(CELLS)}")
    if channels < 1:
        raise ConfigError(f"channels must be a positive integer, got {channels}")
    if time_steps < 1:
        raise ConfigError(f"time_steps must be a positive integer, got {time_steps}")
    if not sigma > 0:
        raise ConfigError(f"sigma must be positive, got {sigma}")


@dataclass(frozen=True)
class RIMConfig:
    """Settings of :class:`RIM` (defaults: ATOMMIC's RIM).

    Attributes:
        cell: Recurrent cell, ``"gru"`` (the RIM), ``"mgu"`` or ``"indrnn"`` (the IRIM).
        channels: Features of every convolution and hidden state (64; 128 for Calgary-Campinas).
        time_steps: Unrolled time steps (8; DIRECT's comparison RIM uses 16 with 128 channels).
        sigma: Noise level σ of the log-likelihood gradient ``Aᴴ(Ax − y)/σ²``.
        fft_centered: FFT convention of the k-space (``False`` for Calgary-Campinas).
    """

    cell: CellKind = "gru"
    channels: int = 64
    time_steps: int = 8
    sigma: float = 1.0
    fft_centered: bool = True

    def __post_init__(self) -> None:
        _check_common(self.cell, self.channels, self.time_steps, self.sigma)


@dataclass(frozen=True)
class CIRIMConfig:
    """Settings of :class:`CIRIM` (defaults: ATOMMIC's CIRIM for fastMRI brains).

    Attributes:
        cascades: Number of RIM cascades (5; 8 for fastMRI knees).
        time_steps: Time steps per cascade (8).
        channels: Features of every convolution and hidden state (64; 128 for Calgary-Campinas).
        cell: Recurrent cell (``"indrnn"``; ``"gru"``/``"mgu"`` possible).
        data_consistency: ``"implicit"`` (through the gradient only, the paper's best),
            ``"soft"`` (a learned soft data-consistency step ending each cascade) or
            ``"soft_per_step"`` (the CIRIM paper's explicit data consistency, mridc 0.0.1: at every
            time step in k-space; see the module docstring). Both soft forms learn one λ per cascade.
        cascade_gradients: Let gradients flow from a cascade into the ones before it (ATOMMIC);
            ``False`` detaches each cascade's input (mridc).
        carry_hidden_state: Start each cascade from the previous cascade's hidden states
            (ATOMMIC); ``False`` resets them to zero (mridc).
        sigma: Noise level σ of the log-likelihood gradient.
        fft_centered: FFT convention of the k-space (``False`` for Calgary-Campinas).
    """

    cascades: int = 5
    time_steps: int = 8
    channels: int = 64
    cell: CellKind = "indrnn"
    data_consistency: Literal["implicit", "soft", "soft_per_step"] = "implicit"
    cascade_gradients: bool = True
    carry_hidden_state: bool = True
    sigma: float = 1.0
    fft_centered: bool = True

    def __post_init__(self) -> None:
        _check_common(self.cell, self.channels, self.time_steps, self.sigma)
        if self.cascades < 1:
            raise ConfigError(f"cascades must be a positive integer, got {self.cascades}")
        if self.data_consistency not in DATA_CONSISTENCY:
            raise ConfigError(
                f"unknown data_consistency '{self.data_consistency}'",
                hint=f"choose one of {', '.join(DATA_CONSISTENCY)}",
            )


class RIMBlock(nn.Module):
    """One RIM: the conv/cell stack applied for ``time_steps`` steps with shared weights.

    Args:
        cell: Cell kind (``"gru"``, ``"mgu"``, ``"indrnn"``).
        channels: Hidden features.
        time_steps: Steps per call.
    """

    def __init__(self, cell: str, channels: int, time_steps: int):
        super().__init__()
        self.time_steps = time_steps
        self.stack = RecurrentConvStack(
            4,
            channels,
            2,
            partial(build_cell, cell),
            kernels=(5, 3),
            dilations=(1, 2),
            output_kernel=3,
            output_bias=False,
            relu_states=False,
            kaiming_init=True,
        )

    def forward(
        self,
        x: torch.Tensor,
        gradient: LogLikelihoodGradient,
        states: list[torch.Tensor | None],
        *,
        checkpointed: bool = False,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """Run the time steps from ``x`` ``(B, H, W)`` complex.

        Args:
            x: Starting estimate ``(B, H, W)`` complex64.
            gradient: ``x ↦ Aᴴ(Ax − y)/σ²`` for this batch.
            states: One hidden state per layer ``(B, F, H, W)`` or ``None`` (zeros).
            checkpointed: Recompute each layer's activations in the backward pass.

        Returns:
            The estimates after every step (each ``(B, H, W)`` complex64) and the final states.
        """
        estimates = []
        for _ in range(self.time_steps):
            delta, new_states = self.stack(image_channels(x, gradient(x)), states, checkpointed=checkpointed)
            states = list(new_states)
            x = x + channels_image(delta)
            estimates.append(x)
        return estimates, states


class CIRIM(Reconstructor):
    """Cascades of independently recurrent inference machines (see the module docstring).

    Shapes: as :class:`~mrirecon.models.base.Reconstructor`: ``masked_kspace (B, C, H, W)``,
    ``mask (B|1, 1, 1|H, W)``, ``coil_maps (B, C, H, W)`` → ``image (B, H, W)`` complex64 and
    ``steps[cascade][time_step]`` ``(B, H, W)``.
    """

    supports_checkpointing = True

    def __init__(self, config: CIRIMConfig | None = None):
        super().__init__()
        config = config or CIRIMConfig()
        #: The config this model was built from (a :class:`RIMConfig` for a :class:`RIM`).
        self.config: CIRIMConfig | RIMConfig = config
        #: The cascade settings the forward pass uses.
        self.cascade_config = config
        blocks = [RIMBlock(config.cell, config.channels, config.time_steps) for _ in range(config.cascades)]
        self.state_layers = blocks[0].stack.layers
        self.cascades = nn.ModuleList(blocks)
        self.data_consistency = (
            nn.ModuleList(SoftDataConsistency(1.0) for _ in range(config.cascades))
            if config.data_consistency != "implicit"
            else None
        )

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        """Reconstruct a batch of slices."""
        check_inputs(masked_kspace, mask, coil_maps, weights=next(self.parameters()).dtype)
        cfg = self.cascade_config
        operator = MultiCoilOperator(coil_maps, mask, centered=cfg.fft_centered)
        gradient = LogLikelihoodGradient(operator, masked_kspace, sigma=cfg.sigma)
        x = gradient.adjoint_measured  # x₀ = Aᴴy, the zero-filled SENSE image
        layers = self.state_layers
        states: list[torch.Tensor | None] = [None for _ in range(layers)]
        steps: list[list[torch.Tensor]] = []
        checkpointed = self.gradient_checkpointing
        per_step = cfg.data_consistency == "soft_per_step"
        kspace = masked_kspace  # k_in of the per-step form: the k-space a cascade starts from
        # Checkpoints are not nested (a nested layer would be computed three times): several
        # cascades checkpoint each cascade whole (backward recomputes one cascade and keeps its
        # activations), one cascade checkpoints each layer.
        outer = checkpointed and len(self.cascades) > 1
        inner = checkpointed and len(self.cascades) == 1

        def cascade(
            index: int, image: torch.Tensor, start: torch.Tensor, *hidden: torch.Tensor | None
        ) -> tuple[torch.Tensor | None, ...]:
            estimates, new_states = self.cascades[index](image, gradient, list(hidden), checkpointed=inner)
            last = start
            if self.data_consistency is not None and per_step:
                # k_t = y − λ·M⊙(k_in − y) − F S η_t at every step (mridc 0.0.1's explicit DC)
                dc = cast(SoftDataConsistency, self.data_consistency[index])
                base = masked_kspace - dc.residual(start, masked_kspace, mask)
                kspaces = [base - operator.expand(eta) for eta in estimates]
                estimates = [operator.reduce(k) for k in kspaces]
                last = kspaces[-1]
            elif self.data_consistency is not None:
                corrected = self.data_consistency[index](operator.expand(estimates[-1]), masked_kspace, mask)
                estimates[-1] = operator.reduce(corrected)
            return (*estimates, last, *new_states)

        for index in range(len(self.cascades)):
            if index > 0:
                if not cfg.carry_hidden_state:
                    states = [None for _ in range(layers)]
                if not cfg.cascade_gradients:
                    x = x.detach()
                    kspace = kspace.detach()
                    states = [None if s is None else s.detach() for s in states]
            out = run_step(cascade, index, x, kspace, *states, checkpointed=outer)
            estimates = list(out[: cfg.time_steps])
            last = out[cfg.time_steps]
            assert last is not None
            kspace = last
            states = list(out[cfg.time_steps + 1 :])
            x = estimates[-1]
            steps.append(estimates)
        return ReconOutput(x, steps)


class RIM(CIRIM):
    """A recurrent inference machine: one cascade (GRU cells by default); see the module docstring."""

    def __init__(self, config: RIMConfig | None = None):
        rim = config or RIMConfig()
        super().__init__(
            CIRIMConfig(
                cascades=1,
                time_steps=rim.time_steps,
                channels=rim.channels,
                cell=rim.cell,
                sigma=rim.sigma,
                fft_centered=rim.fft_centered,
            )
        )
        self.config = rim
