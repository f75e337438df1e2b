"""The record one slice travels in, from the data pipeline to models, training and inference.

A ``NamedTuple`` so that PyTorch's default collate batches it: tensors are stacked (adding the
batch axis ``B``), strings become lists, numbers become tensors.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["ReconSample"]


class ReconSample(NamedTuple):
    """One slice, ready for a reconstructor (shapes without the batch axis).

    Attributes:
        masked_kspace: ``(C, H, W)`` complex64 measured k-space, divided by ``scale``; exact zeros
            where not sampled.
        mask: ``(1, 1, W)`` (line mask) or ``(1, H, W)`` (2-D mask) float32, 1 = sampled; it
            broadcasts against ``masked_kspace``.
        coil_maps: ``(C, H, W)`` complex64, Σ_c |S_c|² = 1 where there is signal (an empty
            ``(0, 0, 0)`` tensor when the transform was asked for no maps).
        target: ``(h, w)`` float32 magnitude reference, divided by ``scale`` and centre-cropped to
            ``crop_size``; all zeros when the input has no reference (prospective data).
        fname: The volume's file name (base name).
        slice_num: Index of the slice in its volume.
        max_value: The reference volume's maximum divided by ``scale`` (the SSIM data range of
            fastMRI's protocol); 0 without a reference.
        crop_size: ``(h, w)``, the reconstruction size from the header (fastMRI's ``reconSpace``).
        scale: The normalisation factor, the root mean square over the ``H × W`` grid of the
            zero-filled RSS image of the measured k-space, ``sqrt(Σ|M y|² / (H·W))`` by Parseval
            (computed without an FFT): the network sees ``kspace / scale``; multiply its output
            by ``scale`` to return to the input's intensity scale.
        num_low_frequencies: Fully sampled centre lines along W.
        acceleration: Effective acceleration of ``mask``.
        lesion_labels: ``(h, w)`` int16 lesion labels (0 = none, k = lesion k) cropped like the
            target, or an empty ``(0, 0)`` tensor when the file has none.
    """

    masked_kspace: torch.Tensor
    mask: torch.Tensor
    coil_maps: torch.Tensor
    target: torch.Tensor
    fname: str
    slice_num: int
    max_value: float
    crop_size: tuple[int, int]
    scale: float
    num_low_frequencies: int
    acceleration: float
    lesion_labels: torch.Tensor
