"""``mrirecon evaluate``: score folders of reconstructions against fastMRI targets and write a report.

For every target volume (a folder's ``*.h5`` or a manifest's entries) and every reconstruction
folder, the file of the same name is read, both are centre-cropped as fastMRI's ``evaluate.py`` does,
and the volume's SSIM, PSNR and NMSE are computed (:mod:`mrirecon.evaluation.metrics`). Where lesions
are known — ``lesion_labels`` in the target file, or fastMRI+ boxes from an annotation CSV — each is
measured in the reference and the reconstruction (:mod:`mrirecon.evaluation.lesion`).

Outputs in the report folder (each written under a temporary name and renamed when complete):

- ``metrics.csv``: one row per volume and reconstruction folder;
- ``lesions.csv``: one row per lesion and folder (only when lesions are known);
- ``summary.json``: the protocol, the folders, mean ± 2·SD per (model, acquisition, acceleration),
  lesion preservation per model;
- ``report.html``: one self-contained page (pictures embedded as base64 PNG).

Every folder is treated alike: learned models and classical baselines (zero-filled, SENSE, CS) are
just folders of reconstruction files; a folder is labelled by its files' ``model`` attribute or,
without one, by its name.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mrirecon._version import __version__
from mrirecon.atomic import atomic_file
from mrirecon.errors import DataError, Notice
from mrirecon.evaluation.aggregate import group_statistics
from mrirecon.evaluation.annotations import AnnotationBox, read_fastmri_plus
from mrirecon.evaluation.lesion import (
    LesionMeasure,
    lesion_regions,
    measure_region,
    tally,
)
from mrirecon.evaluation.metrics import (
    atommic_metrics,
    calgary_campinas_psnr,
    calgary_campinas_ssim,
    volume_metrics,
)
from mrirecon.evaluation.options import EvaluationOptions, Region
from mrirecon.evaluation.panels import VolumePanel, build_panels
from mrirecon.evaluation.report import ReportContent, render_report
from mrirecon.evaluation.volumes import (
    ReconSource,
    TargetVolume,
    center_crop,
    describe_sources,
    format_acceleration,
    list_targets,
    read_cropped,
    read_target,
)
from mrirecon.export import ReconVolume
from mrirecon.tables import write_csv

__all__ = ["EvaluationOptions", "EvaluationResult", "evaluate", "summary_lines"]

METRICS = ("ssim", "psnr", "nmse")
CC_METRICS = ("ssim_cc", "psnr_cc")
ATOMMIC_METRICS = ("ssim_atommic", "psnr_atommic", "nmse_atommic")


def _metric_fields(options: EvaluationOptions) -> list[str]:
    """The metric columns of a run: fastMRI's, then each convention asked for."""
    return [
        *METRICS,
        *(CC_METRICS if options.calgary_campinas else ()),
        *(ATOMMIC_METRICS if options.atommic else ()),
    ]


@dataclass(frozen=True)
class EvaluationResult:
    """What :func:`evaluate` wrote and computed."""

    output_dir: Path
    metrics_csv: Path
    summary_json: Path
    report_html: Path
    lesions_csv: Path | None
    rows: list[dict[str, Any]]
    lesion_rows: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    lesion_groups: list[dict[str, Any]]
    sources: list[ReconSource]
    #: Lesions the references do not show (CNR below ``min_cnr``): listed, left out of the counts.
    not_visible: int = 0


def _target_regions(
    target: TargetVolume, boxes: Sequence[AnnotationBox], options: EvaluationOptions
) -> list[Region]:
    regions: list[Region] = []
    if target.labels is not None:
        regions += [
            Region(k, "labels", "lesion", region, exclude)
            for k, region, exclude in lesion_regions(target.labels, options.ring)
        ]
    slices, full_h, full_w = target.full_shape
    for index, box in enumerate(boxes, start=1):
        if not 0 <= box.slice < slices:
            raise DataError(
                f"fastMRI+ box on slice {box.slice} but the volume has {slices} slices",
                path=target.path,
                hint="the annotation CSV does not belong to these files",
            )
        full = np.zeros(target.full_shape, dtype=bool)
        full[box.slice] = box.mask((full_h, full_w))
        region = np.ascontiguousarray(center_crop(full, target.crop, path=target.path, what="box"))
        if region.any():
            regions.append(Region(index, "fastmri+", box.label, region, None))
    lost = len(boxes) - sum(r.source == "fastmri+" for r in regions)
    if lost:  # coordinates past the image, or only outside the evaluation crop
        warnings.warn(
            Notice(f"{target.path.name}: {lost} fastMRI+ box(es) outside the evaluated image, not measured"),
            stacklevel=2,
        )
    return regions


