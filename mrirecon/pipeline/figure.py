"""The demo's picture: one test slice reconstructed by every model, with the error maps under it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mrirecon.evaluation.volumes import read_cropped, read_target

__all__ = ["comparison_figure", "pick_slice"]


def pick_slice(target_image: np.ndarray, labels: np.ndarray | None) -> int:
    """The slice with the most lesion pixels (the middle slice without lesions).

    Args:
        target_image: ``(S, H, W)``.
        labels: ``(S, H, W)`` lesion labels or None.
    """
    if labels is not None and labels.any():
        return int(np.argmax((labels > 0).reshape(labels.shape[0], -1).sum(axis=1)))
    return target_image.shape[0] // 2


def comparison_figure(
    target_path: Path,
    recon_folders: Sequence[tuple[str, Path]],
    ssim: Mapping[str, float],
    output: Path,
) -> Path:
    """Write a PNG: the fully sampled reference and each reconstruction of one slice, errors ×5 below.

    Args:
        target_path: The fastMRI target file (fully sampled, with ``lesion_labels`` if any).
        recon_folders: ``(label, folder)`` per model; the folder holds ``<target name>.h5``.
        ssim: Volume SSIM per label (shown in the titles).
        output: The PNG path.

    Returns:
        ``output``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = read_target(target_path)
    index = pick_slice(target.image, target.labels)
    reference = target.image[index]
    images = [
        (label, read_cropped(folder / target.name, target).reconstruction[index])
        for label, folder in recon_folders
    ]
    vmax = float(np.percentile(reference, 99.5)) or 1.0
    columns = 1 + len(images)
    fig, axes = plt.subplots(2, columns, figsize=(2.6 * columns, 5.4), squeeze=False)
    axes[0, 0].imshow(reference, cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
    axes[0, 0].set_title("fully sampled", fontsize=9)
    lesions = target.labels is not None and bool(target.labels[index].any())
    if lesions:
        axes[0, 0].contour(target.labels[index] > 0, levels=[0.5], colors="#ff5a36", linewidths=0.8)  # type: ignore[index]
    axes[1, 0].text(
        0.5,
        0.5,
        ("lesions outlined in red\n\n" if lesions else "") + "rows: image (same window)\nand |error| × 5",
        ha="center",
        va="center",
        fontsize=9,
        transform=axes[1, 0].transAxes,
    )
    for column, (label, image) in enumerate(images, start=1):
        axes[0, column].imshow(image, cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
        title = label if label not in ssim else f"{label}\nSSIM {ssim[label]:.3f}"
        axes[0, column].set_title(title, fontsize=9)
        axes[1, column].imshow(np.abs(image - reference), cmap="inferno", vmin=0, vmax=vmax / 5)
        axes[1, column].set_title("|error| × 5", fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(f"{target.name}, slice {index}", fontsize=10)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output
