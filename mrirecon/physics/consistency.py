"""Data consistency and the RIM log-likelihood gradient.

- Hard data consistency replaces the predicted k-space by the measurement wherever it was sampled:
  ``k ← (1 − M)·k + M·y``. It is idempotent and keeps measured samples exactly.
- Soft data consistency pulls the prediction towards the measurement with a learned weight λ:
  ``k ← k − λ·M·(k − y)``.
- The log-likelihood gradient of the RIM is ``∇ = Aᴴ(A·x − y)/σ²``, the gradient of
  ``½‖A·x − y‖²/σ²`` with respect to the (complex) image ``x``.
"""

from __future__ import annotations

import torch
from torch import nn

from mrirecon.physics.operators import LinearOperator
from mrirecon.shapes import check_mask

__all__ = [
    "LogLikelihoodGradient",
    "SoftDataConsistency",
    "hard_data_consistency",
    "log_likelihood_gradient",
]


def _as_bool(mask: torch.Tensor) -> torch.Tensor:
    return mask if mask.dtype == torch.bool else mask != 0


def hard_data_consistency(kspace: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Replace the sampled locations of ``kspace`` by the measured values.

    Args:
        kspace: Predicted k-space ``(B, C, [S,] H, W)`` complex.
        measured: Measured (masked) k-space, same shape.
        mask: Sampling mask broadcastable to the k-space, e.g. ``(B, 1, 1, W)``; non-zero = sampled.

    Returns:
        k-space equal to ``measured`` where sampled and to ``kspace`` elsewhere.
    """
    _check(kspace, measured, mask)
    return torch.where(_as_bool(mask), measured, kspace)


def _check(kspace: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor) -> None:
    if kspace.shape != measured.shape:
        raise ValueError(f"kspace {tuple(kspace.shape)} and measured {tuple(measured.shape)} must match")
    check_mask(mask, kspace.shape)


class SoftDataConsistency(nn.Module):
    """Soft data consistency with a learned weight: ``k − λ·M·(k − y)``.

    Args:
        init: Initial value of λ (1 makes it hard data consistency at initialisation).
    """

    def __init__(self, init: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(float(init)))

    def forward(self, kspace: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Apply the update.

        Args:
            kspace: ``(B, C, [S,] H, W)`` complex prediction.
            measured: ``(B, C, [S,] H, W)`` complex measurement.
            mask: Broadcastable real or boolean mask.

        Returns:
            The updated k-space, same shape.
        """
        return kspace - self.residual(kspace, measured, mask)

    def residual(self, kspace: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The weighted residual ``λ·M·(k − y)`` that :meth:`forward` subtracts (shapes as there)."""
        _check(kspace, measured, mask)
        m = mask.to(kspace.real.dtype)
        return self.weight * m * (kspace - measured)


def log_likelihood_gradient(
    image: torch.Tensor, measured: torch.Tensor, operator: LinearOperator, sigma: float = 1.0
) -> torch.Tensor:
    """The RIM's data term gradient ``Aᴴ(A·x − y)/σ²``.

    Args:
        image: Current estimate ``x`` ``(B, [S,] H, W)`` complex.
        measured: Measured k-space ``y`` ``(B, C, [S,] H, W)`` complex.
        operator: The forward operator A (usually :class:`~mrirecon.physics.MultiCoilOperator`).
        sigma: Noise standard deviation σ.

    Returns:
        The gradient, same shape as ``image``.
    """
    return operator.adjoint(operator.forward(image) - measured) / (sigma * sigma)


class LogLikelihoodGradient:
    """``x ↦ Aᴴ(A·x − y)/σ²`` for repeated use: ``Aᴴy`` is computed once and ``AᴴA·x`` uses the
    operator's ramp-free normal path, which is what the RIM evaluates at every time step.

    Args:
        operator: The forward operator A.
        measured: Measured k-space ``y`` ``(B, C, [S,] H, W)``.
        sigma: Noise standard deviation σ.
    """

    def __init__(self, operator: LinearOperator, measured: torch.Tensor, sigma: float = 1.0):
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.operator = operator
        self.scale = 1.0 / (sigma * sigma)
        self.adjoint_measured = operator.adjoint(measured)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """The gradient at ``image`` ``(B, [S,] H, W)``."""
        grad = self.operator.normal(image) - self.adjoint_measured
        return grad * self.scale if self.scale != 1.0 else grad
