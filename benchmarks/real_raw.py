"""Real raw scans without a ground truth: the pretrained models beside the baselines, with pictures and
data-consistency residuals.

    python -m benchmarks.real_raw [--model cirim-brain --model rim-brain] [--figure docs/images/real_raw.png]

Data (``../shared/data``, prospectively undersampled, read as ``mrirecon infer`` reads them: the
mask recovered from the k-space's zeros, ACS coil maps, the pipeline's normalisation):

- ``sigpy_tutorial_brain_poisson``: an in-vivo T1 brain, 8 coils, 230 × 180, variable-density
  Poisson disc (12.4 % of samples, a 20 × 20 calibration square);
- ``nhlbi_ismrmrd_snr_r3``: a two-bottle phantom, Siemens 3T, 14 coils, 3× with embedded
  calibration and partial Fourier (ISMRMRD raw).

Without a reference only two things can be measured: how well each image explains the measured
samples, the relative data-consistency residual ``‖M F S x − y‖ / ‖y‖`` (with the ACS maps every
model gets; 0 for an image that reproduces every sample, which with noisy data means it kept the
noise), and the time. The pictures show the rest. Prints a table, writes JSON and the figure.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import (
    REAL_ISMRMRD_PHANTOM,
    REAL_POISSON_BRAIN,
    RESULTS,
    machine_info,
    print_table,
    time_call,
    write_json,
)
from mrirecon.data.sample import ReconSample
from mrirecon.data.transforms import ReconTransform
from mrirecon.data.volume import open_volume
from mrirecon.models.base import Reconstructor
from mrirecon.models.registry import build_model_from_mapping
from mrirecon.physics.operators import MultiCoilOperator
from mrirecon.runtime import configure_threads
from mrirecon.shapes import center_crop

#: The baselines, at the settings the quality benchmark tuned for Poisson disc 8× (CS λ 0.005).
BASELINES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("CS", "cs_l1wavelet", {"regularization": 0.005, "coil_maps": "given"}),
    ("SENSE", "sense", {"iterations": 10, "regularization": 0.01}),
    ("zero-filled", "zero_filled", {}),
)


def scans() -> list[tuple[str, Path, dict[str, Any]]]:
    """(label, path, open_volume options) of the real raw files."""
    return [
        ("T1 brain, 8 coils, Poisson disc", REAL_POISSON_BRAIN, {"npy_axes": "coils,kx,ky"}),
        ("phantom, 14 coils, 3x + partial Fourier (ISMRMRD)", REAL_ISMRMRD_PHANTOM, {}),
    ]


def models(specs: list[str]) -> list[tuple[str, Reconstructor]]:
    from mrirecon.inference.loading import load_reconstructor

    learned = [(spec, load_reconstructor(spec).model.eval()) for spec in specs]
    return learned + [(label, build_model_from_mapping(name, cfg)) for label, name, cfg in BASELINES]


def first_slice(path: Path, options: dict[str, Any]) -> ReconSample:
    """The file's first slice as every model gets it (recovered mask, ACS maps, normalised)."""
    with open_volume(path, **options) as volume:
        return ReconTransform(None, coil_maps="acs")(volume, 0)


def reconstruct(sample: ReconSample, model: Reconstructor) -> tuple[np.ndarray, float, float]:
    """(magnitude image, relative data-consistency residual, seconds) of one slice; the seconds
    are the median of 3 calls after an untimed one (the first call of a process pays for
    allocations and kernel selection)."""
    kspace, mask, maps = sample.masked_kspace[None], sample.mask[None], sample.coil_maps[None]
    outputs: list[torch.Tensor] = []

    def call() -> None:
        with torch.no_grad():
            outputs.append(model(kspace, mask, maps).image)

    seconds = time_call(call, torch.device("cpu"), repeats=3, warmup=1)
    image = outputs[-1]
    operator = MultiCoilOperator(maps, mask.to(torch.float32))
    residual = float(
        torch.linalg.vector_norm(operator.forward(image) - kspace) / torch.linalg.vector_norm(kspace)
    )
    return center_crop((image[0].abs() * sample.scale).numpy(), sample.crop_size), residual, seconds


def figure(images: dict[str, dict[str, np.ndarray]], rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scans_, labels = list(images), list(next(iter(images.values())))
    fig, axes = plt.subplots(
        len(scans_), len(labels), figsize=(2.6 * len(labels), 2.9 * len(scans_)), squeeze=False
    )
    residual = {(r["scan"], r["model"]): r["residual"] for r in rows}
    for i, scan in enumerate(scans_):
        top = max(float(np.percentile(image, 99.5)) for image in images[scan].values())
        for j, label in enumerate(labels):
            ax = axes[i, j]
            ax.imshow(images[scan][label], cmap="gray", vmin=0, vmax=top)
            ax.set_title(f"{label}\nresidual {residual[(scan, label)]:.3f}", fontsize=8)
            ax.axis("off")
        axes[i, 0].text(
            -0.08, 0.5, scan, transform=axes[i, 0].transAxes, rotation=90, va="center", ha="right", fontsize=8
        )
    fig.suptitle(
        "Real prospectively undersampled scans (no ground truth); residual = ‖MFSx − y‖ / ‖y‖", fontsize=9
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", action="append", default=None, help="learned models [cirim-brain, rim-brain]"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--figure", default=str(RESULTS / "real_raw.png"), help="where the picture goes")
    parser.add_argument("--output", default=None, help="JSON path [benchmarks/results/real_raw.json]")
    args = parser.parse_args()
    configure_threads(args.threads)
    chosen = models(args.model or ["cirim-brain", "rim-brain"])
    rows: list[dict[str, Any]] = []
    images: dict[str, dict[str, np.ndarray]] = {}
    for scan, path, options in scans():
        sample = first_slice(path, options)
        for label, model in chosen:
            image, residual, seconds = reconstruct(sample, model)
            images.setdefault(scan, {})[label] = image
            rows.append({"scan": scan, "model": label, "residual": residual, "seconds": seconds})
    print_table(
        ["scan", "model", "DC residual", "s / slice"],
        [[r["scan"], r["model"], f"{r['residual']:.4f}", f"{r['seconds']:.2f}"] for r in rows],
    )
    path = write_json(
        "real_raw",
        {"machine": machine_info(torch.device("cpu")), "rows": rows},
        Path(args.output) if args.output else None,
    )
    figure(images, rows, Path(args.figure))
    print(f"wrote {path} and {args.figure}")


if __name__ == "__main__":
    main()
