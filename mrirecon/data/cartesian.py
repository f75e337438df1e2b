"""Cartesian k-space helpers shared by the converters: readout-oversampling removal and the
decoupling of 3-D acquisitions into 2-D slices (masks are recovered by :mod:`mrirecon.masks.recovery`).

A 3-D Cartesian acquisition ``(C, X, Y, Z)`` samples the readout X fully and undersamples the two
phase encodes (Y, Z). An inverse FFT along X separates it into X independent 2-D problems: slice
``x`` is the k-space ``(C, Y, Z)`` of the image row at readout position ``x``, sampled with the
same 2-D mask ``(Y, Z)``. That is how 3-D data (the CIRIM paper's 3-D FLAIR, the SigPy tutorial's
Poisson-disc brain) are served as 2-D slices with 2-D masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mrirecon.errors import DataError
from mrirecon.physics import fftnc, ifftnc

__all__ = ["crop_readout", "decouple_readout"]

#: Fraction of a sampled phase-encode position's readout that must be non-zero (3-D decoupling).
READOUT_COVERAGE = 0.95


def crop_readout(kspace: torch.Tensor, keep: int, *, centered: bool = True) -> torch.Tensor:
    """Remove readout oversampling in image space: inverse FFT along the readout, keep the central
    ``keep`` samples, FFT back.

    Args:
        kspace: ``(..., X, Y)`` complex with the readout on the second-to-last axis.
        keep: Readout samples to keep (the reconstruction field of view), ``keep <= X``.
        centered: FFT convention.

    Returns:
        ``(..., keep, Y)`` complex64: image samples ``size // 2 − keep // 2`` onwards, so that the
        centre of the field of view (sample ``size // 2``) is sample ``keep // 2``, where the DICOM
        geometry puts it (:func:`mrirecon.export.geometry.centre_index`).
    """
    size = kspace.shape[-2]
    if keep >= size:
        return kspace
    lines = ifftnc(kspace.transpose(-1, -2), 1, centered=centered)
    # the field of view's centre, sample size // 2 of the centred FFT, stays the centre keep // 2
    start = size // 2 - keep // 2
    lines = lines[..., start : start + keep]
    return fftnc(lines.contiguous(), 1, centered=centered).transpose(-1, -2).contiguous()


def decouple_readout(
    kspace: np.ndarray, *, centered: bool = True, path: Path | None = None, partial_readout: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Split a 3-D acquisition into 2-D slices along its fully sampled readout.

    Args:
        kspace: ``(C, X, Y, Z)`` complex 3-D k-space, X the readout; exact zeros where a phase-encode
            position ``(y, z)`` was not measured.
        centered: FFT convention.
        path: For error messages.
        partial_readout: Accept a readout measured over one block of samples only (an asymmetric
            echo, as raw scanner data state it): the coverage is judged within the block that the
            measured positions hold, and the rest stays zero-filled (the slices are then blurred
            along the readout as a zero-filled partial-Fourier image is).

    Returns:
        ``(slices, sampled)``: ``(X, C, Y, Z)`` complex64, slice ``x`` holding the 2-D k-space of
        readout position ``x``, and bool ``(Y, Z)``, the phase-encode positions measured.

    Raises:
        DataError: if the readout of a measured phase-encode position is not fully sampled.
    """
    coils, size_x, size_y, size_z = kspace.shape
    nonzero = np.zeros((size_x, size_y, size_z), dtype=bool)
    for coil in range(coils):
        nonzero |= np.asarray(kspace[coil] != 0)
    sampled: np.ndarray = np.asarray(nonzero.any(axis=0))
    if not sampled.any():
        raise DataError("the 3-D k-space holds no non-zero sample", path=path)
    held_block = slice(None)
    if partial_readout:
        held = np.nonzero(nonzero[:, sampled].any(axis=1))[0]
        held_block = slice(int(held[0]), int(held[-1]) + 1)
    coverage = nonzero[held_block][:, sampled].mean(axis=0)
    if coverage.min() < READOUT_COVERAGE:
        raise DataError(
            f"the readout is not fully sampled (a measured phase-encode position has only "
            f"{coverage.min():.0%} of its readout samples), so the 3-D data cannot be split into "
            "2-D slices along it",
            path=path,
            hint="the readouts of the file differ in length or position; convert the raw data again"
            if partial_readout
            else "the first k-space axis must be the fully sampled readout; check the stated axis order",
        )
    out = np.empty((size_x, coils, size_y, size_z), dtype=np.complex64)
    for coil in range(coils):
        # a copy: the input may be a read-only memory map, which torch will not wrap
        block = torch.from_numpy(np.array(kspace[coil], dtype=np.complex64, order="C"))
        # readout last for the 1-D inverse FFT, then back to (X, Y, Z)
        images = ifftnc(block.permute(1, 2, 0).contiguous(), 1, centered=centered)
        out[:, coil] = images.permute(2, 0, 1).numpy()
    out[:, :, ~sampled] = 0  # exact zeros where nothing was measured
    return out, sampled
