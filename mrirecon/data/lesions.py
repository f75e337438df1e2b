"""One lesion model, shared by the simulator (lesions in generated volumes) and the evaluation
(lesions inserted into fully sampled data before undersampling).

A lesion is a blob with an irregular outline and partial-volume edges. Its outline in each slice is
a circle of radius ``r·sqrt(1 − (Δz/r_z)²)`` (an ellipsoid through the slices) whose radius is
modulated by a few random angular harmonics (``irregularity``: 0 = round). The partial-volume
fraction of each pixel (the share of the pixel inside the outline, from 4 × 4 sub-samples) blends
lesion and tissue. Applied to an image, the lesion multiplies the local tissue intensity:

    x' = x · (1 + (contrast − 1) · pv)

so a lesion of ``contrast`` 1.6 is 60 % brighter than the tissue it sits in (hyperintense, as
white-matter lesions on FLAIR), one of 0.6 darker (hypointense, as on T1). The phase of the image is
kept. Labels mark the pixels that are at least half inside (lesion k → label k, 1-based).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mrirecon.errors import DataError

__all__ = ["Lesion", "LesionDraw", "apply_lesions", "checked_labels", "lesion_fraction", "place_in_regions"]

#: The largest lesion label (labels are int16).
MAX_LABEL = int(np.iinfo(np.int16).max)

_SUPERSAMPLE = 4
_HARMONICS = (2, 3, 4, 5)


@dataclass(frozen=True)
class Lesion:
    """A lesion in a volume's voxel grid.

    Attributes:
        center: ``(slice, row, column)`` of the centre, in voxels (fractional allowed).
        radius: In-plane radius in pixels.
        contrast: Intensity factor relative to the surrounding tissue (> 1 hyperintense).
        irregularity: Relative amplitude of the outline's wobble, 0 ≤ irregularity < 1.
        depth: Through-slice radius in slices (0.5 keeps the lesion in one slice).
        seed: Seed of the outline's random harmonics (the same seed, the same shape).
    """

    center: tuple[float, float, float]
    radius: float
    contrast: float
    irregularity: float = 0.25
    depth: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.radius <= 0:
            raise ValueError(f"lesion radius must be positive, got {self.radius}")
        if self.contrast <= 0:
            raise ValueError(f"lesion contrast must be positive, got {self.contrast}")
        if not 0 <= self.irregularity < 1:
            raise ValueError(f"irregularity must lie in [0, 1), got {self.irregularity}")
        if self.depth <= 0:
            raise ValueError(f"lesion depth must be positive, got {self.depth}")

    def slice_radius(self, slice_index: int) -> float:
        """The outline's mean radius in one slice (0 if the lesion does not reach it)."""
        dz = (slice_index - self.center[0]) / self.depth
        return self.radius * float(np.sqrt(1.0 - dz * dz)) if abs(dz) < 1 else 0.0

    def harmonics(self) -> tuple[np.ndarray, np.ndarray]:
        """Amplitudes (summing to ``irregularity``) and phases of the outline's harmonics."""
        rng = np.random.default_rng(self.seed)
        weights = rng.random(len(_HARMONICS)) + 0.1
        phases = rng.uniform(0, 2 * np.pi, len(_HARMONICS))
        return self.irregularity * weights / weights.sum(), phases


