"""E2E-VarNet (Sriram et al. 2020, "End-to-end variational networks for accelerated MRI
reconstruction"), written on mrirecon's physics.

Each of the T cascades updates the multi-coil k-space estimate ``k`` (starting from the measured
``y``) by soft data consistency and a U-Net regulariser on the coil-combined image:

    k ← k − η_t·M·(k − y) − F·S·U_t(Sᴴ·F⁻¹·k)

with a learned scalar η_t per cascade (:class:`mrirecon.physics.SoftDataConsistency`, initialised
to 1) and ``U_t`` a :class:`~mrirecon.models.baselines.unet.NormUNet`. The coil maps S are, as in
the paper, estimated by a small U-Net from the fully sampled centre of the measured k-space
(``coil_maps="learned"``, default): the ACS block of each sample's mask is kept, the coil images
``F⁻¹(ACS·y)`` go through one NormUNet with the coils folded into the batch (all coils at once),
and the result is normalised to Σ_c |S_c|² = 1. So by default **the coil maps passed to forward
are ignored**; ``coil_maps="given"`` uses them instead and drops the sensitivity network.

The output is, as in the paper and fastMRI, the RSS of the final coil images ``F⁻¹k``
(``output="rss"``, returned as a complex image of zero phase), or their SENSE combination with the
maps (``output="sense"``, keeps the phase). fastMRI's defaults: 12 cascades, 18 channels and
4 pools per cascade U-Net, 8 channels and 4 pools for the sensitivity U-Net.

Why not MONAI's ``VariationalNetworkModel`` (monai 1.6.1): it takes one mask for the whole batch
(it locates the ACS with a Python ``while`` over mask values, which fails for per-sample masks),
only 1-D line masks (2-D masks get a wrong ACS), returns only the RSS magnitude, uses MONAI's
BasicUNet (max pooling, features (32, 32, 64, 128, 256, 32)) rather than fastMRI's U-Net, and
works on real tensors with a trailing axis of 2. Its FFT is the same centred orthonormal one as
ours, and its cascade update is the same operator: the tests check our cascade against MONAI's
``VarNetBlock`` given the same regulariser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from mrirecon.models.base import ReconOutput, Reconstructor
from mrirecon.models.baselines.inputs import acs_regions, check_inputs
from mrirecon.models.baselines.unet import NormUNet
from mrirecon.physics import MultiCoilOperator, SoftDataConsistency, ifft2c, normalize_coil_maps, rss

__all__ = ["E2EVarNet", "SensitivityNet", "VarNetCascade", "VarNetConfig"]


@dataclass(frozen=True)
class VarNetConfig:
    """Settings of :class:`E2EVarNet` (fastMRI's defaults).

    Attributes:
        num_cascades: Cascades T.
        chans: Channels of the first level of each cascade's U-Net.
        pools: Pooling layers of each cascade's U-Net.
        sens_chans: Channels of the sensitivity U-Net.
        sens_pools: Pooling layers of the sensitivity U-Net.
        coil_maps: ``"learned"``: estimate the maps from the measured ACS with the sensitivity
            U-Net (the paper; the given maps are ignored); ``"given"``: use the given maps.
        output: ``"rss"``: RSS of the final coil images (the paper); ``"sense"``: their SENSE
            combination with the maps.
    """

    num_cascades: int = 12
    chans: int = 18
    pools: int = 4
    sens_chans: int = 8
    sens_pools: int = 4
    coil_maps: Literal["learned", "given"] = "learned"
    output: Literal["rss", "sense"] = "rss"

    def __post_init__(self) -> None:
        for name in ("num_cascades", "chans", "pools", "sens_chans", "sens_pools"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.coil_maps not in ("learned", "given"):
            raise ValueError(f"coil_maps must be 'learned' or 'given', got {self.coil_maps!r}")
        if self.output not in ("rss", "sense"):
            raise ValueError(f"output must be 'rss' or 'sense', got {self.output!r}")


class SensitivityNet(nn.Module):
    """Coil maps from the fully sampled centre of the measured k-space (E2E-VarNet's).

    Args:
        chans: Channels of the U-Net's first level.
        pools: Pooling layers.

    Shapes:
        ``masked_kspace (B, C, H, W)`` complex and ``mask (B|1, 1, 1|H, W)`` → maps ``(B, C, H, W)``
        complex64 with Σ_c |S_c|² = 1.
    """

    def __init__(self, chans: int = 8, pools: int = 4):
        super().__init__()
        self.net = NormUNet(1, chans, pools)

    def forward(self, masked_kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Estimate the maps (shapes in the class docstring)."""
        b, c, h, w = masked_kspace.shape
        acs = acs_regions(mask.expand(b, -1, -1, -1)).to(masked_kspace.device)
        coil_images = ifft2c(masked_kspace * acs)
        maps = self.net(coil_images.reshape(b * c, 1, h, w)).reshape(b, c, h, w)
        return normalize_coil_maps(maps)


class VarNetCascade(nn.Module):
    """One cascade: ``k − η·M·(k − y) − F·S·U(Sᴴ·F⁻¹·k)``.

    Args:
        regularizer: Maps a complex image ``(B, 1, H, W)`` to one of the same shape.
    """

    def __init__(self, regularizer: nn.Module):
        super().__init__()
        self.regularizer = regularizer
        self.data_consistency = SoftDataConsistency(init=1.0)

    def forward(
        self, kspace: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor, operator: MultiCoilOperator
    ) -> torch.Tensor:
        """Update the k-space estimate.

        Args:
            kspace: Current estimate ``(B, C, H, W)`` complex.
            measured: Measured k-space ``(B, C, H, W)`` complex.
            mask: ``(B|1, 1, 1|H, W)`` sampling mask.
            operator: The operator holding the coil maps (its unmasked ``expand``/``reduce`` are used).

        Returns:
            The new estimate, ``(B, C, H, W)`` complex.
        """
        image = operator.reduce(kspace).unsqueeze(1)
        refined = operator.expand(self.regularizer(image).squeeze(1))
        return self.data_consistency(kspace, measured, mask) - refined


class E2EVarNet(Reconstructor):
    """End-to-end variational network (trainable).

    Shapes: as :class:`~mrirecon.models.base.Reconstructor`; returns ``(B, H, W)`` complex64 and
    ``steps = [[image]]``. With :meth:`set_gradient_checkpointing` each cascade's activations are
    recomputed in the backward pass.
    """

    supports_checkpointing = True

    def __init__(self, config: VarNetConfig | None = None):
        super().__init__()
        self.config = config or VarNetConfig()
        cfg = self.config
        self.sens_net = SensitivityNet(cfg.sens_chans, cfg.sens_pools) if cfg.coil_maps == "learned" else None
        self.cascades = nn.ModuleList(
            [VarNetCascade(NormUNet(1, cfg.chans, cfg.pools)) for _ in range(cfg.num_cascades)]
        )

    def needs_coil_maps(self) -> bool:
        return self.sens_net is None

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        """Run the cascades from the measured k-space."""
        check_inputs(
            masked_kspace,
            mask,
            coil_maps,
            maps_optional=self.sens_net is not None,
            weights=next(self.parameters()).dtype,
        )
        maps = coil_maps if self.sens_net is None else self.sens_net(masked_kspace, mask)
        operator = MultiCoilOperator(maps, mask)
        kspace = masked_kspace
        for cascade in self.cascades:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                kspace = checkpoint(cascade, kspace, masked_kspace, mask, operator, use_reentrant=False)
            else:
                kspace = cascade(kspace, masked_kspace, mask, operator)
        if self.config.output == "rss":
            image = rss(ifft2c(kspace)).to(torch.complex64)
        else:
            image = operator.reduce(kspace)
        return ReconOutput(image, [[image]])
