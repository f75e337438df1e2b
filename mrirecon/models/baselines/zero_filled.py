"""The zero-filled reconstruction: the measured k-space with zeros elsewhere, back to the image.

With the coil maps (default, ``combine="sense"``) it is ``x₀ = Aᴴy = Σ_c conj(S_c)·F⁻¹(M·y_c)``,
the starting point of every model in mrirecon.

How this relates to the RSS of the zero-filled coil images that fastMRI reports (and that
:mod:`mrirecon.evaluation` stores as ``zero_filled``): with Σ_c |S_c|² = 1 at a pixel, the
Cauchy-Schwarz inequality gives ``|Σ_c conj(S_c)·x_c| ≤ sqrt(Σ_c |x_c|²)``, so ``|Aᴴy| ≤ RSS``
everywhere, with equality exactly where the coil images are proportional to the maps
(``x_c = S_c·ρ``). That holds for fully sampled noiseless data and maps that fit it; with
undersampling the aliasing of each coil differs, and the SENSE combination is smaller than the RSS
(it also lacks the RSS's positive noise bias in the background, and is zero where the maps are).
``combine="rss"`` returns fastMRI's zero-filled baseline itself: the RSS as a complex image of
zero phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from mrirecon.models.base import ReconOutput, Reconstructor
from mrirecon.models.baselines.inputs import check_inputs
from mrirecon.physics import MultiCoilOperator, ifft2c, rss

__all__ = ["ZeroFilled", "ZeroFilledConfig", "zero_filled_image"]


@dataclass(frozen=True)
class ZeroFilledConfig:
    """Settings of :class:`ZeroFilled`.

    Attributes:
        combine: ``"sense"``: ``Aᴴy`` combined with the coil maps (complex, keeps the phase);
            ``"rss"``: root-sum-of-squares of the zero-filled coil images (fastMRI's baseline;
            returned as a complex image of zero phase).
    """

    combine: Literal["sense", "rss"] = "sense"

    def __post_init__(self) -> None:
        if self.combine not in ("sense", "rss"):
            raise ValueError(f"combine must be 'sense' or 'rss', got {self.combine!r}")


def zero_filled_image(
    masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
) -> torch.Tensor:
    """``Aᴴy``: the zero-filled image combined with the coil maps.

    Args:
        masked_kspace: ``(B, C, H, W)`` complex64 measured k-space.
        mask: ``(B|1, 1, 1|H, W)`` sampling mask.
        coil_maps: ``(B, C, H, W)`` complex64.

    Returns:
        ``(B, H, W)`` complex64.
    """
    check_inputs(masked_kspace, mask, coil_maps)
    return MultiCoilOperator(coil_maps, mask).adjoint(masked_kspace)


class ZeroFilled(Reconstructor):
    """Zero-filled reconstruction (classical: no parameters, no checkpoint).

    Shapes: as :class:`~mrirecon.models.base.Reconstructor`; returns ``(B, H, W)`` complex64 and
    ``steps = [[image]]``.
    """

    trainable = False

    def __init__(self, config: ZeroFilledConfig | None = None):
        super().__init__()
        self.config = config or ZeroFilledConfig()

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        """The zero-filled image (see the module docstring for the two combinations)."""
        if self.config.combine == "rss":
            check_inputs(masked_kspace, mask, coil_maps)
            image = rss(ifft2c(masked_kspace)).to(torch.complex64)
        else:
            image = zero_filled_image(masked_kspace, mask, coil_maps)
        return ReconOutput(image, [[image]])
