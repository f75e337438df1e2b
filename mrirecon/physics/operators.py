"""Linear operators with adjoints: the multi-coil MRI forward model A = M·F·S written once.

Every operator has ``forward`` and ``adjoint`` with matching shapes, ``.H`` for the adjoint
operator, ``@`` for composition and ``normal`` for AᴴA. Tests check ⟨Ax, y⟩ = ⟨x, Aᴴy⟩ for each of
them and for their compositions.

:class:`MultiCoilOperator` is the one models use. It folds the phase ramps of the centred FFT into
the coil maps and the mask (``S' = p_in·S``, ``M' = p_out·M``) once at construction, so that each
application costs one expand, one plain FFT and one mask multiply, and its normal operator
``AᴴA = S'ᴴ Fᴴ M F S'`` needs no ramps at all. The normal operator also transforms only the axes
along which the mask varies: for a Cartesian line mask ``(B, 1, 1, W)`` the transforms along H
cancel (``F_Hᴴ F_H = I``), so ``AᴴA`` needs 1-D FFTs along W only.
"""

from __future__ import annotations

import abc

import torch

from mrirecon.physics.fft import centering_phases, fftnc, ifftnc
from mrirecon.physics.sense import sense_expand, sense_reduce
from mrirecon.shapes import check_complex, check_mask

__all__ = [
    "AdjointOperator",
    "ComposedOperator",
    "FourierOperator",
    "LinearOperator",
    "MaskOperator",
    "MultiCoilOperator",
    "SenseOperator",
]


class LinearOperator(abc.ABC):
    """A linear map with its adjoint. Subclasses implement :meth:`forward` and :meth:`adjoint`."""

    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the operator."""

    @abc.abstractmethod
    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Apply the adjoint operator."""

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """Apply AᴴA."""
        return self.adjoint(self.forward(x))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    @property
    def H(self) -> LinearOperator:
        """The adjoint operator."""
        return AdjointOperator(self)

    def __matmul__(self, other: LinearOperator) -> LinearOperator:
        return ComposedOperator(self, other)