def _check_scorable(
    target: TargetVolume, reconstruction: np.ndarray, recon_path: Path, options: EvaluationOptions
) -> None:
    """What the metrics cannot score, said with the file to blame (they raise ValueError)."""
    slices, height, width = target.image.shape
    if min(height, width) < 7:
        raise DataError(
            f"the reference is {height} × {width}: SSIM needs slices of at least 7 × 7", path=target.path
        )
    divides = (
        [("reference", target.path, target.image)] if options.calgary_campinas or options.atommic else []
    )
    if options.atommic:
        divides.append(("reconstruction", recon_path, reconstruction))
    if not bool(np.isfinite(target.image).all()) or not float(np.max(target.image)) > 0:
        raise DataError(
            "the reference is all zero or holds values that are not finite: the metrics cannot score "
            "against it (PSNR and SSIM take its maximum as the data range)",
            path=target.path,
            hint="check the target file (it is not the reconstruction's reference), or leave it out",
        )
    for what, path, volume in divides:
        empty = [s for s in range(slices) if not float(np.max(volume[s])) > 0]
        if empty:
            raise DataError(
                f"slice {empty[0]} of the {what} is all zero, and the "
                f"{'ATOMMIC' if options.atommic else 'Calgary-Campinas'} metrics divide by a slice's maximum",
                path=path,
                hint="leave out --atommic/--calgary-campinas, or the slice",
            )


def _acceleration(recon: ReconVolume, target: TargetVolume) -> str:
    return format_acceleration(recon.attrs().get("acceleration", target.attrs.get("acceleration"))) or "n/a"


def _lesion_row(base: Mapping[str, Any], region: Region, m: LesionMeasure) -> dict[str, Any]:
    row: dict[str, Any] = {
        **base,
        "source": region.source,
        "lesion": region.lesion,
        "label": region.label,
        "slices": " ".join(str(s) for s in m.slices),
        "central_slice": m.central_slice,
        "pixels": m.pixels,
        "ring_pixels": m.ring_pixels,
    }
    for prefix, stats in (("ref", m.reference), ("rec", m.reconstruction)):
        for key, value in asdict(stats).items():
            row[f"{prefix}_{key}"] = value
    row["preservation"] = m.preservation
    row["preserved"] = m.preserved
    row["visible"] = m.visible
    return row


