"""The columns of :mod:`benchmarks.quality` (its masks), its results as tables, and runs made
apart merged into one.

Each result holds ``sets[set][model][mask]`` figures; a table shows the mask columns every model
of the set has (:func:`columns`), so runs of some masks each (baselines and models run apart)
combine into one result (:func:`combine`, :func:`merge`).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import print_table
from mrirecon.masks import create_mask_func

__all__ = ["MASKS", "MaskSpec", "columns", "combine", "markdown", "merge", "print_tables"]


@dataclass(frozen=True)
class MaskSpec:
    """One column: a mask type, its acceleration and calibration."""

    label: str
    kind: str
    acceleration: float
    center_fraction: float
    calibration_size: int | None = None

    def function(self) -> Any:
        options: dict[str, Any] = {}
        if self.calibration_size is not None:  # a Poisson-disc mask: its acceleration within 2 %
            options = {"calibration_size": self.calibration_size, "tol": 0.02}
        return create_mask_func(self.kind, [self.center_fraction], [self.acceleration], **options)


MASKS = (
    MaskSpec("equispaced 4x", "equispaced_fraction", 4, 0.08),
    MaskSpec("equispaced 8x", "equispaced_fraction", 8, 0.04),
    MaskSpec("random 4x", "random", 4, 0.08),
    MaskSpec("random 8x", "random", 8, 0.04),
    MaskSpec("Poisson 8x", "poisson2d", 8, 0.08, calibration_size=20),
)


def columns(models: dict[str, dict[str, Any]]) -> list[str]:
    """The mask columns every model has figures for, in the benchmark's order."""
    return [m.label for m in MASKS if all(m.label in per_mask for per_mask in models.values())]


def print_tables(results: dict[str, Any]) -> None:
    for set_name, models in results["sets"].items():
        masks = columns(models)
        print(f"\n{set_name}: head PSNR dB / head SSIM / lesions kept (full-image PSNR, SSIM in JSON)")
        rows = []
        for label, per_mask in models.items():
            cells = [
                f"{per_mask[m]['head_psnr']:.2f} / {per_mask[m]['head_ssim']:.4f} / "
                f"{per_mask[m]['lesions_kept']}/{per_mask[m]['lesions']}"
                for m in masks
            ]
            seconds = statistics.mean(per_mask[m]["seconds_per_slice"] for m in masks)
            rows.append([label, *cells, f"{seconds:.2f}"])
        print_table(["model", *masks, "s/slice"], rows)


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables (what docs/benchmarks.md and docs/pretrained.md show)."""
    out: list[str] = []
    for set_name, models in results["sets"].items():
        masks = columns(models)
        out.append(f"\n**{set_name}**: head PSNR (dB) / head SSIM; full-image PSNR / SSIM in the JSON\n")
        out.append("| model | " + " | ".join(masks) + " | s/slice |")
        out.append("|---|" + "---:|" * (len(masks) + 1))
        for label, per_mask in models.items():
            cells = [f"{per_mask[m]['head_psnr']:.2f} / {per_mask[m]['head_ssim']:.3f}" for m in masks]
            seconds = statistics.mean(per_mask[m]["seconds_per_slice"] for m in masks)
            out.append(f"| {label} | " + " | ".join(cells) + f" | {seconds:.2f} |")
        if any(per_mask[m]["lesions"] for per_mask in models.values() for m in masks):
            hidden = max(f.get("lesions_not_visible", 0) for pm in models.values() for f in pm.values())
            aside = f"; {hidden} more not visible in the reference (CNR < 1), not counted" if hidden else ""
            out.append(
                f"\n**{set_name}**: lesions kept (contrast within 10 %, CNR ≥ 1{aside})"
                " / mean contrast kept\n"
            )
            out.append("| model | " + " | ".join(masks) + " |")
            out.append("|---|" + "---:|" * len(masks))
            for label, per_mask in models.items():
                cells = [
                    f"{f['lesions_kept']}/{f['lesions']} ({f['contrast_kept']:.2f})"
                    for f in (per_mask[m] for m in masks)
                ]
                out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def combine(runs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The figures and tuning of several runs' results on the same sets as one (later runs win)."""
    merged: dict[str, Any] = {"sets": {}, "tuning": {}, "models": {}}
    for data in runs:
        merged["tuning"].update(data.get("tuning", {}))
        merged["models"].update(data.get("models", {}))
        for set_name, models in data.get("sets", {}).items():
            for label, per_mask in models.items():
                merged["sets"].setdefault(set_name, {}).setdefault(label, {}).update(per_mask)
    return merged


# run settings that must be equal for figures to share a table (the sets, and CS's iterations)
RUN_KEYS = ("data_dir", "quick", "cs_iterations")


def merge(paths: Sequence[str]) -> dict[str, Any]:
    """The results of the JSON files of several runs on the same sets, as one (later files win).

    Raises:
        SystemExit: if the runs were made on other sets or settings (:data:`RUN_KEYS`), or one label
            names models of different weights in two runs.
    """
    runs = {path: json.loads(Path(path).read_text()) for path in paths}
    first = next(iter(runs))
    settings: dict[str, tuple[Any, str]] = {}
    weights: dict[str, tuple[str, str]] = {}
    for path, data in runs.items():
        args = data.get("args", {})
        for key in RUN_KEYS:
            settings.setdefault(key, (args.get(key), first))
            if args.get(key) != settings[key][0]:
                raise SystemExit(
                    f"--merge: {path} was run with {key}={args.get(key)!r}, {settings[key][1]} with "
                    f"{settings[key][0]!r}: their figures do not belong in one table"
                )
        for label, model in data.get("models", {}).items():
            digest = model.get("weights_sha256")
            seen = weights.setdefault(label, (digest, path))
            if digest != seen[0]:
                raise SystemExit(
                    f"--merge: '{label}' has other weights in {path} than in {seen[1]} "
                    f"({str(digest)[:12]} against {str(seen[0])[:12]}): score it again, or label them apart"
                )
    return {
        **combine(runs.values()),
        "merged_from": list(paths),
        "run_args": {key: value for key, (value, _) in settings.items()},
    }
