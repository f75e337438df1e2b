"""Lesion contrast: insert lesions into fully sampled data, and check that a reconstruction keeps them.

**Insertion** (:mod:`mrirecon.evaluation.lesion_insertion`, re-exported here): lesions of the one
shared model (:mod:`mrirecon.data.lesions`) are put into *fully sampled* multi-coil k-space before
undersampling, every coil image multiplied by the same partial-volume factor map; see
:func:`insert_lesions`.

**Measures.** For each lesion (all voxels with its label, pooled over its slices) and a *ring* of
normal tissue around it in each slice, in the reference and in the reconstruction:

- ring: pixels whose Euclidean distance to the nearest lesion pixel is in ``(gap, gap + width]``
  (defaults 2 and 3 px), minus any pixel of another lesion or within ``gap`` of one, minus pixels
  where the *reference* is below ``background_fraction`` (default 0.1) of the reference maximum
  (air). The same pixels are used in the reference and in the reconstruction;
- contrast ratio ``CR = mean(lesion) / mean(ring)``;
- contrast ``C = CR − 1`` (relative, or Weber, contrast: 0 when the lesion has vanished, negative for
  a hypointense lesion);
- contrast-to-noise ratio ``CNR = |mean(lesion) − mean(ring)| / SD(ring)``, SD the sample standard
  deviation (ddof = 1) of the ring pixels of the same image (noise and texture of normal tissue);
- preservation ``P = C_reconstruction / C_reference``: 1 when the contrast is kept, 0 when the lesion
  is washed out, > 1 when exaggerated. The ratio of contrasts (rather than of contrast ratios) is used
  because a washed-out subtle lesion would otherwise still score close to 1;
- visible: the reference's CNR is at least ``min_cnr`` (default 1). A lesion the reference itself
  does not show (its contrast below the texture of the tissue around it) cannot be judged: a faithful
  reconstruction has the reference's CNR and would fail the CNR test. Such a lesion is measured and
  reported, never counted as kept or lost (:func:`tally`);
- preserved: visible, ``band[0] ≤ P ≤ band[1]`` (default 0.9–1.1) and the reconstruction's CNR is at
  least ``min_cnr``.

Boxes (fastMRI+ annotations, :mod:`mrirecon.evaluation.annotations`) are measured the same way with
the box as the lesion region (the box holds lesion and some normal tissue, so its figures are coarser).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mrirecon.evaluation.lesion_insertion import (
    LesionInsertion,
    insert_lesions,
    lesion_table_json,
    lesions_from_table,
    place_lesions,
)

__all__ = [
    "ContrastStats",
    "LesionInsertion",
    "LesionMeasure",
    "LesionTally",
    "PreservationCriteria",
    "RingGeometry",
    "contrast_stats",
    "insert_lesions",
    "lesion_exclusion",
    "lesion_regions",
    "lesion_table_json",
    "lesions_from_table",
    "measure_lesions",
    "measure_region",
    "place_lesions",
    "region_ring",
    "ring_mask",
    "tally",
]


@dataclass(frozen=True)
class RingGeometry:
    """Where the normal-tissue ring around a lesion lies (distances in pixels, in-plane).

    Attributes:
        gap: Pixels within this distance of the lesion are skipped (partial volume, blur spill-over).
        width: Ring thickness beyond the gap.
        background_fraction: Ring pixels where the reference is below this fraction of the reference
            maximum are dropped (air outside the body).
        min_pixels: A ring with fewer pixels gives NaN measures.
    """

    gap: float = 2.0
    width: float = 3.0
    background_fraction: float = 0.1
    min_pixels: int = 8

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.gap, self.width, self.background_fraction)):
            raise ValueError(f"ring settings must be finite numbers, got {self}")
        if self.gap < 0 or self.width <= 0:
            raise ValueError(f"ring gap must be ≥ 0 and width > 0, got gap {self.gap}, width {self.width}")


@dataclass(frozen=True)
class PreservationCriteria:
    """When a lesion counts as preserved: preservation within ``band`` and CNR at least ``min_cnr``
    (a lesion whose CNR in the reference is below ``min_cnr`` is not visible there and not judged)."""

    band: tuple[float, float] = (0.9, 1.1)
    min_cnr: float = 1.0

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (*self.band, self.min_cnr)):
            raise ValueError(
                f"the preservation band and min CNR must be finite numbers, got {self.band} and "
                f"{self.min_cnr}"
            )
        if not self.band[0] < self.band[1]:
            raise ValueError(f"the preservation band must be (low, high) with low < high, got {self.band}")


@dataclass(frozen=True)
class ContrastStats:
    """Lesion-versus-ring figures in one image (see the module docstring for the definitions)."""

    lesion_mean: float
    ring_mean: float
    ring_sd: float
    contrast_ratio: float
    contrast: float
    cnr: float


@dataclass(frozen=True)
class LesionMeasure:
    """One lesion (or box) measured in a reference and a reconstruction.

    Attributes:
        lesion: The lesion's label (1-based) or the box's index.
        slices: The slices the lesion region covers.
        central_slice: The slice with the most lesion pixels (for pictures).
        pixels: Lesion pixels, over all its slices.
        ring_pixels: Ring pixels, over all its slices.
        reference: Figures in the reference.
        reconstruction: Figures in the reconstruction.
        preservation: ``reconstruction.contrast / reference.contrast`` (NaN if undefined).
        preserved: Whether the criteria hold (always ``False`` when not ``visible``).
        visible: Whether the reference shows the lesion (its CNR there is at least ``min_cnr``);
            one it does not show is left out of the counts of kept lesions.
        label: What the lesion is ("simulated" or an annotation's label).
    """

    lesion: int
    slices: tuple[int, ...]
    central_slice: int
    pixels: int
    ring_pixels: int
    reference: ContrastStats
    reconstruction: ContrastStats
    preservation: float
    preserved: bool
    visible: bool
    label: str = "lesion"


@dataclass(frozen=True)
class LesionTally:
    """Counts over measured lesions: ``kept`` of the ``judged`` (visible in the reference) ones, and
    ``not_visible``, those the reference does not show (see :class:`LesionMeasure`)."""

    kept: int
    judged: int
    not_visible: int


def tally(measures: Iterable[LesionMeasure]) -> LesionTally:
    """Kept lesions of those the reference shows, and how many it does not show."""
    kept = judged = hidden = 0
    for m in measures:
        if m.visible:
            judged += 1
            kept += int(m.preserved)
        else:
            hidden += 1
    return LesionTally(kept, judged, hidden)


def ring_mask(region: np.ndarray, geometry: RingGeometry, exclude: np.ndarray | None = None) -> np.ndarray:
    """The ring of one 2-D region: ``gap < distance to the region ≤ gap + width``, minus ``exclude``.

    Args:
        region: ``(H, W)`` bool, the lesion (or box) pixels.
        geometry: Ring distances.
        exclude: ``(H, W)`` bool pixels never part of the ring (other lesions and their gaps).

    Returns:
        ``(H, W)`` bool.
    """
    if not region.any():
        return np.zeros_like(region, dtype=bool)
    reach = math.ceil(geometry.gap + geometry.width) + 1
    rows, cols = np.nonzero(region)
    r0, r1 = max(rows.min() - reach, 0), min(rows.max() + reach + 1, region.shape[0])
    c0, c1 = max(cols.min() - reach, 0), min(cols.max() + reach + 1, region.shape[1])
    window = region[r0:r1, c0:c1]
    distance = ndimage.distance_transform_edt(~window)
    out = np.zeros_like(region, dtype=bool)
    out[r0:r1, c0:c1] = (distance > geometry.gap) & (distance <= geometry.gap + geometry.width)
    if exclude is not None:
        out &= ~exclude
    return out


def region_ring(
    reference: np.ndarray, region: np.ndarray, geometry: RingGeometry, exclude: np.ndarray | None = None
) -> np.ndarray:
    """The ring of a lesion volume: :func:`ring_mask` in each slice the lesion reaches, minus air.

    Args:
        reference: ``(S, H, W)`` magnitude reference (decides what is air).
        region: ``(S, H, W)`` bool lesion pixels.
        geometry: Ring distances and the background threshold.
        exclude: ``(S, H, W)`` bool pixels that may not be ring, or ``None``.

    Returns:
        ``(S, H, W)`` bool.
    """
    ring = np.zeros(region.shape, dtype=bool)
    for s in np.nonzero(region.any(axis=(1, 2)))[0]:
        ring[s] = ring_mask(region[s], geometry, None if exclude is None else exclude[s])
    return ring & (reference >= geometry.background_fraction * float(reference.max()))


def lesion_exclusion(labels: np.ndarray, lesion: int, geometry: RingGeometry) -> np.ndarray:
    """Pixels the ring of lesion ``lesion`` may not use: other lesions and pixels within ``gap`` of them.

    Args:
        labels: ``(S, H, W)`` integer labels.
        lesion: The lesion's label.
        geometry: Supplies ``gap``.

    Returns:
        ``(S, H, W)`` bool.
    """
    others = (labels != 0) & (labels != lesion)
    exclude = np.zeros_like(others)
    for s in np.nonzero((labels == lesion).any(axis=(1, 2)))[0]:
        if others[s].any():
            exclude[s] = ndimage.distance_transform_edt(~others[s]) <= geometry.gap
    return exclude


def contrast_stats(
    image: np.ndarray, lesion: np.ndarray, ring: np.ndarray, min_ring_pixels: int = 8
) -> ContrastStats:
    """Contrast ratio, contrast and CNR of a lesion region against a ring region in one image.

    Args:
        image: Magnitude image or volume, any shape.
        lesion: Bool mask of the lesion, same shape.
        ring: Bool mask of the ring, same shape.
        min_ring_pixels: Fewer ring pixels (or no lesion pixel) give NaN figures.

    Returns:
        A :class:`ContrastStats`; CNR is ``inf`` for a ring without spread and a nonzero difference.
    """
    if image.shape != lesion.shape or image.shape != ring.shape:
        raise ValueError(f"image {image.shape}, lesion {lesion.shape} and ring {ring.shape} differ in shape")
    values_l = image[lesion].astype(np.float64)
    values_r = image[ring].astype(np.float64)
    if values_l.size == 0 or values_r.size < max(min_ring_pixels, 2):
        nan = math.nan
        return ContrastStats(nan, nan, nan, nan, nan, nan)
    mean_l, mean_r = float(values_l.mean()), float(values_r.mean())
    sd_r = float(values_r.std(ddof=1))
    ratio = mean_l / mean_r if mean_r != 0 else math.nan
    diff = abs(mean_l - mean_r)
    if sd_r > 0:
        cnr = diff / sd_r
    else:
        cnr = math.inf if diff > 0 else 0.0
    return ContrastStats(mean_l, mean_r, sd_r, ratio, ratio - 1, cnr)


def _judge(
    ref: ContrastStats, rec: ContrastStats, criteria: PreservationCriteria
) -> tuple[float, bool, bool]:
    """``(preservation, preserved, visible)``."""
    # an unmeasurable lesion (NaN: too small a ring) stays judged, and lost
    visible = not ref.cnr < criteria.min_cnr
    if not math.isfinite(ref.contrast) or not math.isfinite(rec.contrast) or abs(ref.contrast) < 1e-9:
        return math.nan, False, visible
    preservation = rec.contrast / ref.contrast
    low, high = criteria.band
    preserved = visible and low <= preservation <= high and rec.cnr >= criteria.min_cnr
    return preservation, bool(preserved), visible


def measure_region(
    reference: np.ndarray,
    reconstruction: np.ndarray,
    region: np.ndarray,
    *,
    exclude: np.ndarray | None = None,
    geometry: RingGeometry | None = None,
    criteria: PreservationCriteria | None = None,
    lesion: int = 1,
    label: str = "lesion",
) -> LesionMeasure:
    """Measure one lesion region (pooled over its slices) in a reference and a reconstruction.

    Args:
        reference: ``(S, H, W)`` magnitude reference.
        reconstruction: ``(S, H, W)`` magnitude reconstruction.
        region: ``(S, H, W)`` bool, the lesion's pixels (or a box).
        exclude: ``(S, H, W)`` bool pixels that may not be ring (other lesions and their gaps).
        geometry: Ring geometry (default :class:`RingGeometry`).
        criteria: Preservation criteria (default :class:`PreservationCriteria`).
        lesion: Identifier recorded in the result.
        label: Text recorded in the result.

    Returns:
        A :class:`LesionMeasure`.
    """
    geometry = geometry or RingGeometry()
    criteria = criteria or PreservationCriteria()
    if not (reference.shape == reconstruction.shape == region.shape) or reference.ndim != 3:
        raise ValueError(
            f"reference {reference.shape}, reconstruction {reconstruction.shape} and region {region.shape} "
            "must be volumes (S, H, W) of one shape"
        )
    counts = region.sum(axis=(1, 2))
    slices = tuple(int(s) for s in np.nonzero(counts)[0])
    ring = region_ring(reference, region, geometry, exclude)
    ref = contrast_stats(reference, region, ring, geometry.min_pixels)
    rec = contrast_stats(reconstruction, region, ring, geometry.min_pixels)
    preservation, preserved, visible = _judge(ref, rec, criteria)
    return LesionMeasure(
        lesion=lesion,
        slices=slices,
        central_slice=int(np.argmax(counts)) if slices else 0,
        pixels=int(counts.sum()),
        ring_pixels=int(ring.sum()),
        reference=ref,
        reconstruction=rec,
        preservation=preservation,
        preserved=preserved,
        visible=visible,
        label=label,
    )


def measure_lesions(
    reference: np.ndarray,
    reconstruction: np.ndarray,
    labels: np.ndarray,
    *,
    geometry: RingGeometry | None = None,
    criteria: PreservationCriteria | None = None,
) -> list[LesionMeasure]:
    """Measure every labelled lesion of a volume.

    Args:
        reference: ``(S, H, W)`` magnitude reference (the fully sampled target).
        reconstruction: ``(S, H, W)`` magnitude reconstruction.
        labels: ``(S, H, W)`` integer labels, 0 = none, k = lesion k.
        geometry: Ring geometry (default :class:`RingGeometry`).
        criteria: Preservation criteria (default :class:`PreservationCriteria`).

    Returns:
        One :class:`LesionMeasure` per label, in label order.
    """
    geometry = geometry or RingGeometry()
    if labels.shape != reference.shape:
        raise ValueError(f"labels {labels.shape} and reference {reference.shape} differ in shape")
    return [
        measure_region(
            reference,
            reconstruction,
            region,
            exclude=exclude,
            geometry=geometry,
            criteria=criteria,
            lesion=k,
        )
        for k, region, exclude in lesion_regions(labels, geometry)
    ]


def lesion_regions(labels: np.ndarray, geometry: RingGeometry) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Each labelled lesion as ``(label, its pixels, pixels its ring may not use)``, in label order:
    the one walk over a label volume (:func:`measure_lesions` and the evaluation use it)."""
    return [
        (k, labels == k, lesion_exclusion(labels, k, geometry))
        for k in (int(v) for v in np.unique(labels))
        if k != 0
    ]
