"""The run-time check of a reconstructor's inputs (shapes that would otherwise broadcast silently)."""

from __future__ import annotations

import torch

from mrirecon.shapes import check_complex, check_shape

__all__ = ["check_inputs"]

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def check_inputs(
    masked_kspace: torch.Tensor,
    mask: torch.Tensor,
    coil_maps: torch.Tensor,
    *,
    maps_optional: bool = False,
    weights: torch.dtype | None = None,
) -> dict[str, int]:
    """Check the arguments of :meth:`Reconstructor.forward` and return their sizes.

    ``maps_optional``: a model that estimates its own maps also takes none (an empty tensor, what
    ``--coil-maps none`` passes). ``weights``: the real dtype of a learned model's weights; its
    complex inputs must have that precision (complex64 for float32 weights).

    Args:
        masked_kspace: ``(B, C, H, W)`` complex.
        mask: ``(B|1, 1, 1|H, W)`` real or boolean, 1 = sampled.
        coil_maps: ``(B, C, H, W)`` complex.

    Returns:
        ``{"B": ..., "C": ..., "H": ..., "W": ...}``.

    Raises:
        TypeError: for a real k-space or coil maps, or a complex mask.
        ValueError: for shapes that do not match.
    """
    check_complex(masked_kspace, name="masked_kspace")
    check_complex(coil_maps, name="coil_maps")
    dims = check_shape(masked_kspace, "B C H W", name="masked_kspace")
    if not (maps_optional and coil_maps.numel() == 0):
        check_shape(coil_maps, "B C H W", name="coil_maps", dims=dims)
    if mask.is_complex():
        raise TypeError("the sampling mask must be real or boolean")
    expected = _COMPLEX.get(weights) if weights is not None else None
    for name, tensor in (("masked_kspace", masked_kspace), ("coil_maps", coil_maps)):
        if expected is not None and tensor.dtype != expected:
            raise TypeError(
                f"{name} is {tensor.dtype} and the model's weights are {weights}: "
                f"convert the inputs with .to({expected})"
            )
    allowed = ((1, dims["B"]), (1,), (1, dims["H"]), (dims["W"],))
    if mask.ndim != 4 or any(size not in ok for size, ok in zip(mask.shape, allowed)):
        raise ValueError(
            f"mask must have shape (B|1, 1, 1|H, W) = ({dims['B']}|1, 1, 1|{dims['H']}, {dims['W']}) "
            f"for k-space {tuple(masked_kspace.shape)}, got {tuple(mask.shape)}"
        )
    return dims
