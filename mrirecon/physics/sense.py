"""SENSE expand and reduce with coil sensitivity maps, and root-sum-of-squares coil combination.

Shapes (``[S]`` is the optional slice axis of 3-D data):

- image ``x``: ``(B, [S,] H, W)`` complex
- coil maps ``S``: ``(B, C, [S,] H, W)`` complex, normalised so that Σ_c |S_c|² = 1 where there is signal
- coil images ``x_c``: ``(B, C, [S,] H, W)`` complex

``expand(x) = S · x`` and ``reduce(x_c) = Σ_c conj(S_c) · x_c`` are adjoint to each other.
"""

from __future__ import annotations

import torch

from mrirecon.shapes import check_complex

__all__ = ["rss", "rss_complex", "sense_expand", "sense_reduce"]


def _check_maps(image_ndim: int, coil_maps: torch.Tensor) -> None:
    check_complex(coil_maps, name="coil_maps")
    if coil_maps.ndim != image_ndim + 1:
        raise ValueError(
            f"coil_maps must have one axis more than the image (B, C, [S,] H, W); "
            f"got coil_maps {tuple(coil_maps.shape)} for an image of rank {image_ndim}"
        )


def sense_expand(image: torch.Tensor, coil_maps: torch.Tensor) -> torch.Tensor:
    """Coil images from an image: ``x_c = S_c · x``.

    Args:
        image: ``(B, [S,] H, W)`` complex.
        coil_maps: ``(B, C, [S,] H, W)`` complex (B may be 1 to share maps over the batch).

    Returns:
        ``(B, C, [S,] H, W)`` complex.
    """
    _check_maps(image.ndim, coil_maps)
    return coil_maps * image.unsqueeze(1)


def sense_reduce(coil_images: torch.Tensor, coil_maps: torch.Tensor) -> torch.Tensor:
    """Coil combination with the maps: ``x = Σ_c conj(S_c) · x_c`` (the adjoint of :func:`sense_expand`).

    Args:
        coil_images: ``(B, C, [S,] H, W)`` complex.
        coil_maps: ``(B, C, [S,] H, W)`` complex.

    Returns:
        ``(B, [S,] H, W)`` complex.
    """
    check_complex(coil_images, name="coil_images")
    _check_maps(coil_images.ndim - 1, coil_maps)
    return torch.sum(coil_maps.conj() * coil_images, dim=1)


def rss(coil_images: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Root-sum-of-squares over the coil axis: ``sqrt(Σ_c |x_c|²)``.

    Args:
        coil_images: ``(B, C, [S,] H, W)`` complex or real.
        dim: The coil axis.

    Returns:
        Real tensor without the coil axis.
    """
    if coil_images.is_complex():
        return torch.sqrt(torch.sum(coil_images.real**2 + coil_images.imag**2, dim=dim))
    return torch.sqrt(torch.sum(coil_images**2, dim=dim))


def rss_complex(coil_images: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Alias of :func:`rss` for complex input, kept for readers coming from fastMRI."""
    return rss(coil_images, dim=dim)
