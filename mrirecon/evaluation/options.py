"""Settings of an evaluation run and the lesion regions it measures (shared by evaluate and panels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrirecon.evaluation.lesion import PreservationCriteria, RingGeometry

__all__ = ["EvaluationOptions", "Region"]


@dataclass(frozen=True)
class EvaluationOptions:
    """How :func:`mrirecon.evaluation.evaluate.evaluate` runs.

    Attributes:
        labels: Display labels of the reconstruction folders, in their order (default: each folder's
            ``model`` attribute, else its name).
        split: With a manifest, evaluate only this split.
        annotations: A fastMRI+ annotation CSV whose boxes are measured like lesions.
        annotation_labels: Keep only boxes with these labels (stripped, case-folded); empty: all.
        ring: Ring geometry of the lesion measures.
        criteria: When a lesion counts as preserved.
        calgary_campinas: Also compute the Calgary-Campinas per-slice SSIM and PSNR (named columns).
        atommic: Also compute ATOMMIC's SSIM, PSNR and NMSE on per-slice normalised images (named
            columns ``ssim_atommic``, ``psnr_atommic``, ``nmse_atommic``).
        report_volumes: How many volumes get pictures in the HTML report (the tables list all).
        lesion_panels: Zoomed lesion panels per volume.
        progress: Show a progress bar over volumes.
    """

    labels: tuple[str, ...] = ()
    split: str | None = None
    annotations: Path | None = None
    annotation_labels: tuple[str, ...] = ()
    ring: RingGeometry = field(default_factory=RingGeometry)
    criteria: PreservationCriteria = field(default_factory=PreservationCriteria)
    calgary_campinas: bool = False
    atommic: bool = False
    report_volumes: int = 12
    lesion_panels: int = 6
    progress: bool = True

    def __post_init__(self) -> None:
        if self.report_volumes < 0 or self.lesion_panels < 0:
            raise ValueError("report_volumes and lesion_panels must be ≥ 0")
        if self.annotation_labels and self.annotations is None:
            raise ValueError("--annotation-label filters the boxes of --annotations, which is not given")


@dataclass(frozen=True)
class Region:
    """A known lesion of a target volume.

    Attributes:
        lesion: Its label (``lesion_labels``) or its box number (1-based, per file).
        source: ``"labels"`` or ``"fastmri+"``.
        label: ``"lesion"`` or the annotation's (normalised) label.
        region: ``(S, h, w)`` bool pixels on the cropped target grid.
        exclude: ``(S, h, w)`` bool pixels its ring may not use, or ``None``.
    """

    lesion: int
    source: str
    label: str
    region: np.ndarray
    exclude: np.ndarray | None
