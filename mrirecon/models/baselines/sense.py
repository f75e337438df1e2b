"""SENSE (Pruessmann et al. 1999/2001) by conjugate gradient on the Tikhonov-damped normal equations.

Solves ``(AᴴA + λI)·x = Aᴴy`` with ``A = M·F·S`` (:class:`~mrirecon.physics.MultiCoilOperator`) by
:func:`~mrirecon.physics.conjugate_gradient`, from ``x = 0``. Since the maps are normalised
(Σ_c |S_c|² = 1) and F is unitary, the eigenvalues of AᴴA lie in [0, 1] whatever the data's
scale, so λ means the same for every input and the solution scales linearly with the k-space.
With full sampling AᴴA is 1 wherever the maps are, and the solution is the truth divided by 1 + λ
there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mrirecon.models.base import ReconOutput, Reconstructor
from mrirecon.models.baselines.inputs import check_inputs
from mrirecon.physics import MultiCoilOperator, conjugate_gradient

__all__ = ["SenseCG", "SenseConfig"]


@dataclass(frozen=True)
class SenseConfig:
    """Settings of :class:`SenseCG`.

    Attributes:
        iterations: Maximum conjugate-gradient iterations.
        regularization: The Tikhonov weight λ ≥ 0 (relative to AᴴA, whose eigenvalues are in [0, 1]).
        tolerance: Stop early when every slice's residual norm is below this fraction of ‖Aᴴy‖.
    """

    iterations: int = 30
    regularization: float = 0.01
    tolerance: float = 1e-6

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {self.iterations}")
        if self.regularization < 0:
            raise ValueError(f"regularization must be non-negative, got {self.regularization}")
        if self.tolerance < 0:
            raise ValueError(f"tolerance must be non-negative, got {self.tolerance}")


class SenseCG(Reconstructor):
    """CG-SENSE (classical: no parameters, no checkpoint).

    Shapes: as :class:`~mrirecon.models.base.Reconstructor`; returns ``(B, H, W)`` complex64 and
    ``steps = [[image]]``. Differentiable (the unrolled CG iterations), though nothing in it is
    trained.
    """

    trainable = False

    def __init__(self, config: SenseConfig | None = None):
        super().__init__()
        self.config = config or SenseConfig()

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        """Solve ``(AᴴA + λI)·x = Aᴴy`` for every slice of the batch."""
        check_inputs(masked_kspace, mask, coil_maps)
        operator = MultiCoilOperator(coil_maps, mask)
        image = conjugate_gradient(
            operator.normal,
            operator.adjoint(masked_kspace),
            damping=self.config.regularization,
            max_iter=self.config.iterations,
            tol=self.config.tolerance,
        )
        return ReconOutput(image, [[image]])
