"""The demo's results table: fastMRI metrics, lesion preservation and speed per model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mrirecon.evaluation.evaluate import EvaluationResult
from mrirecon.pipeline.settings import DemoSettings

__all__ = ["results_rows", "results_table"]


def results_rows(
    result: EvaluationResult,
    labels: Sequence[str],
    seconds: Mapping[str, float],
    names: Sequence[str],
) -> list[dict[str, Any]]:
    """One row per model, in ``labels`` order.

    Args:
        result: The evaluation.
        labels: Display labels, as given to the evaluation.
        seconds: Seconds per volume by model name (those measured).
        names: The models' names, parallel to ``labels``.

    Returns:
        Dicts with ``model``, ``ssim``, ``psnr``, ``nmse``, ``volumes``, ``lesions_preserved``,
        ``lesions``, ``preservation`` (mean contrast ratio rec/ref) and ``seconds_per_volume``.
    """
    # each model's first group: its pooled group (every test volume, whatever its contrast), or its
    # only group when all volumes share one contrast and acceleration (group_statistics' order)
    groups: dict[str, dict[str, Any]] = {}
    for g in result.groups:
        groups.setdefault(g["model"], g)
    lesions: dict[str, dict[str, Any]] = {}
    for g in result.lesion_groups:
        lesions.setdefault(g["model"], g)
    rows = []
    for label, name in zip(labels, names, strict=True):
        group = groups.get(label)
        if group is None:
            continue
        row: dict[str, Any] = {
            "model": label,
            "ssim": group["ssim"].mean,
            "psnr": group["psnr"].mean,
            "nmse": group["nmse"].mean,
            "volumes": group["ssim"].n,
            "seconds_per_volume": seconds.get(name),
        }
        lesion = lesions.get(label)
        if lesion is not None:
            frac = lesion["preserved_fraction"]
            row["lesions"] = frac.n
            row["lesions_preserved"] = round(frac.mean * frac.n)
            row["preservation"] = lesion["preservation"].mean
        rows.append(row)
    return rows


def results_table(
    rows: Sequence[Mapping[str, Any]], settings: DemoSettings, *, not_visible: int = 0
) -> list[str]:
    """The table as text lines (fixed-width, for a terminal); ``not_visible``: lesions the
    references do not show, left out of "lesions kept" (said under the table)."""
    head = f"{'model':<18}{'SSIM':>8}{'PSNR dB':>9}{'NMSE':>9}{'lesions kept':>14}"
    head += f"{'contrast':>10}{'s/volume':>10}"
    volumes = rows[0]["volumes"] if rows else 0
    lines = [
        f"Test set: {volumes} volume{'s' if volumes != 1 else ''}, {settings.mask} R={settings.acceleration} "
        "(fastMRI metrics; lesion contrast = reconstruction / reference)",
        head,
        "-" * len(head),
    ]
    for row in rows:
        kept = f"{row['lesions_preserved']}/{row['lesions']}" if "lesions" in row else "n/a"
        contrast = f"{row['preservation']:.2f}" if "preservation" in row else "n/a"
        speed = f"{row['seconds_per_volume']:.2f}" if row.get("seconds_per_volume") is not None else "n/a"
        lines.append(
            f"{row['model']:<18}{row['ssim']:>8.4f}{row['psnr']:>9.2f}{row['nmse']:>9.4f}{kept:>14}{contrast:>10}{speed:>10}"
        )
    if not_visible:
        lines.append(
            f"({not_visible} more lesion{'s are' if not_visible != 1 else ' is'} not visible in the "
            "reference, CNR below 1 there: listed in lesions.csv, not counted)"
        )
    return lines