def evaluate(
    reconstructions: Sequence[str | Path],
    targets: str | Path,
    output_dir: str | Path,
    options: EvaluationOptions | None = None,
    *,
    echo: Callable[[str], object] | None = None,
) -> EvaluationResult:
    """Score reconstruction folders against targets and write the CSVs, JSON and HTML report.

    Args:
        reconstructions: Folders of reconstruction files (docs/interfaces.md §5), one per model.
        targets: A folder of fastMRI target files, or a manifest CSV.
        output_dir: The report folder (created).
        options: See :class:`EvaluationOptions`.
        echo: Where to print progress messages (e.g. ``click.echo``); ``None`` prints nothing.

    Returns:
        An :class:`EvaluationResult`.

    Raises:
        DataError: missing or mismatched files and datasets (the file is named).
    """
    options = options or EvaluationOptions()
    if not reconstructions:
        raise DataError("no reconstruction folder given")
    target_paths = list_targets(targets, options.split)
    sources = describe_sources([Path(r) for r in reconstructions], options.labels)
    boxes: dict[str, list[AnnotationBox]] = {}
    if options.annotations is not None:
        boxes = read_fastmri_plus(options.annotations, options.annotation_labels or None)
    output = Path(output_dir)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the report folder: {error.strerror}", path=output) from error

    rows: list[dict[str, Any]] = []
    lesion_rows: list[dict[str, Any]] = []
    panels: list[VolumePanel] = []
    for index, path in enumerate(
        tqdm(target_paths, desc="evaluate", unit="volume", disable=not options.progress, dynamic_ncols=True)
    ):
        target = read_target(path)
        regions = _target_regions(target, boxes.get(path.stem, []), options)
        recons: list[tuple[ReconSource, ReconVolume]] = []
        measures: list[list[LesionMeasure]] = []
        for source in sources:
            recon = read_cropped(source.folder / target.name, target)
            recons.append((source, recon))
            row: dict[str, Any] = {
                "file": target.name,
                "model": source.label,
                "folder": str(source.folder),
                "acquisition": str(
                    target.attrs.get("acquisition", recon.attrs().get("acquisition", "n/a")) or "n/a"
                ),
                "acceleration": _acceleration(recon, target),
                "mask_type": str(recon.attrs().get("mask_type", "")),
                "undersampling": str(recon.attrs().get("undersampling", "")),
                "slices": target.image.shape[0],
                "height": target.image.shape[1],
                "width": target.image.shape[2],
            }
            _check_scorable(target, recon.reconstruction, source.folder / target.name, options)
            metrics = volume_metrics(target.image, recon.reconstruction)
            row.update({k: metrics[k] for k in METRICS})
            if options.calgary_campinas:
                row["ssim_cc"] = calgary_campinas_ssim(target.image, recon.reconstruction)
                row["psnr_cc"] = calgary_campinas_psnr(target.image, recon.reconstruction)
            if options.atommic:
                row.update(atommic_metrics(target.image, recon.reconstruction))
            found = [
                measure_region(
                    target.image,
                    recon.reconstruction,
                    region.region,
                    exclude=region.exclude,
                    geometry=options.ring,
                    criteria=options.criteria,
                    lesion=region.lesion,
                    label=region.label,
                )
                for region in regions
            ]
            measures.append(found)
            counts = tally(found)
            row["lesions"] = counts.judged
            row["lesions_preserved"] = counts.kept
            row["lesions_not_visible"] = counts.not_visible
            rows.append(row)
            base = {k: row[k] for k in ("file", "model", "acquisition", "acceleration")}
            lesion_rows.extend(_lesion_row(base, region, m) for region, m in zip(regions, found))
        if index < options.report_volumes:
            panels.append(build_panels(target, recons, regions, measures, rows[-len(sources) :], options))

    groups = group_statistics(rows, _metric_fields(options))
    # lesions the reference does not show are in lesions.csv and the report, not in the counts
    lesion_groups = group_statistics(
        [{**r, "preserved_fraction": float(r["preserved"])} for r in lesion_rows if r["visible"]],
        ["preserved_fraction", "preservation", "rec_cnr", "ref_cnr"],
    )
    metric_fields = _metric_fields(options)
    metrics_csv = output / "metrics.csv"
    _write_csv(metrics_csv, rows)
    lesions_csv = None
    if lesion_rows:
        lesions_csv = output / "lesions.csv"
        _write_csv(lesions_csv, lesion_rows)
    # visibility is the reference's: one lesion, whatever the number of models
    not_visible = len({(r["file"], r["source"], r["lesion"]) for r in lesion_rows if not r["visible"]})
    summary = _summary(
        sources, targets, options, groups, lesion_groups, metric_fields, len(target_paths), lesions_csv
    )
    summary["lesions"]["not_visible"] = not_visible
    if options.annotations is not None:
        stems = {p.stem for p in target_paths}
        matched = sum(len(v) for k, v in boxes.items() if k in stems)
        summary["lesions"]["annotations"] = {
            "csv": str(options.annotations),
            "labels": list(options.annotation_labels),
            "boxes_read": sum(len(v) for v in boxes.values()),
            "boxes_on_evaluated_volumes": matched,
        }
        if matched == 0 and echo is not None:
            labels = ", ".join(options.annotation_labels)
            cause = f"(do the file names differ{f', or has none the label(s) {labels}' if labels else ''}?)"
            echo(f"warning: no box of {options.annotations} belongs to the evaluated volumes {cause}")
    summary_json = output / "summary.json"
    _write_text(summary_json, json.dumps(summary, indent=2, allow_nan=False))
    content = ReportContent(
        title="mrirecon evaluation",
        created=summary["created"],
        targets=str(targets),
        sources=sources,
        rows=rows,
        lesion_rows=lesion_rows,
        groups=groups,
        lesion_groups=lesion_groups,
        metric_fields=metric_fields,
        panels=panels,
        volumes=len(target_paths),
        options=options,
    )
    report_html = output / "report.html"
    _write_text(report_html, render_report(content))
    if echo is not None:
        for line in summary_lines(groups, lesion_groups, metric_fields):
            echo(line)
        if not_visible:
            echo(
                f"{not_visible} lesion(s) not visible in the reference (CNR below "
                f"{options.criteria.min_cnr:g}) left out of the counts; they are in {lesions_csv}"
            )
    return EvaluationResult(
        output_dir=output,
        metrics_csv=metrics_csv,
        summary_json=summary_json,
        report_html=report_html,
        lesions_csv=lesions_csv,
        rows=rows,
        lesion_rows=lesion_rows,
        groups=groups,
        lesion_groups=lesion_groups,
        sources=sources,
        not_visible=not_visible,
    )