def lesion_fraction(lesion: Lesion, shape: tuple[int, int], slice_index: int) -> np.ndarray:
    """Partial-volume fraction ``(H, W)`` float32 in [0, 1] of one lesion in one slice."""
    height, width = shape
    radius = lesion.slice_radius(slice_index)
    out = np.zeros(shape, dtype=np.float32)
    if radius <= 0:
        return out
    amplitudes, phases = lesion.harmonics()
    reach = radius * (1 + lesion.irregularity) + 1
    cy, cx = lesion.center[1], lesion.center[2]
    r0, r1 = max(int(np.floor(cy - reach)), 0), min(int(np.ceil(cy + reach)) + 1, height)
    c0, c1 = max(int(np.floor(cx - reach)), 0), min(int(np.ceil(cx + reach)) + 1, width)
    if r0 >= r1 or c0 >= c1:
        return out
    offsets = (np.arange(_SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - 0.5
    rows = (np.arange(r0, r1)[:, None] + offsets[None, :]).reshape(-1)
    cols = (np.arange(c0, c1)[:, None] + offsets[None, :]).reshape(-1)
    dy = rows[:, None] - cy
    dx = cols[None, :] - cx
    theta = np.arctan2(dy, dx)
    outline = np.ones_like(theta)
    for amplitude, phase, k in zip(amplitudes, phases, _HARMONICS):
        outline += amplitude * np.cos(k * theta + phase)
    inside = (np.hypot(dy, dx) <= radius * outline).astype(np.float32)
    block = inside.reshape(r1 - r0, _SUPERSAMPLE, c1 - c0, _SUPERSAMPLE).mean(axis=(1, 3))
    out[r0:r1, c0:c1] = block
    return out


def checked_labels(
    labels: np.ndarray, path: str | os.PathLike[str], what: str = "lesion_labels"
) -> np.ndarray:
    """Lesion labels read from a file, as int16: integers from 0 (no lesion) to :data:`MAX_LABEL`.

    Raises:
        DataError: naming ``path``: labels of another dtype (a float 0.5 would truncate to 0) or out
            of that range (a label of 170,000 would wrap around).
    """
    if labels.dtype.kind not in "iu":
        raise DataError(f"'{what}' holds {labels.dtype}; expected integer labels (0 = no lesion)", path=path)
    if labels.size and (labels.min() < 0 or labels.max() > MAX_LABEL):
        raise DataError(
            f"'{what}' holds {labels.min()}..{labels.max()}; labels are 0 (no lesion) to {MAX_LABEL}",
            path=path,
        )
    return labels.astype(np.int16, copy=False)


def apply_lesions(volume: np.ndarray, lesions: list[Lesion]) -> tuple[np.ndarray, np.ndarray]:
    """Insert lesions into an image volume.

    Args:
        volume: ``(S, H, W)`` real or complex image volume.
        lesions: Lesions in that voxel grid; later lesions act on the result of earlier ones.

    Returns:
        ``(volume', labels)``: the volume with the lesions (same dtype) and ``(S, H, W)`` int16
        labels (k for lesion k, 1-based, where its partial-volume fraction is at least 0.5).
    """
    if volume.ndim != 3:
        raise ValueError(f"expected an image volume (S, H, W), got shape {volume.shape}")
    out = volume.copy()
    labels = np.zeros(volume.shape, dtype=np.int16)
    for k, lesion in enumerate(lesions, start=1):
        for s in range(volume.shape[0]):
            pv = lesion_fraction(lesion, volume.shape[1:], s)
            if not pv.any():
                continue
            out[s] = out[s] * (1 + (lesion.contrast - 1) * pv).astype(out.real.dtype)
            labels[s][pv >= 0.5] = k
    return out, labels


@dataclass(frozen=True)
class LesionDraw:
    """The size and look of one lesion to place (its position is the placer's)."""

    radius: float
    contrast: float
    irregularity: float = 0.25
    depth: float = 0.5


def place_in_regions(
    regions: Sequence[np.ndarray],
    draw: Callable[[np.random.Generator], LesionDraw],
    count: int,
    rng: np.random.Generator,
    *,
    weights: Sequence[float] | None = None,
    margin: float = 1.0,
    tries: int = 20,
) -> list[Lesion]:
    """Place up to ``count`` lesions: the one placement rule of the simulators and the evaluation.

    A lesion of radius ``r`` and irregularity ``i`` reaches ``reach = r·(1 + i) + margin`` pixels
    from its centre. Its centre lies where the chosen region extends at least ``reach`` pixels in
    every in-plane direction (its outline and its margin inside the region), and two lesions that
    share a slice (``|Δs| < depth₁ + depth₂``) are at least ``reach₁ + reach₂`` apart.

    Args:
        regions: Bool ``(S, H, W)`` volumes where centres may lie.
        draw: Draws a lesion's radius (pixels), contrast, irregularity and depth (slices).
        count: Lesions wanted (fewer where the regions have no room).
        rng: Random generator (positions, the region for each lesion, outline seeds).
        weights: Probability of each region (default equal).
        margin: Extra clearance in pixels (the evaluation keeps its measurement ring in tissue).
        tries: Attempts per wanted lesion.

    Returns:
        Lesions with centres ``(slice, row, column)`` on the regions' grid.
    """
    if count <= 0 or not regions:
        return []
    distances = [
        np.stack([ndimage.distance_transform_edt(plane) for plane in np.asarray(region, dtype=bool)])
        for region in regions
    ]
    p = None if weights is None else np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
    placed: list[Lesion] = []
    reaches: list[float] = []
    for _ in range(count * tries):
        if len(placed) == count:
            break
        d = draw(rng)
        reach = d.radius * (1 + d.irregularity) + margin
        which = int(rng.choice(len(distances), p=p)) if len(distances) > 1 else 0
        candidates = np.argwhere(distances[which] >= reach)
        if len(candidates) == 0:
            continue
        s, row, col = (int(v) for v in candidates[rng.integers(len(candidates))])
        if any(
            abs(other.center[0] - s) < other.depth + d.depth
            and np.hypot(other.center[1] - row, other.center[2] - col) < other_reach + reach
            for other, other_reach in zip(placed, reaches)
        ):
            continue
        placed.append(
            Lesion(
                center=(float(s), float(row), float(col)),
                radius=d.radius,
                contrast=d.contrast,
                irregularity=d.irregularity,
                depth=d.depth,
                seed=int(rng.integers(2**31)),
            )
        )
        reaches.append(reach)
    return placed
