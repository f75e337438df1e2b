"""Lesion insertion into fully sampled k-space, before undersampling (re-exported by
:mod:`mrirecon.evaluation.lesion`).

Lesions follow the one shared model, :mod:`mrirecon.data.lesions`: a lesion multiplies
the local tissue intensity by ``f = 1 + (contrast − 1)·pv`` with ``pv`` its partial-volume fraction.
:func:`insert_lesions` puts lesions into *fully sampled* multi-coil k-space before anything is
undersampled, so a network never saw them:

    coil images x_c = F⁻¹ k_c  →  x_c' = f · x_c  →  k_c' = F x_c'

Every coil image is multiplied by the same real, positive factor map ``f``. With x_c = S_c·x this is
x_c' = S_c·(f·x), i.e. exactly "apply the lesion to the combined image and expand it with the coil
maps" (x_c += S_c·Δ with Δ = (f − 1)·x), without estimating coil maps and so without their errors;
the RSS image becomes ``f · RSS`` and the phase is kept. k-space samples that were exactly zero
(columns fastMRI zero-padded, never measured) are set to zero again, and the new reference
(``reconstruction_rss``) is computed from the new k-space. Lesion centres are given on the
reference (cropped) grid, which sits centred in the k-space grid with fastMRI's offset
``(H − h) // 2``; labels come back on that grid.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from mrirecon.data.lesions import Lesion, LesionDraw, apply_lesions, place_in_regions
from mrirecon.physics import fftnc, ifftnc, rss
from mrirecon.shapes import center_crop, crop_offsets

__all__ = ["LesionInsertion", "insert_lesions", "lesion_table_json", "lesions_from_table", "place_lesions"]


@dataclass(frozen=True)
class LesionInsertion:
    """Result of :func:`insert_lesions`.

    Attributes:
        kspace: Fully sampled k-space with the lesions, same shape and dtype as the input
            (``(S, C, H, W)`` or single-coil ``(S, H, W)``).
        target: ``(S, h, w)`` float32 new reference: RSS (or magnitude, single-coil) of the new
            k-space, centre-cropped to ``(h, w)``.
        labels: ``(S, h, w)`` int16, 0 = none, k = lesion k (1-based), on the target's grid.
        lesions: The lesions, centres on the target's grid.
    """

    kspace: np.ndarray
    target: np.ndarray
    labels: np.ndarray
    lesions: tuple[Lesion, ...]


def insert_lesions(
    kspace: np.ndarray,
    lesions: Sequence[Lesion],
    *,
    crop_size: tuple[int, int] | None = None,
    centered: bool = True,
    keep_unmeasured: bool = True,
) -> LesionInsertion:
    """Insert lesions into fully sampled k-space (before undersampling), keeping their labels.

    Args:
        kspace: Fully sampled k-space ``(S, C, H, W)`` (multi-coil) or ``(S, H, W)`` (single-coil),
            complex.
        lesions: Lesions with centres ``(slice, row, column)`` on the reference grid ``crop_size``.
        crop_size: ``(h, w)`` of the reference (``reconstruction_rss``) grid, centred in ``(H, W)``;
            default ``(H, W)``.
        centered: The k-space's FFT convention (``False`` for uncentred data such as Calgary-Campinas).
        keep_unmeasured: Set samples that were exactly zero in the input (zero-padded, never
            measured) to zero again.

    Returns:
        A :class:`LesionInsertion`.
    """
    if not np.iscomplexobj(kspace) or kspace.ndim not in (3, 4):
        raise ValueError(
            f"expected complex k-space (S, C, H, W) or (S, H, W), got {kspace.dtype} {kspace.shape}"
        )
    full = (int(kspace.shape[-2]), int(kspace.shape[-1]))
    crop = crop_size or full
    r0, c0 = crop_offsets(full, crop)
    shifted = [
        replace(les, center=(les.center[0], les.center[1] + r0, les.center[2] + c0)) for les in lesions
    ]
    slices = kspace.shape[0]
    factor, labels_full = apply_lesions(np.ones((slices, *full), dtype=np.float32), shifted)

    k = torch.from_numpy(np.ascontiguousarray(kspace))
    images = ifftnc(k, 2, centered=centered)
    f = torch.from_numpy(factor)
    images = images * (f[:, None] if kspace.ndim == 4 else f)
    k_new = fftnc(images, 2, centered=centered)
    if keep_unmeasured:
        k_new = torch.where(k == 0, torch.zeros((), dtype=k_new.dtype), k_new)
    images = ifftnc(k_new, 2, centered=centered)
    magnitude = rss(images, dim=1) if kspace.ndim == 4 else images.abs()
    target = center_crop(magnitude.to(torch.float32).numpy(), crop)
    return LesionInsertion(
        kspace=k_new.numpy().astype(kspace.dtype, copy=False),
        target=np.ascontiguousarray(target),
        labels=np.ascontiguousarray(center_crop(labels_full, crop)),
        lesions=tuple(lesions),
    )


def lesion_table_json(lesions: Sequence[Lesion]) -> str:
    """The ``lesion_table`` file attribute: a JSON list of the lesions' parameters (``Lesion`` fields)."""
    return json.dumps([asdict(les) for les in lesions])


def lesions_from_table(table: str) -> list[Lesion]:
    """Inverse of :func:`lesion_table_json`.

    Raises:
        ValueError: if the text is not such a JSON list.
    """
    try:
        items = json.loads(table)
        return [Lesion(**{**item, "center": tuple(item["center"])}) for item in items]
    except (TypeError, KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"not a lesion table: {error}") from error


def place_lesions(
    reference: np.ndarray,
    count: int,
    *,
    radius: float,
    contrast: float,
    irregularity: float = 0.25,
    depth: float = 0.5,
    seed: int = 0,
    tissue_fraction: float = 0.25,
    margin: float = 6.0,
) -> list[Lesion]:
    """Choose lesion centres inside tissue, apart from each other and from the edges.

    A centre qualifies when every reference pixel within ``radius·(1 + irregularity) + margin`` of it
    (the lesion and its measurement ring) is at least ``tissue_fraction`` of the volume's maximum;
    lesions keep that reach from each other too (:func:`mrirecon.data.lesions.place_in_regions`,
    the one placement rule).

    Args:
        reference: ``(S, h, w)`` magnitude reference volume.
        count: How many lesions (fewer are returned when the tissue has no room for more).
        radius: In-plane radius in pixels.
        contrast: Intensity factor (> 1 hyperintense, as white-matter lesions on FLAIR).
        irregularity: Outline wobble, 0 ≤ irregularity < 1.
        depth: Through-slice radius in slices.
        seed: Seed of the positions and of the outlines.
        tissue_fraction: Threshold of "tissue", as a fraction of the reference maximum.
        margin: Extra clearance in pixels around the lesion (the ring is 2 + 3 px by default).

    Returns:
        Lesions on the reference's grid.
    """
    if reference.ndim != 3:
        raise ValueError(f"expected a reference volume (S, h, w), got shape {reference.shape}")
    rng = np.random.default_rng(seed)
    tissue = reference >= tissue_fraction * float(reference.max())
    slices = reference.shape[0]
    lo = min(math.floor(depth), (slices - 1) // 2)
    tissue[:lo] = False  # a lesion's whole depth inside the volume
    tissue[slices - lo :] = False
    fixed = LesionDraw(radius, contrast, irregularity, depth)
    return place_in_regions([tissue], lambda _: fixed, count, rng, margin=margin)