class AdjointOperator(LinearOperator):
    """The adjoint of another operator (what ``op.H`` returns)."""

    def __init__(self, operator: LinearOperator):
        self.operator = operator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the wrapped operator's adjoint."""
        return self.operator.adjoint(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Apply the wrapped operator."""
        return self.operator.forward(y)

    @property
    def H(self) -> LinearOperator:
        """The wrapped operator."""
        return self.operator


class ComposedOperator(LinearOperator):
    """``outer @ inner``: applies ``inner`` first."""

    def __init__(self, outer: LinearOperator, inner: LinearOperator):
        self.outer = outer
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``outer(inner(x))``."""
        return self.outer.forward(self.inner.forward(x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``innerᴴ(outerᴴ(y))``."""
        return self.inner.adjoint(self.outer.adjoint(y))


class FourierOperator(LinearOperator):
    """The orthonormal FFT over the last ``ndim`` axes (unitary: its adjoint is its inverse).

    Args:
        ndim: 2 or 3 spatial axes.
        centered: Centred convention (fastMRI) or uncentred (Calgary-Campinas).
    """

    def __init__(self, ndim: int = 2, *, centered: bool = True):
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim}")
        self.ndim = ndim
        self.centered = centered

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image → k-space, any leading axes."""
        return fftnc(x, self.ndim, centered=self.centered)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """k-space → image, any leading axes."""
        return ifftnc(y, self.ndim, centered=self.centered)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """The identity (the transform is unitary)."""
        return x


class MaskOperator(LinearOperator):
    """Multiplication by a real sampling mask (self-adjoint).

    Args:
        mask: Real or boolean tensor that broadcasts against k-space, e.g. ``(B, 1, 1, W)``.
    """

    def __init__(self, mask: torch.Tensor):
        if mask.is_complex():
            raise TypeError("the sampling mask must be real or boolean")
        self.mask = mask.to(torch.float32) if mask.dtype in (torch.bool, torch.uint8) else mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``M · x``."""
        return x * self.mask

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``M · y`` (the mask is real)."""
        return y * self.mask


class SenseOperator(LinearOperator):
    """SENSE expansion ``x ↦ S·x`` from an image ``(B, [S,] H, W)`` to coil images ``(B, C, [S,] H, W)``.

    Args:
        coil_maps: ``(B, C, [S,] H, W)`` complex.
    """

    def __init__(self, coil_maps: torch.Tensor):
        check_complex(coil_maps, name="coil_maps")
        self.coil_maps = coil_maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expand: ``S · x``."""
        return sense_expand(x, self.coil_maps)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Reduce: ``Σ_c conj(S_c) · y_c``."""
        return sense_reduce(y, self.coil_maps)


class MultiCoilOperator(LinearOperator):
    """The multi-coil forward model ``A = M·F·S`` from an image to masked coil k-space.

    Args:
        coil_maps: ``(B, C, [S,] H, W)`` complex.
        mask: Real or boolean, broadcastable to ``(B, C, [S,] H, W)``: ``(B, 1, 1, W)`` for
            Cartesian line masks, ``(B, 1, H, W)`` for 2-D masks.
        ndim: Spatial axes (2, or 3 for volumetric k-space).
        centered: FFT convention of the k-space.

    Shapes:
        ``forward``: image ``(B, [S,] H, W)`` → k-space ``(B, C, [S,] H, W)``;
        ``adjoint``: the reverse; ``normal``: image → image.
    """

    def __init__(self, coil_maps: torch.Tensor, mask: torch.Tensor, *, ndim: int = 2, centered: bool = True):
        check_complex(coil_maps, name="coil_maps")
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim}")
        if coil_maps.ndim != ndim + 2:
            axes = "B, C, S, H, W" if ndim == 3 else "B, C, H, W"
            raise ValueError(f"coil_maps must have shape ({axes}), got {tuple(coil_maps.shape)}")
        check_mask(mask, coil_maps.shape)
        self.ndim = ndim
        self.centered = centered
        self.dims = tuple(range(-ndim, 0))
        mask = mask.to(device=coil_maps.device, dtype=coil_maps.real.dtype)  # float64 for complex128 maps
        self.mask = mask
        self.coil_maps = coil_maps
        if centered:
            sizes = tuple(int(n) for n in coil_maps.shape[-ndim:])
            p_in, p_out = centering_phases(
                sizes, coil_maps.device, double=coil_maps.dtype == torch.complex128
            )
            self._maps = coil_maps * p_in
            self._mask_out = mask * p_out
        else:
            self._maps = coil_maps
            self._mask_out = mask
        self._maps_conj = self._maps.conj().resolve_conj()
        # AᴴA transforms only the axes where the mask varies (the others cancel: Fᴴ·F = I), and
        # applies the mask twice: M² (= M for a 0/1 mask, not for weights)
        self._normal_dims = tuple(d for d in self.dims if mask.shape[d] != 1)
        self._mask_normal = mask * mask
        self._mask_out_conj = (
            self._mask_out.conj().resolve_conj() if self._mask_out.is_complex() else self._mask_out
        )

    def _check(self, x: torch.Tensor, *, kspace: bool) -> None:
        """Refuse what would broadcast silently against the maps: coil images where an image
        belongs, an unbatched or other-batch input, a real tensor."""
        maps = self.coil_maps.shape
        grid = maps[1:] if kspace else maps[2:]
        batch = x.shape[0] == maps[0] or maps[0] == 1
        if not x.is_complex() or x.ndim != len(grid) + 1 or x.shape[1:] != grid or not batch:
            what = "k-space (B, C, [S,] H, W)" if kspace else "an image (B, [S,] H, W)"
            raise ValueError(
                f"the operator of coil maps {tuple(maps)} takes complex {what} of that batch and grid, "
                f"got {x.dtype} {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``M·F·S·x``: image ``(B, [S,] H, W)`` → masked k-space ``(B, C, [S,] H, W)``."""
        self._check(x, kspace=False)
        k = torch.fft.fftn(self._maps * x.unsqueeze(1), dim=self.dims, norm="ortho")
        return k.mul_(self._mask_out)  # in place on a fresh tensor; the mask is a constant

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Sᴴ·Fᴴ·M·y``: k-space ``(B, C, [S,] H, W)`` → image ``(B, [S,] H, W)``."""
        self._check(y, kspace=True)
        z = torch.fft.ifftn(y * self._mask_out_conj, dim=self.dims, norm="ortho")
        return torch.sum(self._maps_conj * z, dim=1)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``AᴴA·x = Sᴴ·Fᴴ·M²·F·S·x`` without any phase ramp, transforming only the axes along which
        the mask varies (1-D FFTs for line masks): image → image."""
        self._check(x, kspace=False)
        coil_images = self._maps * x.unsqueeze(1)
        if self._normal_dims:
            k = torch.fft.fftn(coil_images, dim=self._normal_dims, norm="ortho")
            k.mul_(self._mask_normal)
            z = torch.fft.ifftn(k, dim=self._normal_dims, norm="ortho")
        else:  # a mask constant over the image: Fᴴ·M²·F = M²
            z = coil_images * self._mask_normal
        return torch.sum(self._maps_conj * z, dim=1)

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        """Fully sampled coil k-space ``F·S·x`` (no mask), in the ordinary convention."""
        return fftnc(sense_expand(x, self.coil_maps), self.ndim, centered=self.centered)

    def reduce(self, k: torch.Tensor) -> torch.Tensor:
        """``Sᴴ·Fᴴ·k`` without the mask: the SENSE combination of coil k-space."""
        return sense_reduce(ifftnc(k, self.ndim, centered=self.centered), self.coil_maps)
