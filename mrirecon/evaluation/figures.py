"""The report's pictures, as PNG bytes (matplotlib's object API with the Agg canvas; no pyplot state).

- :func:`volume_figure`: one slice of a volume; a row per reconstruction folder with the target,
  the zero-filled input, the reconstruction and the error map ``|reconstruction − target|`` side by
  side. Grey images share one window (0 to the target slice's 99.5th percentile); error maps share
  one scale across rows so models can be compared at a glance. Lesion outlines are drawn on the target.
- :func:`lesion_figure`: a zoomed window around one lesion in its central slice: the reference with
  the lesion outline (red) and its measurement ring (yellow), then each reconstruction with the
  outline, each titled with its contrast ratio, CNR and preservation.
- :func:`distribution_figure`: per-volume SSIM, PSNR and NMSE as box plots with the volumes as dots,
  one box per (model, acceleration).
- :func:`preservation_figure`: every lesion's preservation ratio per model, with the accepted band.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ParamSpec

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mrirecon.evaluation.lesion import ContrastStats, LesionMeasure

__all__ = ["PanelRow", "distribution_figure", "lesion_figure", "preservation_figure", "volume_figure"]

_DPI = 80


@dataclass(frozen=True)
class PanelRow:
    """One reconstruction folder's images of one slice.

    Attributes:
        label: The folder's label.
        reconstruction: ``(h, w)`` magnitude.
        zero_filled: ``(h, w)`` magnitude of the zero-filled input, or ``None``.
        caption: Text under the label (e.g. the volume's metrics).
    """

    label: str
    reconstruction: np.ndarray
    zero_filled: np.ndarray | None
    caption: str = ""


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


_P = ParamSpec("_P")


def _plain_text(draw: Callable[_P, bytes]) -> Callable[_P, bytes]:
    """Draw with every text as it is: labels are folder and file names, and matplotlib would read
    a ``$`` in one as TeX (an unbalanced one stopped ``evaluate`` after all its scoring)."""

    @functools.wraps(draw)
    def plain(*args: _P.args, **kwargs: _P.kwargs) -> bytes:
        with matplotlib.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return plain


def _finite_percentile(image: np.ndarray, q: float) -> float:
    """The ``q``-th percentile of the finite pixels (0 without any): a reconstruction holding NaN
    would otherwise make NaN the scale every error map of its volume shares."""
    finite = image[np.isfinite(image)]
    return float(np.percentile(finite, q)) if finite.size else 0.0


#: Error maps: not-finite pixels (a failed reconstruction) in a colour the map never uses.
_ERROR_MAP = matplotlib.colormaps["inferno"].with_extremes(bad="cyan")


def _window(image: np.ndarray) -> float:
    top = float(np.percentile(image, 99.5))
    return top if top > 0 else float(image.max()) or 1.0


def _grey(ax: Axes, image: np.ndarray, vmax: float, title: str, interpolation: str = "nearest") -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=vmax, interpolation=interpolation)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _outline(ax: Axes, mask: np.ndarray, color: str, style: str = "solid") -> None:
    if mask.any() and not mask.all():
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=[color], linewidths=1.0, linestyles=style)


@_plain_text
def volume_figure(
    target: np.ndarray, rows: Sequence[PanelRow], *, lesions: np.ndarray | None = None
) -> bytes:
    """Target / zero-filled / reconstruction / error map for each reconstruction folder.

    Args:
        target: ``(h, w)`` reference slice.
        rows: One :class:`PanelRow` per folder, images ``(h, w)``.
        lesions: ``(h, w)`` bool lesion pixels to outline on the target, or ``None``.

    Returns:
        PNG bytes.
    """
    vmax = _window(target)
    errors = [np.abs(r.reconstruction.astype(np.float64) - target) for r in rows]
    emax = max((_finite_percentile(e, 99.5) for e in errors), default=0.0) or vmax
    height, width = target.shape
    panel = 3.0
    fig = Figure(
        layout="constrained", figsize=(4 * panel * max(width / height, 0.6), panel * max(len(rows), 1) + 0.3)
    )
    axes = fig.subplots(max(len(rows), 1), 4, squeeze=False)
    for i, (row, error) in enumerate(zip(rows, errors)):
        # downsampled to about 230 pixels a side: antialiased, or single pixels (small lesions,
        # thin artefacts) vanish and stripes alias
        _grey(axes[i, 0], target, vmax, "target", "antialiased")
        if lesions is not None:
            _outline(axes[i, 0], lesions, "red")
        if row.zero_filled is not None:
            _grey(axes[i, 1], row.zero_filled, vmax, "zero-filled input", "antialiased")
        else:
            axes[i, 1].text(0.5, 0.5, "no zero_filled\nin the file", ha="center", va="center", fontsize=9)
            axes[i, 1].set_axis_off()
        _grey(axes[i, 2], row.reconstruction, vmax, row.label, "antialiased")
        if row.caption:
            axes[i, 2].set_xlabel(row.caption)
            axes[i, 2].set_axis_on()
            axes[i, 2].set_xticks([])
            axes[i, 2].set_yticks([])
        image = axes[i, 3].imshow(error, cmap=_ERROR_MAP, vmin=0, vmax=emax, interpolation="antialiased")
        axes[i, 3].set_title("|reconstruction − target|", fontsize=9)
        axes[i, 3].set_axis_off()
        fig.colorbar(image, ax=axes[i, 3], fraction=0.046, pad=0.02)
    return _png(fig)


def _stats_text(stats: ContrastStats) -> str:
    return f"CR {stats.contrast_ratio:.2f}  CNR {stats.cnr:.1f}"


@_plain_text
def lesion_figure(
    target: np.ndarray,
    region: np.ndarray,
    ring: np.ndarray,
    reconstructions: Sequence[tuple[str, np.ndarray, LesionMeasure]],
    *,
    title: str = "",
) -> bytes:
    """A zoomed lesion: reference with lesion and ring outlines, then each reconstruction.

    Args:
        target: ``(a, b)`` reference window around the lesion.
        region: ``(a, b)`` bool lesion pixels in the window.
        ring: ``(a, b)`` bool ring pixels in the window.
        reconstructions: ``(label, (a, b) window, measure)`` per reconstruction folder.
        title: The figure's title.

    Returns:
        PNG bytes.
    """
    vmax = _window(target)
    vmax = max(vmax, float(target[region].max()) if region.any() else 0.0)
    count = 1 + len(reconstructions)
    fig = Figure(figsize=(2.3 * count, 3.0))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.8 if not title else 0.72, wspace=0.05)
    axes = fig.subplots(1, count, squeeze=False)[0]
    reference = reconstructions[0][2].reference if reconstructions else None
    _grey(axes[0], target, vmax, "reference" + (f"\n{_stats_text(reference)}" if reference else ""))
    _outline(axes[0], region, "red")
    _outline(axes[0], ring, "yellow", "dashed")
    for ax, (label, image, measure) in zip(axes[1:], reconstructions):
        verdict = "kept" if measure.preserved else "NOT kept" if measure.visible else "not in reference"
        text = f"{label}\n{_stats_text(measure.reconstruction)}\nP {measure.preservation:.2f} {verdict}"
        _grey(ax, image, vmax, text)
        _outline(ax, region, "red")
        ax.title.set_color("firebrick" if measure.visible and not measure.preserved else "black")
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


def _groups(rows: Sequence[Mapping[str, object]]) -> list[tuple[str, str]]:
    return sorted({(str(r["model"]), str(r["acceleration"])) for r in rows})


@_plain_text
def distribution_figure(
    rows: Sequence[Mapping[str, object]], metrics: Sequence[str] = ("ssim", "psnr", "nmse")
) -> bytes:
    """Per-volume metric distributions, one box per (model, acceleration).

    Args:
        rows: Metric rows (``model``, ``acceleration`` and the metrics).
        metrics: Which metrics, one panel each.

    Returns:
        PNG bytes.
    """
    groups = _groups(rows)
    fig = Figure(layout="constrained", figsize=(max(4.0, 1.0 + 1.1 * len(groups)) * len(metrics) * 0.8, 3.6))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    rng = np.random.default_rng(0)
    names = [f"{m}\nR={a}" for m, a in groups]
    for ax, metric in zip(axes, metrics):
        data = []
        for model, acc in groups:
            values = [
                float(r[metric])  # type: ignore[arg-type]
                for r in rows
                if str(r["model"]) == model and str(r["acceleration"]) == acc and r.get(metric) is not None
            ]
            data.append([v for v in values if math.isfinite(v)])
        positions = np.arange(1, len(groups) + 1)
        ax.boxplot(data, positions=positions, widths=0.5, showfliers=False)
        for x, values in zip(positions, data):
            ax.scatter(x + rng.uniform(-0.12, 0.12, len(values)), values, s=10, alpha=0.6, color="tab:blue")
        ax.set_xticks(positions)
        ax.set_xticklabels(names, fontsize=8, rotation=20)
        ax.set_title({"ssim": "SSIM", "psnr": "PSNR (dB)", "nmse": "NMSE"}.get(metric, metric), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


@_plain_text
def preservation_figure(lesion_rows: Sequence[Mapping[str, object]], band: tuple[float, float]) -> bytes:
    """Each lesion's preservation ratio per (model, acceleration), with the accepted band shaded.

    Args:
        lesion_rows: Lesion rows (``model``, ``acceleration``, ``preservation``, ``preserved``,
            ``visible``).
        band: The accepted preservation band.

    Returns:
        PNG bytes.
    """
    groups = _groups(lesion_rows)
    fig = Figure(layout="constrained", figsize=(max(4.0, 1.0 + 1.2 * len(groups)), 3.4))
    ax = fig.subplots()
    ax.axhspan(band[0], band[1], color="tab:green", alpha=0.15, label="accepted band")
    ax.axhline(1.0, color="tab:green", linewidth=0.8)
    rng = np.random.default_rng(0)
    hidden_label: str | None = "not visible in the reference"
    for i, (model, acc) in enumerate(groups, start=1):
        members = [r for r in lesion_rows if str(r["model"]) == model and str(r["acceleration"]) == acc]
        values = np.array([float(r["preservation"]) for r in members], dtype=np.float64)  # type: ignore[arg-type]
        kept = np.array([bool(r["preserved"]) for r in members])
        visible = np.array([bool(r["visible"]) for r in members])
        x = i + rng.uniform(-0.15, 0.15, len(values))
        ax.scatter(x[kept], values[kept], s=14, color="tab:blue", label="preserved" if i == 1 else None)
        lost = visible & ~kept
        label = "not preserved" if i == 1 else None
        ax.scatter(x[lost], values[lost], s=14, color="tab:red", marker="x", label=label)
        if (~visible).any():
            ax.scatter(
                x[~visible],
                values[~visible],
                s=14,
                facecolors="none",
                edgecolors="grey",
                label=hidden_label,
            )
            hidden_label = None
    ax.set_xticks(np.arange(1, len(groups) + 1))
    ax.set_xticklabels([f"{m}\nR={a}" for m, a in groups], fontsize=8, rotation=20)
    ax.set_ylabel("preservation (contrast ratio − 1, rec / ref)", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)
