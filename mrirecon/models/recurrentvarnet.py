"""Recurrent Variational Network (Yiasemis et al., CVPR 2022), as in DIRECT.

A k-space method: from ``k_0 = y``, each of T unshared blocks takes a learned gradient step on the
data-consistency residual and adds a learned regulariser term,

    k_{t+1} = k_t − α_t·M⊙(k_t − y) + F S w_t,   (w_t, h_{t+1}) = G_t(Sᴴ F⁻¹ k_t, h_t)

where ``G_t`` is a 4-layer convolutional GRU (:class:`~mrirecon.models.stack.RecurrentConvStack`
with DIRECT's layout: convs 5×5, 3×3 dil 2, 3×3, 3×3, 128 features, 1×1 GRU cells whose reset gate
acts before the state projection, ReLU between layers, a 3×3 output convolution) on the
coil-combined image, and ``α_t`` is a learned scalar (initialised to 1; the step is
:class:`mrirecon.physics.SoftDataConsistency`). The image of step t is ``Sᴴ F⁻¹ k_t``.

The recurrent-state initialiser (RSI) replaces the zero initial states: four replication-padded
3×3 convolutions (32, 32, 64, 64 features, dilations 1, 1, 2, 4, ReLU), the last three feature maps
concatenated (multiscale aggregation), and one 1×1 convolution + ReLU per GRU layer. Its input is
what DIRECT gives it (``initializer_initialization``), as two channels: ``"sense"`` (the default,
the paper's) the k-space of the SENSE image, ``F(Sᴴ F⁻¹ y)``; ``"zero_filled"`` DIRECT's
``F(F⁻¹ y)`` summed over coils, which is the coil sum of the measured k-space ``Σ_c y_c``. DIRECT's
third input, ``input_image`` (an image passed in from outside), has no place in the reconstructor
interface and is not offered.

``normalized`` is DIRECT's ``NormConv2dGRU``: the regulariser sees its input with the real and the
imaginary channel each normalised to zero mean and unit (sample) standard deviation over the image,
and its output is mapped back with the same mean and standard deviation. With one GRU layer the
regulariser's output convolution has dilation 2, as DIRECT's ``Conv2dGRU`` builds it (its second
convolution is the dilated one, whether or not it is the last).

Optionally a small U-Net refines the coil maps first (:class:`~mrirecon.models.coil_refinement.
CoilMapRefinement`, all coils in one batched call).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mrirecon.errors import ConfigError
from mrirecon.models.base import ReconOutput, Reconstructor
from mrirecon.models.cells import ConvGRUCell
from mrirecon.models.coil_refinement import CoilMapRefinement
from mrirecon.models.inputs import check_inputs
from mrirecon.models.layers import ReplicationConv2d, channels_image, image_channels
from mrirecon.models.stack import RecurrentConvStack
from mrirecon.physics import MultiCoilOperator, SoftDataConsistency, fftnc

__all__ = ["RecurrentStateInitializer", "RecurrentVarNet", "RecurrentVarNetBlock", "RecurrentVarNetConfig"]


@dataclass(frozen=True)
class RecurrentVarNetConfig:
    """Settings of :class:`RecurrentVarNet` (defaults: the paper's Calgary-Campinas config).

    Attributes:
        steps: Number of blocks T (8).
        hidden_channels: Features of the GRU regulariser (128).
        layers: Conv → GRU layers of the regulariser (4).
        share_weights: One block for every step (``False``: T unshared blocks, the paper's).
        learned_initializer: Initialise the hidden states with the RSI (``False``: zeros).
        initializer_channels: Features of the RSI's convolutions.
        initializer_dilations: Their dilations.
        initializer_multiscale: How many of the last RSI feature maps are concatenated (1: none).
        refine_coil_maps: Refine the coil maps with a small U-Net first (DIRECT's "sensitivity
            model"; off in the reference configuration the benchmark compares with).
        coil_refinement_channels: First-level features of that U-Net (8).
        coil_refinement_pools: Its pooling levels (4).
        fft_centered: FFT convention of the k-space (``False`` for Calgary-Campinas).
        initializer_input: What the RSI sees: ``"sense"`` (``F(Sᴴ F⁻¹ y)``, the paper's) or
            ``"zero_filled"`` (``Σ_c y_c``, DIRECT's ``zero_filled``); see the module docstring.
        normalized: Normalise the regulariser's input and de-normalise its output per image and
            real/imaginary channel (DIRECT's ``normalized: true``, ``NormConv2dGRU``).
    """

    steps: int = 8
    hidden_channels: int = 128
    layers: int = 4
    share_weights: bool = False
    learned_initializer: bool = True
    initializer_channels: tuple[int, ...] = (32, 32, 64, 64)
    initializer_dilations: tuple[int, ...] = (1, 1, 2, 4)
    initializer_multiscale: int = 3
    refine_coil_maps: bool = False
    coil_refinement_channels: int = 8
    coil_refinement_pools: int = 4
    fft_centered: bool = True
    initializer_input: Literal["sense", "zero_filled"] = "sense"
    normalized: bool = False

    def __post_init__(self) -> None:
        if self.initializer_input not in ("sense", "zero_filled"):
            raise ConfigError(
                f"unknown initializer_input '{self.initializer_input}'",
                hint="choose 'sense' or 'zero_filled' (DIRECT's 'input_image' needs an image the "
                "reconstructor interface does not carry)",
            )
        for name in ("steps", "hidden_channels", "layers", "coil_refinement_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.coil_refinement_pools < 1:  # the refinement U-Net pools at least once
            raise ConfigError(f"coil_refinement_pools must be ≥ 1, got {self.coil_refinement_pools}")
        if self.learned_initializer:
            if not self.initializer_channels or len(self.initializer_channels) != len(
                self.initializer_dilations
            ):
                raise ConfigError(
                    "initializer_channels and initializer_dilations must be non-empty and equally long, got "
                    f"{list(self.initializer_channels)} and {list(self.initializer_dilations)}"
                )
            if min(self.initializer_channels) < 1 or min(self.initializer_dilations) < 1:
                raise ConfigError("initializer_channels and initializer_dilations must be positive")
            if not 1 <= self.initializer_multiscale <= len(self.initializer_channels):
                raise ConfigError(
                    f"initializer_multiscale must be between 1 and {len(self.initializer_channels)}, "
                    f"got {self.initializer_multiscale}"
                )


class RecurrentStateInitializer(nn.Module):
    """The RSI: initial hidden states of the GRU layers from a two-channel input.

    Args:
        hidden_channels: Features of each state.
        layers: Number of states (GRU layers).
        channels: Features of the dilated convolutions.
        dilations: Their dilations (3×3 kernels, replication padding).
        multiscale: Number of last feature maps concatenated before the heads.

    Shapes:
        ``(B, 2, H, W)`` → ``layers`` states ``(B, hidden_channels, H, W)``.
    """

    def __init__(
        self,
        hidden_channels: int,
        layers: int,
        channels: tuple[int, ...],
        dilations: tuple[int, ...],
        multiscale: int,
    ):
        super().__init__()
        self.convs = nn.ModuleList()
        features = 2
        for width, dilation in zip(channels, dilations):
            self.convs.append(ReplicationConv2d(features, width, 3, dilation=dilation))
            features = width
        self.multiscale = multiscale
        aggregated = sum(channels[-multiscale:])
        self.heads = nn.ModuleList(ReplicationConv2d(aggregated, hidden_channels, 1) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The initial states."""
        features = []
        for conv in self.convs:
            x = F.relu(conv(x), inplace=True)
            features.append(x)
        if self.multiscale > 1:
            x = torch.cat(features[-self.multiscale :], dim=1)
        return [F.relu(head(x), inplace=True) for head in self.heads]


class RecurrentVarNetBlock(nn.Module):
    """One step: learned data-consistency step plus the GRU regulariser's term, in k-space.

    Args:
        hidden_channels: Features of the regulariser.
        layers: Its conv → GRU layers.
        normalized: Normalise the regulariser's input, de-normalise its output (``NormConv2dGRU``).
    """

    def __init__(self, hidden_channels: int, layers: int, normalized: bool = False):
        super().__init__()
        self.normalized = normalized
        self.data_consistency = SoftDataConsistency(1.0)  # α_t
        self.regularizer = RecurrentConvStack(
            2,
            hidden_channels,
            2,
            partial(ConvGRUCell, reset="before"),
            kernels=(5, *([3] * (layers - 1))),
            dilations=(1, *([2] if layers > 1 else []), *([1] * (layers - 2))),
            output_kernel=3,
            output_dilation=2 if layers == 1 else 1,  # DIRECT: the second conv is dilated
            output_bias=True,
            relu_states=True,
            kaiming_init=False,
        )

    def forward(
        self,
        kspace: torch.Tensor,
        image: torch.Tensor,
        measured: torch.Tensor,
        mask: torch.Tensor,
        operator: MultiCoilOperator,
        states: list[torch.Tensor | None],
        *,
        checkpointed: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """``k_{t+1}`` and the new states from ``k_t`` ``(B, C, H, W)`` and its image ``Sᴴ F⁻¹ k_t``
        (``checkpointed``: recompute each regulariser layer in the backward pass)."""
        x = image_channels(image)
        if self.normalized:  # DIRECT's NormConv2dGRU: two groups (real, imaginary), unbiased std
            mean = x.mean(dim=(-2, -1), keepdim=True)
            std = x.std(dim=(-2, -1), keepdim=True).clamp_min(1e-12)  # a flat image: no 0/0
            x = (x - mean) / std
        w, new_states = self.regularizer(x, states, checkpointed=checkpointed)
        if self.normalized:
            w = w.to(std.dtype) * std + mean  # in float32 (a bfloat16 CNN output under autocast)
        new_kspace = self.data_consistency(kspace, measured, mask) + operator.expand(channels_image(w))
        return new_kspace, list(new_states)


class RecurrentVarNet(Reconstructor):
    """Recurrent Variational Network (see the module docstring).

    Shapes: as :class:`~mrirecon.models.base.Reconstructor`; ``image (B, H, W)`` is the SENSE
    combination ``Sᴴ F⁻¹ k_T``, ``steps = [[image after step 1, …, image after step T]]``.
    """

    supports_checkpointing = True

    def __init__(self, config: RecurrentVarNetConfig | None = None):
        super().__init__()
        self.config = config = config or RecurrentVarNetConfig()
        self.blocks = nn.ModuleList(
            RecurrentVarNetBlock(config.hidden_channels, config.layers, config.normalized)
            for _ in range(1 if config.share_weights else config.steps)
        )
        self.initializer = (
            RecurrentStateInitializer(
                config.hidden_channels,
                config.layers,
                tuple(config.initializer_channels),
                tuple(config.initializer_dilations),
                config.initializer_multiscale,
            )
            if config.learned_initializer
            else None
        )
        self.coil_refinement = (
            CoilMapRefinement(config.coil_refinement_channels, config.coil_refinement_pools)
            if config.refine_coil_maps
            else None
        )

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        """Reconstruct a batch of slices."""
        check_inputs(masked_kspace, mask, coil_maps, weights=next(self.parameters()).dtype)
        cfg = self.config
        if self.coil_refinement is not None:
            coil_maps = self.coil_refinement(coil_maps)
        operator = MultiCoilOperator(coil_maps, mask, centered=cfg.fft_centered)
        image = operator.reduce(masked_kspace)  # Sᴴ F⁻¹ y
        states: list[torch.Tensor | None] = [None] * cfg.layers
        if self.initializer is not None:
            if cfg.initializer_input == "zero_filled":  # DIRECT: Σ_c F(F⁻¹ y_c) = Σ_c y_c
                init_input = image_channels(masked_kspace.sum(dim=1))
            else:
                init_input = image_channels(fftnc(image, 2, centered=cfg.fft_centered))
            states = list(self.initializer(init_input))

        kspace = masked_kspace
        estimates = []
        for t in range(cfg.steps):
            block = self.blocks[0 if cfg.share_weights else t]
            kspace, states = block(
                kspace, image, masked_kspace, mask, operator, states, checkpointed=self.gradient_checkpointing
            )
            image = operator.reduce(kspace)
            estimates.append(image)
        return ReconOutput(image, [estimates])
