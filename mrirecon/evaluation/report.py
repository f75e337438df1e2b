"""The self-contained HTML report of an evaluation (pictures embedded as base64 PNG, no external files).

Sections: the reconstruction folders compared; the summary table (mean ± 2·SD per model,
acquisition and acceleration); distribution plots; lesion preservation per model; a table of every
volume; pictures of the first volumes (target / zero-filled / reconstruction / error map, zoomed
lesions); every lesion's figures; and the conventions the numbers follow.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mrirecon._version import __version__
from mrirecon.evaluation.figures import distribution_figure, preservation_figure
from mrirecon.evaluation.options import EvaluationOptions
from mrirecon.evaluation.panels import VolumePanel
from mrirecon.evaluation.volumes import ReconSource

__all__ = ["ReportContent", "render_report"]

#: Rows of the per-volume and per-lesion tables shown in the page (the CSVs hold all).
MAX_TABLE_ROWS = 2000

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; max-width: 1500px; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
.meta { color: #555; font-size: 0.9em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
tr.pooled td { font-weight: 600; background: #fafafa; }
.bad { color: #b22222; font-weight: 600; } .good { color: #1f6f2f; }
img { max-width: 100%; height: auto; display: block; margin: 0.4em 0; }
.lesions { display: flex; flex-wrap: wrap; gap: 1em; }
.lesion { border: 1px solid #ddd; padding: 0.4em; } .lesion p { margin: 0; font-size: 0.8em; }
.note { color: #666; font-size: 0.85em; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""

_NAMES = {
    "ssim": "SSIM",
    "psnr": "PSNR (dB)",
    "nmse": "NMSE",
    "ssim_cc": "SSIM (CC)",
    "psnr_cc": "PSNR (CC, dB)",
    "ssim_atommic": "SSIM (ATOMMIC)",
    "psnr_atommic": "PSNR (ATOMMIC, dB)",
    "nmse_atommic": "NMSE (ATOMMIC)",
}


@dataclass(frozen=True)
class ReportContent:
    """Everything the report shows (built by :func:`mrirecon.evaluation.evaluate.evaluate`)."""

    title: str
    created: str
    targets: str
    sources: Sequence[ReconSource]
    rows: Sequence[Mapping[str, Any]]
    lesion_rows: Sequence[Mapping[str, Any]]
    groups: Sequence[Mapping[str, Any]]
    lesion_groups: Sequence[Mapping[str, Any]]
    metric_fields: Sequence[str]
    panels: Sequence[VolumePanel]
    volumes: int
    options: EvaluationOptions


def _e(value: object) -> str:
    return html.escape(str(value))


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _e(value)
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞"
    return f"{value:.{digits}g}"


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], text_cols: int = 1, classes: Sequence[str] = ()
) -> str:
    head = "".join(
        f'<th class="text">{h}</th>' if i < text_cols else f"<th>{h}</th>" for i, h in enumerate(header)
    )
    body = []
    for r, row in enumerate(rows):
        cells = "".join(
            f'<td class="text">{c}</td>' if i < text_cols else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        cls = f' class="{classes[r]}"' if r < len(classes) and classes[r] else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _sources(content: ReportContent) -> str:
    counts = {
        str(s.folder): sum(1 for r in content.rows if r["folder"] == str(s.folder)) for s in content.sources
    }
    rows = [
        [
            _e(s.label),
            _e(s.acceleration or "–"),
            _e(s.folder),
            _e(s.model or "–"),
            _e(s.checkpoint_sha256[:12] or "–"),
            str(counts[str(s.folder)]),
        ]
        for s in content.sources
    ]
    return _table(
        ["label", "acceleration", "folder", "model attribute", "checkpoint", "volumes"], rows, text_cols=5
    )


def _only_lesion_group(lesion_groups: Sequence[Mapping[str, Any]], group: Mapping[str, Any]) -> Any:
    """For a pooled row ("all"): the model's one lesion group inside it, when there is only one (the
    lesion statistics add no pooled group over a single group; the metrics may, over volumes of
    other acquisitions without lesions)."""
    if "all" not in (group["acquisition"], group["acceleration"]):
        return None
    inside = [
        lg
        for lg in lesion_groups
        if lg["model"] == group["model"]
        and group["acquisition"] in ("all", lg["acquisition"])
        and group["acceleration"] in ("all", lg["acceleration"])
    ]
    return inside[0] if len(inside) == 1 else None


def _summary(content: ReportContent) -> str:
    lesion = {(g["model"], g["acquisition"], g["acceleration"]): g for g in content.lesion_groups}
    header = [
        "model",
        "acquisition",
        "acceleration",
        "volumes",
        *(_NAMES.get(m, m) for m in content.metric_fields),
    ]
    if content.lesion_rows:
        header.append("lesions preserved")
    rows, classes = [], []
    for g in content.groups:
        n = g[content.metric_fields[0]].count  # every volume scored, its figures finite or not
        row = [_e(g["model"]), _e(g["acquisition"]), _e(g["acceleration"]), str(n)]
        row += [_e(g[m].format()) for m in content.metric_fields]
        if content.lesion_rows:
            lg = lesion.get((g["model"], g["acquisition"], g["acceleration"])) or _only_lesion_group(
                content.lesion_groups, g
            )
            frac = lg["preserved_fraction"] if lg else None
            row.append(f"{round(frac.mean * frac.n)}/{frac.n}" if frac and frac.n else "–")
        rows.append(row)
        classes.append("pooled" if g["acquisition"] == "all" else "")
    return _table(header, rows, text_cols=3, classes=classes)


def _lesion_summary(content: ReportContent) -> str:
    rows, classes = [], []
    for g in content.lesion_groups:
        frac = g["preserved_fraction"]
        rows.append(
            [
                _e(g["model"]),
                _e(g["acquisition"]),
                _e(g["acceleration"]),
                str(frac.n),
                f"{round(frac.mean * frac.n)} ({100 * frac.mean:.0f} %)" if frac.n else "–",
                _e(g["preservation"].format(3)),
                _e(g["ref_cnr"].format(3)),
                _e(g["rec_cnr"].format(3)),
            ]
        )
        classes.append("pooled" if g["acquisition"] == "all" else "")
    header = [
        "model",
        "acquisition",
        "acceleration",
        "lesions",
        "preserved",
        "preservation",
        "CNR ref",
        "CNR rec",
    ]
    return _table(header, rows, text_cols=3, classes=classes)


def _volume_table(content: ReportContent) -> str:
    shown = content.rows[:MAX_TABLE_ROWS]
    rows = []
    for r in shown:
        row = [_e(r["file"]), _e(r["model"]), _e(r["acquisition"]), _e(r["acceleration"])]
        row += [_num(r[m]) for m in content.metric_fields]
        if content.lesion_rows:
            row.append(f"{r['lesions_preserved']}/{r['lesions']}" if r["lesions"] else "–")
        rows.append(row)
    header = [
        "file",
        "model",
        "acquisition",
        "acceleration",
        *(_NAMES.get(m, m) for m in content.metric_fields),
    ]
    if content.lesion_rows:
        header.append("lesions preserved")
    note = ""
    if len(content.rows) > len(shown):
        note = f'<p class="note">First {len(shown)} of {len(content.rows)} rows; all are in metrics.csv.</p>'
    return _table(header, rows, text_cols=4) + note


def _lesion_table(content: ReportContent) -> str:
    shown = content.lesion_rows[:MAX_TABLE_ROWS]
    rows = []
    for r in shown:
        if not r["visible"]:
            verdict = "not visible in the reference"
        else:
            verdict = '<span class="good">yes</span>' if r["preserved"] else '<span class="bad">no</span>'
        rows.append(
            [
                _e(r["file"]),
                _e(r["model"]),
                _e(r["acceleration"]),
                _e(f"{r['source']} {r['lesion']}" + ("" if r["source"] == "labels" else f" ({r['label']})")),
                _e(r["slices"]),
                str(r["pixels"]),
                _num(r["ref_contrast_ratio"], 3),
                _num(r["rec_contrast_ratio"], 3),
                _num(r["ref_cnr"], 3),
                _num(r["rec_cnr"], 3),
                _num(r["preservation"], 3),
                verdict,
            ]
        )
    header = ["file", "model", "acceleration", "lesion", "slices", "pixels"]
    header += ["CR ref", "CR rec", "CNR ref", "CNR rec", "preservation", "preserved"]
    note = ""
    if len(content.lesion_rows) > len(shown):
        note = (
            f'<p class="note">First {len(shown)} of {len(content.lesion_rows)} rows; '
            "all are in lesions.csv.</p>"
        )
    return _table(header, rows, text_cols=5) + note


def _panel(panel: VolumePanel) -> str:
    parts = [
        f'<h3 id="vol-{_e(panel.name)}">{_e(panel.name)} <span class="note">slice {panel.slice_index} of '
        f"{panel.slices}</span></h3>",
        _img(panel.png, f"{panel.name}: target, zero-filled, reconstruction and error map"),
    ]
    if panel.lesions:
        more = ""
        if panel.lesions_total > len(panel.lesions):
            more = f'<p class="note">{len(panel.lesions)} of {panel.lesions_total} lesions shown.</p>'
        items = "".join(
            f'<div class="lesion"><p>{_e(p.title)}</p>{_img(p.png, p.title)}</div>' for p in panel.lesions
        )
        parts.append(f'<div class="lesions">{items}</div>{more}')
    return "\n".join(parts)


def _conventions(content: ReportContent) -> str:
    o = content.options
    items = [
        "<li><b>fastMRI (SSIM, PSNR, NMSE)</b>: magnitude volumes centre-cropped as fastMRI's "
        "<code>evaluate.py</code> does (to W×W of the target); SSIM per slice with a 7×7 uniform window, "
        "K1 = 0.01, K2 = 0.03, sample covariance, data range = the <i>reference volume's</i> maximum, "
        "averaged over slices; PSNR (peak = that maximum) and NMSE over the whole volume; "
        "then mean ± 2·SD (ddof 1) over volumes. Comparable with fastMRI's leaderboard and papers "
        "using <code>evaluate.py</code>.</li>",
    ]
    if "ssim_cc" in content.metric_fields:
        items.append(
            "<li><b>Calgary-Campinas (SSIM (CC), PSNR (CC))</b>: a <i>different</i> convention: per slice, "
            "both images divided by the reference slice's maximum, data range = max − min of both, mean over "
            "slices. Not comparable with the fastMRI numbers.</li>"
        )
    if "ssim_atommic" in content.metric_fields:
        items.append(
            "<li><b>ATOMMIC (SSIM, PSNR, NMSE (ATOMMIC))</b>: a <i>different</i> convention: per slice, each "
            "image divided by its own maximum, SSIM data range 1, PSNR data range = max − min of both, mean "
            "over slices. Blind to a global intensity scale; not comparable with the fastMRI numbers.</li>"
        )
    low, high = o.criteria.band
    items.append(
        "<li><b>Lesions</b>: lesion region = labelled voxels (<code>lesion_labels</code>) or a fastMRI+ box "
        f"(rows flipped: row = H − y − height); ring = pixels {o.ring.gap:g} to "
        f"{o.ring.gap + o.ring.width:g} px "
        "(Euclidean) from the region, without other lesions (and their gap) and without pixels below "
        f"{o.ring.background_fraction:g} × the reference maximum; the same pixels in reference and "
        "reconstruction. CR = mean(lesion)/mean(ring); CNR = |mean(lesion) − mean(ring)| / SD(ring); "
        "preservation = (CR<sub>rec</sub> − 1)/(CR<sub>ref</sub> − 1); preserved when "
        f"{low:g} ≤ preservation ≤ {high:g} and CNR<sub>rec</sub> ≥ {o.criteria.min_cnr:g}. A lesion with "
        f"CNR<sub>ref</sub> &lt; {o.criteria.min_cnr:g} is not visible in the reference: it is listed, "
        "not counted as preserved or lost.</li>"
    )
    items.append(
        "<li><b>Pictures</b>: grey images share one window (0 to the target slice's 99.5th percentile); "
        "error maps |reconstruction − target| share one colour scale across the folders of a volume. "
        "Lesion panels: red = lesion outline, dashed yellow = ring.</li>"
    )
    return "<ul>" + "".join(items) + "</ul>"


def render_report(content: ReportContent) -> str:
    """The report as one HTML document (a string)."""
    sections = [
        f"<h1>{_e(content.title)}</h1>",
        f'<p class="meta">Created {_e(content.created)} by mrirecon {_e(__version__)} · targets '
        f"<code>{_e(content.targets)}</code> · {content.volumes} volumes · "
        f"{len(content.sources)} reconstruction folders</p>",
        '<nav><a href="#summary">Summary</a><a href="#distributions">Distributions</a>'
        + ('<a href="#lesions">Lesions</a>' if content.lesion_rows else "")
        + '<a href="#volumes">Volumes</a><a href="#conventions">Conventions</a></nav>',
        "<h2>Reconstructions compared</h2>",
        _sources(content),
        '<h2 id="summary">Summary: mean ± 2·SD over volumes</h2>',
        _summary(content),
        '<h2 id="distributions">Distributions per model and acceleration</h2>',
        _img(distribution_figure(content.rows, content.metric_fields), "per-volume metric distributions"),
    ]
    if content.lesion_rows:
        sections += [
            '<h2 id="lesions">Lesion contrast</h2>',
            _lesion_summary(content),
            _img(
                preservation_figure(content.lesion_rows, content.options.criteria.band), "lesion preservation"
            ),
        ]
    sections += ['<h2 id="volumes">Volumes</h2>', _volume_table(content)]
    if content.panels:
        shown = len(content.panels)
        sections.append(
            f'<p class="note">Pictures of the first {shown} of {content.volumes} volumes, '
            "each at the slice with the most lesion pixels (the middle slice without lesions).</p>"
        )
        sections += [_panel(p) for p in content.panels]
    if content.lesion_rows:
        sections += ["<h2>Every lesion</h2>", _lesion_table(content)]
    sections += ['<h2 id="conventions">Conventions</h2>', _conventions(content)]
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(content.title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
