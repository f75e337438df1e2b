"""How many lesions the lesion criterion lets a perfect measurement keep: the noise ceiling.

    python -m benchmarks.lesion_ceiling [--data-dir benchmarks/results/quality_data] [--draws 5]

The quality benchmark's reference is the root-sum-of-squares of *noisy* fully sampled k-space, so a
reconstruction is judged against an image that carries one noise draw. This benchmark asks what
that noise alone costs: each test volume's fully sampled k-space gets a second, independent draw of
the noise its file records for that slice (``σ_s²·Ψ`` between coils, :func:`noise_covariance_of`), its
root-sum-of-squares is scored against the reference with the same lesion measure as the models
(:mod:`mrirecon.evaluation.lesion`), and the lesions kept are counted. An image with its own noise
is a harder case than a reconstruction that removes noise (the differences of two noisy images
carry the noise twice), so a set on which the second draw keeps nearly every lesion is one where
the criterion does not ask more than the measurement holds. Prints a table and writes
``benchmarks/results/lesion_ceiling.json``.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from benchmarks.common import RESULTS, machine_info, write_json
from benchmarks.quality import Volume, ensure_sets, load_volumes
from mrirecon.data.coil_arrays import coil_noise
from mrirecon.data.realistic_dataset import noise_covariance_of
from mrirecon.evaluation.lesion import measure_lesions, tally
from mrirecon.physics import ifft2c, rss
from mrirecon.shapes import center_crop


def redrawn(volume: Volume, rng: np.random.Generator) -> np.ndarray:
    """The volume's root-sum-of-squares ``(S, h, w)`` (cropped as its reference) after a second,
    independent noise draw of the covariance its file records is added to its k-space."""
    with h5py.File(volume.path, "r") as handle:
        kspace = handle["kspace"][()]  # (S, C, H, W)
        attrs = dict(handle.attrs)
    noisy = []
    for index, k in enumerate(kspace):
        covariance = noise_covariance_of(attrs, index)  # σ follows each slice's brain signal
        if covariance is None:
            raise SystemExit(
                f"{volume.path}: no noise covariance recorded for slice {index} (a set made before "
                "mrirecon recorded each slice's σ: delete the --data-dir folder to remake the sets)"
            )
        noisy.append(k + coil_noise(covariance, k.shape[1:], 1.0, rng))
    images = rss(ifft2c(torch.from_numpy(np.stack(noisy).astype(np.complex64)))).numpy()
    return center_crop(images, volume.target.shape[-2:]).astype(np.float32)


def ceiling(volumes: Sequence[Volume], draws: int, seed: int = 0) -> dict[str, Any]:
    """Lesions kept by a second noise draw, over ``draws`` draws: the counts of each draw and the
    mean contrast kept (``P``)."""
    rng = np.random.default_rng(seed)
    kept: list[int] = []
    preservation: list[float] = []
    judged = 0
    for _ in range(draws):
        count = judged = 0
        for volume in volumes:
            if volume.labels is None:
                continue
            measures = measure_lesions(volume.target, redrawn(volume, rng), volume.labels)
            counts = tally(measures)
            count, judged = count + counts.kept, judged + counts.judged
            preservation += [m.preservation for m in measures if m.visible and np.isfinite(m.preservation)]
        kept.append(count)
    return {
        "lesions": judged,
        "kept_per_draw": kept,
        "kept_min": min(kept),
        "contrast_kept": statistics.mean(preservation) if preservation else float("nan"),
        "contrast_kept_sd": statistics.pstdev(preservation) if preservation else float("nan"),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(RESULTS / "quality_data"), help="the quality sets")
    parser.add_argument("--draws", type=int, default=5, help="independent noise draws per volume")
    parser.add_argument("--quick", action="store_true", help="the quality benchmark's small sets")
    parser.add_argument("--output", default=None, help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    if args.draws < 1:
        parser.error("--draws must be at least 1")
    paths = ensure_sets(Path(args.data_dir), args.quick)
    results = {name: ceiling(load_volumes(paths[name]), args.draws) for name in ("simulated", "real")}
    print("set        lesions  kept by a second noise draw (each draw)   contrast kept P (mean ± sd)")
    for name, r in results.items():
        draws = ", ".join(str(k) for k in r["kept_per_draw"])
        contrast = f"{r['contrast_kept']:.3f} ± {r['contrast_kept_sd']:.3f}"
        print(f"{name:10s} {r['lesions']:7d}  {draws:40s}  {contrast}")
    payload = {"machine": machine_info(torch.device("cpu")), "args": vars(args), "sets": results}
    path = write_json("lesion_ceiling", payload, Path(args.output) if args.output else None)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
