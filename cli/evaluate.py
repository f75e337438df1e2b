"""``mrirecon evaluate``: fastMRI metrics, lesion contrast and an HTML report for reconstruction folders."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--reconstructions",
    "-r",
    "reconstructions",
    multiple=True,
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of reconstruction files (same names as the targets); repeat to compare several.",
)
@click.option(
    "--targets",
    "-t",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder of fastMRI files with reconstruction_rss, or a manifest CSV.",
)
@click.option(
    "--output-dir",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Report folder: metrics.csv, lesions.csv, summary.json, report.html.",
)
@click.option(
    "--label", "labels", multiple=True, help="Display label per --reconstructions folder, in order."
)
@click.option(
    "--split", type=click.Choice(["train", "val", "test"]), help="With a manifest: only this split."
)
@click.option(
    "--annotations",
    type=click.Path(dir_okay=False, path_type=Path),
    help="fastMRI+ annotation CSV (file,slice,study_level,x,y,width,height,label): measure its boxes.",
)
@click.option(
    "--annotation-label",
    "annotation_labels",
    multiple=True,
    help="Only boxes with this label (case-insensitive); repeatable. Default: all boxes.",
)
@click.option(
    "--ring-gap", type=float, default=2.0, show_default=True, help="Pixels between lesion and ring."
)
@click.option("--ring-width", type=float, default=3.0, show_default=True, help="Ring thickness in pixels.")
@click.option(
    "--band",
    type=(float, float),
    default=(0.9, 1.1),
    show_default=True,
    help="Preservation band: a lesion is kept when contrast(rec)/contrast(ref) lies within it.",
)
@click.option(
    "--min-cnr",
    type=float,
    default=1.0,
    show_default=True,
    help="Least CNR of a kept lesion; a lesion whose CNR in the reference is below it is not visible "
    "there and is listed, not counted.",
)
@click.option(
    "--calgary-campinas",
    is_flag=True,
    help="Also report the Calgary-Campinas per-slice SSIM and PSNR (a different convention, named).",
)
@click.option(
    "--atommic",
    is_flag=True,
    help="Also report ATOMMIC's SSIM, PSNR and NMSE on per-slice max-normalised images (named columns).",
)
@click.option(
    "--report-volumes",
    type=click.IntRange(min=0),
    default=12,
    show_default=True,
    help="Volumes pictured in the report.",
)
@click.option(
    "--lesion-panels",
    type=click.IntRange(min=0),
    default=6,
    show_default=True,
    help="Zoomed lesions per volume.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def evaluate(
    reconstructions: tuple[Path, ...],
    targets: Path,
    output_dir: Path,
    labels: tuple[str, ...],
    split: str | None,
    annotations: Path | None,
    annotation_labels: tuple[str, ...],
    ring_gap: float,
    ring_width: float,
    band: tuple[float, float],
    min_cnr: float,
    calgary_campinas: bool,
    atommic: bool,
    report_volumes: int,
    lesion_panels: int,
    no_progress: bool,
) -> None:
    """Score reconstructions exactly as fastMRI's evaluate.py does, check lesion contrast, write a report."""
    from mrirecon.errors import ConfigError
    from mrirecon.evaluation.evaluate import evaluate as run_evaluation
    from mrirecon.evaluation.lesion import PreservationCriteria, RingGeometry
    from mrirecon.evaluation.options import EvaluationOptions

    try:
        options = EvaluationOptions(
            labels=labels,
            split=split,
            annotations=annotations,
            annotation_labels=annotation_labels,
            ring=RingGeometry(gap=ring_gap, width=ring_width),
            criteria=PreservationCriteria(band=band, min_cnr=min_cnr),
            calgary_campinas=calgary_campinas,
            atommic=atommic,
            report_volumes=report_volumes,
            lesion_panels=lesion_panels,
            progress=not no_progress,
        )
    except ValueError as error:
        raise ConfigError(str(error), hint="see mrirecon evaluate --help") from error
    result = run_evaluation(reconstructions, targets, output_dir, options, echo=click.echo)
    click.echo(f"\nmetrics: {result.metrics_csv}")
    if result.lesions_csv is not None:
        click.echo(f"lesions: {result.lesions_csv}")
    click.echo(f"summary: {result.summary_json}")
    click.echo(f"report:  {result.report_html}")