def summary_lines(
    groups: Iterable[Mapping[str, Any]],
    lesion_groups: Iterable[Mapping[str, Any]],
    metric_fields: Sequence[str],
) -> list[str]:
    """fastMRI-style lines: ``model acquisition R=acc (n volumes): SSIM = mean ± 2SD, ...``."""
    lines = []
    for g in groups:
        stats = ", ".join(f"{k.upper()} = {g[k].format()}" for k in metric_fields)
        lines.append(
            f"{g['model']} {g['acquisition']} R={g['acceleration']} "
            f"({_count(g[metric_fields[0]].count, 'volume')}): {stats}"
        )
    for g in lesion_groups:
        frac = g["preserved_fraction"]
        lines.append(
            f"{g['model']} {g['acquisition']} R={g['acceleration']}: lesions preserved "
            f"{round(frac.mean * frac.n)}/{frac.n}"
        )
    return lines


def _summary(
    sources: Sequence[ReconSource],
    targets: str | Path,
    options: EvaluationOptions,
    groups: Sequence[Mapping[str, Any]],
    lesion_groups: Sequence[Mapping[str, Any]],
    metric_fields: Sequence[str],
    volumes: int,
    lesions_csv: Path | None,
) -> dict[str, Any]:
    def jsonable(group: Mapping[str, Any]) -> dict[str, Any]:
        return {k: (v.to_json() if hasattr(v, "to_json") else v) for k, v in group.items()}

    conventions = {
        "fastmri": "SSIM per slice (7x7 uniform window, K1 0.01, K2 0.03, sample covariance, data range = "
        "the reference volume's maximum) averaged over the volume; PSNR and NMSE over the whole volume; "
        "volumes centre-cropped to (W, W) of the target; mean and 2*SD (ddof 1) over volumes",
    }
    if options.calgary_campinas:
        conventions["calgary-campinas"] = (
            "ssim_cc/psnr_cc: per slice, both images divided by the reference slice's maximum, data range = "
            "max - min of both slices, mean over slices"
        )
    if options.atommic:
        conventions["atommic"] = (
            "ssim_atommic/psnr_atommic/nmse_atommic: per slice, each image divided by its own maximum, "
            "SSIM data range 1, PSNR data range = max - min of both slices, mean over slices"
        )
    return {
        "mrirecon_version": __version__,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "targets": str(targets),
        "volumes": volumes,
        "metrics": list(metric_fields),
        "conventions": conventions,
        "sources": [{**asdict(s), "folder": str(s.folder)} for s in sources],
        "groups": [jsonable(g) for g in groups],
        "lesions": {
            "csv": lesions_csv.name if lesions_csv else None,
            "ring": asdict(options.ring),
            "criteria": {"band": list(options.criteria.band), "min_cnr": options.criteria.min_cnr},
            "definitions": {
                "contrast_ratio": "mean(lesion) / mean(ring)",
                "contrast": "contrast_ratio - 1",
                "cnr": "|mean(lesion) - mean(ring)| / SD(ring), SD with ddof 1",
                "preservation": "contrast(reconstruction) / contrast(reference)",
                "visible": "cnr(reference) >= min_cnr; lesions not visible in the reference are left out "
                "of the groups' counts",
                "preserved": "visible and band[0] <= preservation <= band[1] "
                "and cnr(reconstruction) >= min_cnr",
            },
            "groups": [jsonable(g) for g in lesion_groups],
        },
        "files": {"metrics": "metrics.csv", "report": "report.html"},
    }


def _write_text(path: Path, text: str) -> None:
    with atomic_file(path, what=path.name) as temporary:
        temporary.write_text(text, encoding="utf-8")


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    write_csv(path, rows, what=path.name)


def _count(n: int, noun: str) -> str:
    """``1 volume``, ``3 volumes``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
