"""Validation and test scores per volume, exactly as fastMRI's evaluate.py, gathered across ranks.

Validation sees slices, batch by batch, possibly on several processes. fastMRI scores volumes:
SSIM is the mean over a volume's slices of each slice's SSIM with the *volume's* maximum as data
range; PSNR and NMSE are taken over the whole volume. Each slice therefore leaves a small record
(:class:`SliceScore`): its SSIM with the volume range (known per slice: ``ReconSample.max_value``),
its sum of squared errors, the sum of squares of its reference and its pixel count. At the end of
the epoch the records of every rank are gathered (:func:`gather_scores`), duplicates removed by
``(fname, slice_num)`` (a distributed sampler that pads its shards repeats slices), and each
volume is scored exactly once (:func:`volume_scores`). Images never need to be kept.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch

from mrirecon.evaluation.torch_metrics import ssim_torch
from mrirecon.shapes import check_shape

__all__ = [
    "SliceScore",
    "VolumeScore",
    "gather_scores",
    "mean_scores",
    "slice_scores",
    "unique_slices",
    "volume_scores",
]


class SliceScore(NamedTuple):
    """The per-slice statistics from which fastMRI's volume metrics follow (input intensity scale).

    Attributes:
        fname: Volume file name.
        slice_num: Slice index in the volume.
        ssim: SSIM of the slice with the volume's maximum as data range.
        sse: Σ (reference − reconstruction)² over the slice.
        sst: Σ reference² over the slice.
        pixels: Pixels in the slice.
        data_range: The volume's maximum (fastMRI's ``maxval``).
        loss: The training loss of the slice (NaN where not computed).
    """

    fname: str
    slice_num: int
    ssim: float
    sse: float
    sst: float
    pixels: int
    data_range: float
    loss: float


class VolumeScore(NamedTuple):
    """fastMRI's metrics of one volume."""

    fname: str
    slices: int
    ssim: float
    psnr: float
    nmse: float
    loss: float


def slice_scores(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: torch.Tensor,
    fnames: Sequence[str],
    slice_nums: Sequence[int],
    losses: torch.Tensor | None = None,
) -> list[SliceScore]:
    """Score a batch of slices.

    Args:
        pred: ``(B, h, w)`` real reconstructed magnitudes, in the input's intensity scale.
        target: ``(B, h, w)`` real reference magnitudes, same scale.
        data_range: ``(B,)`` the maximum of each slice's reference volume.
        fnames: ``B`` volume names.
        slice_nums: ``B`` slice indices.
        losses: ``(B,)`` per-slice losses, or ``None``.

    Returns:
        One :class:`SliceScore` per slice.
    """
    dims = check_shape(target, "B h w", name="target")
    check_shape(pred, "B h w", name="pred", dims=dims)
    check_shape(data_range, "B", name="data_range", dims=dims)
    batch = dims["B"]
    if len(fnames) != batch or len(slice_nums) != batch:
        raise ValueError(
            f"need {batch} file names and slice numbers, got {len(fnames)} and {len(slice_nums)}"
        )
    with torch.no_grad():
        pred = pred.detach().float()
        target = target.detach().float()
        ssim = ssim_torch(pred, target, data_range.float()).double().cpu().tolist()
        sse = (target.double() - pred.double()).pow(2).flatten(1).sum(1).cpu().tolist()
        sst = target.double().pow(2).flatten(1).sum(1).cpu().tolist()
        ranges = data_range.double().cpu().tolist()
        loss = losses.detach().double().cpu().tolist() if losses is not None else [math.nan] * batch
    pixels = int(target.shape[-1] * target.shape[-2])
    return [
        SliceScore(str(fnames[i]), int(slice_nums[i]), ssim[i], sse[i], sst[i], pixels, ranges[i], loss[i])
        for i in range(batch)
    ]


def gather_scores(scores: list[SliceScore]) -> list[SliceScore]:
    """Every rank's records on every rank (``all_gather_object``); the list itself without DDP."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(scores)
    gathered: list[list[SliceScore] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, [tuple(s) for s in scores])
    return [SliceScore(*s) for part in gathered for s in (part or [])]


def unique_slices(scores: Iterable[SliceScore]) -> list[SliceScore]:
    """The records with each ``(fname, slice_num)`` once (the first), sorted by volume and slice."""
    seen: dict[tuple[str, int], SliceScore] = {}
    for score in scores:
        seen.setdefault((score.fname, score.slice_num), score)
    return [seen[key] for key in sorted(seen)]


def volume_scores(scores: Iterable[SliceScore]) -> list[VolumeScore]:
    """fastMRI's SSIM, PSNR and NMSE of each volume, from its unique slices.

    SSIM: the mean of the slices' SSIMs; PSNR: ``10·log10(R² / MSE)`` with the MSE over all of the
    volume's pixels and ``R`` its maximum; NMSE: ``Σ sse / Σ sst``. Volumes whose reference is all
    zeros (prospective data) are left out.
    """
    by_volume: dict[str, list[SliceScore]] = defaultdict(list)
    for score in unique_slices(scores):
        by_volume[score.fname].append(score)
    out = []
    for fname, slices in by_volume.items():
        sst = sum(s.sst for s in slices)
        if sst <= 0:
            continue
        sse = sum(s.sse for s in slices)
        peak = max(s.data_range for s in slices)
        mse = sse / sum(s.pixels for s in slices)
        # a NaN reconstruction scores NaN, not the +inf of a perfect one
        psnr = math.nan if math.isnan(mse) else 10 * math.log10(peak**2 / mse) if mse > 0 else math.inf
        losses = [s.loss for s in slices if not math.isnan(s.loss)]
        out.append(
            VolumeScore(
                fname=fname,
                slices=len(slices),
                ssim=sum(s.ssim for s in slices) / len(slices),
                psnr=psnr,
                nmse=sse / sst,
                loss=sum(losses) / len(losses) if losses else math.nan,
            )
        )
    return out


def mean_scores(volumes: Sequence[VolumeScore]) -> dict[str, float]:
    """The means over volumes: ``{"ssim", "psnr", "nmse", "loss", "volumes"}`` (NaN when empty)."""
    n = len(volumes)
    if n == 0:
        return {"ssim": math.nan, "psnr": math.nan, "nmse": math.nan, "loss": math.nan, "volumes": 0.0}
    losses = [v.loss for v in volumes if not math.isnan(v.loss)]
    return {
        "ssim": sum(v.ssim for v in volumes) / n,
        "psnr": sum(v.psnr for v in volumes) / n,
        "nmse": sum(v.nmse for v in volumes) / n,
        "loss": sum(losses) / len(losses) if losses else math.nan,
        "volumes": float(n),
    }
