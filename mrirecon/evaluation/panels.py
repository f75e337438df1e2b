"""The per-volume part of the report: which slice to show, lesion windows, and their pictures.

A volume is shown at the slice with the most lesion pixels (its middle slice when no lesion is
known). Each lesion gets a square window around its outline in its central slice, wide enough for
the ring plus a margin (at least 32 px), zoomed in the picture.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mrirecon.evaluation.figures import PanelRow, lesion_figure, volume_figure
from mrirecon.evaluation.lesion import LesionMeasure, ring_mask
from mrirecon.evaluation.options import EvaluationOptions, Region
from mrirecon.evaluation.volumes import ReconSource, TargetVolume
from mrirecon.export import ReconVolume

__all__ = ["LesionPanel", "VolumePanel", "build_panels", "display_slice", "lesion_window"]

_MIN_WINDOW = 32


@dataclass(frozen=True)
class LesionPanel:
    """A zoomed lesion picture and its heading."""

    title: str
    png: bytes


@dataclass(frozen=True)
class VolumePanel:
    """What the report shows of one volume.

    Attributes:
        name: The file name.
        slice_index: The slice shown.
        slices: The volume's slice count.
        png: Target / zero-filled / reconstruction / error picture.
        rows: The volume's metric rows (one per reconstruction folder).
        lesions: Zoomed lesion pictures (at most ``lesion_panels``).
        lesions_total: How many lesions the volume has.
    """

    name: str
    slice_index: int
    slices: int
    png: bytes
    rows: list[dict[str, Any]]
    lesions: list[LesionPanel] = field(default_factory=list)
    lesions_total: int = 0


def display_slice(slices: int, regions: Sequence[Region]) -> int:
    """The slice with the most lesion pixels, or the middle slice without lesions."""
    if not regions:
        return slices // 2
    counts = sum(r.region.sum(axis=(1, 2)) for r in regions)
    return int(np.argmax(counts))


def lesion_window(mask: np.ndarray, margin: float) -> tuple[slice, slice]:
    """A square window ``(rows, cols)`` around a 2-D mask, ``margin`` px beyond it, inside the image."""
    rows, cols = np.nonzero(mask)
    height, width = mask.shape
    center_r, center_c = (rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2
    extent = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    size = min(max(int(extent + 2 * margin), _MIN_WINDOW), height, width)
    r0 = int(np.clip(round(center_r - size / 2), 0, height - size))
    c0 = int(np.clip(round(center_c - size / 2), 0, width - size))
    return slice(r0, r0 + size), slice(c0, c0 + size)


def _caption(row: Mapping[str, Any]) -> str:
    values = [float(row[key]) for key in ("ssim", "psnr", "nmse")]
    if not all(math.isfinite(value) for value in values[::2]):  # PSNR is infinite for a perfect copy
        return "volume: not finite (the reconstruction holds NaN or infinite values)"
    psnr = f"{values[1]:.2f} dB" if math.isfinite(values[1]) else "inf"
    return f"volume: SSIM {values[0]:.4f}  PSNR {psnr}  NMSE {values[2]:.4f}"


def build_panels(
    target: TargetVolume,
    recons: Sequence[tuple[ReconSource, ReconVolume]],
    regions: Sequence[Region],
    measures: Sequence[Sequence[LesionMeasure]],
    rows: Sequence[Mapping[str, Any]],
    options: EvaluationOptions,
) -> VolumePanel:
    """Pictures of one volume for the report.

    Args:
        target: The cropped target.
        recons: ``(source, reconstruction)`` per folder, cropped like the target.
        regions: The volume's known lesions.
        measures: Per folder (same order as ``recons``), the measures of ``regions`` (same order).
        rows: The volume's metric rows, one per folder (same order as ``recons``).
        options: Supplies the ring geometry and the number of lesion panels.

    Returns:
        A :class:`VolumePanel`.
    """
    s = display_slice(target.image.shape[0], regions)
    lesion_pixels = np.zeros(target.image.shape[1:], dtype=bool)
    for region in regions:
        lesion_pixels |= region.region[s]
    panel_rows = [
        PanelRow(
            label=source.display,
            reconstruction=recon.reconstruction[s],
            zero_filled=None if recon.zero_filled is None else recon.zero_filled[s],
            caption=_caption(row),
        )
        for (source, recon), row in zip(recons, rows)
    ]
    png = volume_figure(target.image[s], panel_rows, lesions=lesion_pixels if regions else None)
    lesion_panels = []
    geometry = options.ring
    floor = geometry.background_fraction * float(target.image.max())
    for i, region in enumerate(regions[: options.lesion_panels]):
        first = measures[0][i] if recons else None
        if first is None:
            continue
        c = first.central_slice
        mask = region.region[c]
        exclude = None if region.exclude is None else region.exclude[c]
        ring = ring_mask(mask, geometry, exclude) & (target.image[c] >= floor)
        rows_w, cols_w = lesion_window(mask, geometry.gap + geometry.width + 6)
        images = [
            (source.display, recon.reconstruction[c][rows_w, cols_w], found[i])
            for (source, recon), found in zip(recons, measures)
        ]
        title = (
            f"{'lesion' if region.source == 'labels' else 'fastMRI+ box'} {region.lesion}"
            f"{'' if region.source == 'labels' else f' ({region.label})'} · slice {c} · "
            f"{first.pixels} px · ring {first.ring_pixels} px"
        )
        lesion_panels.append(
            LesionPanel(
                title=title,
                png=lesion_figure(
                    target.image[c][rows_w, cols_w], mask[rows_w, cols_w], ring[rows_w, cols_w], images
                ),
            )
        )
    return VolumePanel(
        name=target.name,
        slice_index=s,
        slices=int(target.image.shape[0]),
        png=png,
        rows=[dict(r) for r in rows],
        lesions=lesion_panels,
        lesions_total=len(regions),
    )
