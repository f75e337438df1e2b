"""One batch through the model: k-space on the device, images back in the input's intensity scale.

The network sees ``kspace / scale`` (docs/interfaces.md §2); its magnitude output times ``scale``
is in the input's intensity scale, centre-cropped to the reconstruction size (fastMRI's submission
format). The zero-filled image is the RSS of the coil images of the measured k-space, with the
same scale and crop.

A model that refuses an input raises :class:`~mrirecon.errors.ModelError` (named here with the
input file), and running out of device memory becomes one; so do an image of the wrong shape and
NaN or infinite values. Any other error inside a forward pass is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrirecon.errors import ModelError
from mrirecon.inference.slices import SampleGroup
from mrirecon.models.base import Reconstructor
from mrirecon.physics import ifftnc, rss, sampled_in_convention
from mrirecon.shapes import center_crop, check_shape

__all__ = ["SliceResult", "forward", "reconstruct_group"]


@dataclass
class SliceResult:
    """One reconstructed slice: ``recon`` and ``zero_filled`` float32 ``(h, w)``."""

    task: int
    slice: int
    recon: np.ndarray
    zero_filled: np.ndarray


def forward(
    model: Reconstructor,
    name: str,
    masked_kspace: torch.Tensor,
    mask: torch.Tensor,
    coil_maps: torch.Tensor,
    *,
    source: Path | None = None,
) -> torch.Tensor:
    """Run ``model`` on a batch and return its image ``(B, H, W)`` complex.

    Raises:
        ModelError: if the model needs coil maps the run does not give, cannot take the input (the
            model says so with a ModelError of its own), runs out of memory, or returns something
            other than a finite ``(B, H, W)`` image. Any other exception is a bug, not bad input:
            it propagates with its traceback and stops the run.
    """
    batch, coils, height, width = masked_kspace.shape
    where = f"k-space of {coils} coil(s) × {height} × {width}"
    if coil_maps.numel() == 0 and model.needs_coil_maps():
        raise ModelError(
            f"model '{name}' needs coil maps, and this run gives none",
            path=source,
            hint="run without --coil-maps none (acs or espirit)",
        )
    try:
        image = model(masked_kspace, mask, coil_maps).image
    except ModelError as error:  # the model refuses this input: name the file
        if error.path is None and source is not None:
            raise ModelError(error.message, path=source, hint=error.hint) from error
        raise
    except torch.OutOfMemoryError as error:
        raise ModelError(
            f"model '{name}' ran out of device memory on {batch} slice(s) of {where}",
            path=source,
            hint="lower --batch-size, or run on a device with more memory",
        ) from error
    try:
        check_shape(image, f"{batch} {height} {width}", name=f"the image of model '{name}'")
    except ValueError as error:
        raise ModelError(str(error), path=source) from error
    if not bool(torch.isfinite(image).all()):
        raise ModelError(
            f"model '{name}' returned NaN or infinite values for {where}",
            path=source,
            hint="check the checkpoint; the input k-space is finite",
        )
    return image


def reconstruct_group(
    model: Reconstructor,
    name: str,
    group: SampleGroup,
    device: torch.device,
    crop_sizes: Sequence[tuple[int, int]],
    *,
    source: Path | None = None,
) -> list[SliceResult]:
    """Reconstruct the slices of ``group`` and return them cropped, in the input's intensity scale.

    Args:
        model: The reconstructor (already on ``device``, eval mode).
        name: Its registry name (for messages).
        group: ``B`` stacked slices.
        device: Where to compute.
        crop_sizes: ``(h, w)`` of each slice's volume, ``B`` entries.
        source: The input file (for messages) when the group holds one volume.

    Raises:
        ModelError: see :func:`forward`.
    """
    # a model transforms with one FFT convention (the baselines: centred): k-space stored in the
    # other is handed over in the model's, the same image (the coil maps are images: unchanged)
    centered = model.fft_centered
    kspace, mask = sampled_in_convention(
        group.masked_kspace.to(device, non_blocking=True),
        group.mask.to(device, non_blocking=True),
        centered=group.centered,
        to_centered=centered,
    )
    maps = group.coil_maps.to(device, non_blocking=True)
    image = forward(model, name, kspace, mask, maps, source=source)
    scale = group.scale.to(device=device, dtype=torch.float32).view(-1, 1, 1)
    magnitude = (image.abs() * scale).float().cpu().numpy()
    zero_filled = (rss(ifftnc(kspace, 2, centered=centered), dim=1) * scale).float().cpu().numpy()
    return [
        SliceResult(task, index, _crop(magnitude[i], crop_sizes[i]), _crop(zero_filled[i], crop_sizes[i]))
        for i, (task, index) in enumerate(zip(group.tasks, group.slices))
    ]


def _crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """fastMRI's centre crop (offsets ``(H − h) // 2``), as the data layer crops targets; a crop
    larger than the image (a header's reconstruction size beyond the k-space grid) keeps that axis."""
    height, width = image.shape[-2:]
    return np.ascontiguousarray(center_crop(image, (min(size[0], height), min(size[1], width))))
