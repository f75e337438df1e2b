"""Image quality on held-out simulated data and on real anatomy: learned models against tuned baselines.

    python -m benchmarks.quality --model cirim-brain --model mine=runs/x/checkpoints/best.ckpt

Sets (made on first use in ``--data-dir``; the same files every run):

- ``simulated``: held-out volumes of the realistic simulator (seeds training never uses),
  192–256 rows, 2 slices each, 3–6 hypo- and hyperintense lesions per slice;
- ``real``: the real-anatomy set (:mod:`mrirecon.data.real_anatomy`: dipy's real T1 slice in eight
  acquisitions with lesions and six real b0 slices, simulated coils and noise), anatomy from
  another source than the training template.

Masks (the columns): equispaced 4× (centre 0.08) and 8× (0.04), random 4× and 8× (the same
centres), Poisson disc 8× with a 20 × 20 calibration square; seeded per volume.

Every model gets the ACS coil maps of the data pipeline. CS's λ and its coil maps (its own ESPIRiT
calibration or the pipeline's ACS maps) and SENSE's Tikhonov weight and iterations are chosen per
mask on a separate validation set of the simulator (never on the test images), by the PSNR inside
the head.

Figures per set × mask × model: SSIM and PSNR on the full image (fastMRI's per-volume definition)
and inside a head mask, NMSE, lesions kept (contrast within 10 % of the reference and CNR ≥ 1,
:mod:`mrirecon.evaluation.lesion`; the JSON lists each lesion not kept, with its size, reference CNR
and P), the mean contrast kept, and seconds per slice. Prints tables,
writes ``benchmarks/results/quality.json`` and ``quality.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import RESULTS, machine_info, write_json
from benchmarks.quality_report import MASKS, RUN_KEYS, MaskSpec, combine, markdown, merge, print_tables
from mrirecon.data.realistic import RealisticOptions
from mrirecon.data.transforms import ReconTransform
from mrirecon.data.volume import open_volume
from mrirecon.evaluation.lesion import LesionMeasure, measure_lesions, tally
from mrirecon.evaluation.metrics import head_mask, masked_metrics, volume_metrics
from mrirecon.models.base import Reconstructor
from mrirecon.models.registry import build_model_from_mapping
from mrirecon.runtime import configure_threads
from mrirecon.shapes import center_crop

CS_LAMBDAS = (0.002, 0.005, 0.01)
CS_MAPS = ("espirit", "given")
BASELINE_LABELS = ("CS", "SENSE", "zero-filled")
SENSE_SETTINGS = ((10, 0.0), (10, 0.01), (30, 0.01), (30, 0.05))
TEST_OPTIONS = RealisticOptions(
    rows=(192, 256), coils=(8, 16), lesion_probability=1.0, lesion_count=(3, 6), lesion_radius_mm=(2.0, 5.0)
)


@dataclass
class Volume:
    """One test volume, loaded once: its path, reference, lesion labels and head mask."""

    path: Path
    target: np.ndarray
    labels: np.ndarray | None
    head: np.ndarray


def ensure_sets(folder: Path, quick: bool) -> dict[str, Path]:
    """Simulate the test and validation sets into ``folder`` unless they are there."""
    from mrirecon.data.realistic_dataset import simulate_realistic_dataset

    size = "quick" if quick else "full"
    plans = {
        "simulated": ("mni", 2 if quick else 6, 2, 9001),
        "validation": ("mni", 2 if quick else 3, 2, 9002),
        "real": ("dipy", 1 if quick else 8, 1, 0),
    }
    out = {}
    for name, (anatomy, volumes, slices, seed) in plans.items():
        target = folder / f"{name}_{size}"
        if not (target / "manifest.csv").is_file():
            print(f"simulating the {name} set into {target} ...", flush=True)
            simulate_realistic_dataset(
                target,
                anatomy=anatomy,
                volumes=volumes,
                slices=slices,
                seed=seed,
                options=TEST_OPTIONS,
                split=(0.0, 0.0, 1.0),
                progress=False,
            )
        out[name] = target
    return out


def _required(array: np.ndarray | None) -> np.ndarray:
    if array is None:
        raise ValueError("the benchmark sets are fully sampled: every slice has a reference")
    return array


def load_volumes(folder: Path) -> list[Volume]:
    """Every volume of a set with its reference, lesion labels and head mask."""
    volumes = []
    for path in sorted(folder.glob("*.h5")):
        with open_volume(path) as vol:
            target = np.stack([_required(vol.read_target(s)) for s in range(vol.num_slices)]).astype(
                np.float32
            )
            labels = [vol.read_lesion_labels(s) for s in range(vol.num_slices)]
        stacked = None if any(x is None for x in labels) else np.stack([x for x in labels if x is not None])
        volumes.append(Volume(path, target, stacked, head_mask(target)))
    return volumes


def reconstruct(model: Reconstructor, volume: Volume, mask: MaskSpec) -> tuple[np.ndarray, float]:
    """The magnitude reconstruction ``(S, h, w)`` of a volume under a mask, and seconds per slice."""
    transform = ReconTransform(mask.function(), deterministic_mask=True, coil_maps="acs")
    slices, seconds = [], []
    with open_volume(volume.path) as vol:
        for s in range(vol.num_slices):
            sample = transform(vol, s)
            start = time.perf_counter()
            with torch.no_grad():
                image = model(sample.masked_kspace[None], sample.mask[None], sample.coil_maps[None]).image[0]
            seconds.append(time.perf_counter() - start)
            slices.append(center_crop((image.abs() * sample.scale).numpy(), sample.crop_size))
    return np.stack(slices).astype(np.float32), statistics.mean(seconds)


def score(volumes: Sequence[Volume], model: Reconstructor, mask: MaskSpec) -> dict[str, Any]:
    """Mean figures over a set's volumes for one model and mask."""
    rows: list[dict[str, float]] = []
    kept = total = hidden = 0
    preservation: list[float] = []
    lost: list[dict[str, Any]] = []
    seconds = []
    for volume in volumes:
        recon, per_slice = reconstruct(model, volume, mask)
        seconds.append(per_slice)
        full = volume_metrics(volume.target, recon)
        head = masked_metrics(volume.target, recon, volume.head)
        rows.append(
            {
                "ssim": full["ssim"],
                "psnr": full["psnr"],
                "nmse": full["nmse"],
                "head_ssim": head["ssim"],
                "head_psnr": head["psnr"],
            }
        )
        if volume.labels is not None:
            measures = measure_lesions(volume.target, recon, volume.labels)
            counts = tally(measures)
            kept, total, hidden = kept + counts.kept, total + counts.judged, hidden + counts.not_visible
            for m in measures:
                if not m.visible:
                    continue
                if np.isfinite(m.preservation):
                    preservation.append(float(m.preservation))
                if not m.preserved:
                    lost.append(lost_lesion(volume, m))
    out: dict[str, Any] = {key: statistics.mean(r[key] for r in rows) for key in rows[0]}
    out.update(
        lesions_kept=kept,
        lesions=total,
        lesions_not_visible=hidden,
        contrast_kept=statistics.mean(preservation) if preservation else float("nan"),
        seconds_per_slice=statistics.mean(seconds),
        lost_lesions=lost,
    )
    return out


def lost_lesion(volume: Volume, measure: LesionMeasure) -> dict[str, Any]:
    """What the JSON records of a lesion that was not kept: where it is, its size, its reference
    CNR, and P and CNR in the reconstruction."""
    return {
        "volume": volume.path.stem,
        "lesion": measure.lesion,
        "pixels": measure.pixels,
        "reference_contrast": round(measure.reference.contrast, 4),
        "reference_cnr": round(measure.reference.cnr, 3),
        "preservation": round(measure.preservation, 4),
        "cnr": round(measure.reconstruction.cnr, 3),
    }


def tune(
    volumes: Sequence[Volume], candidates: Sequence[tuple[str, dict[str, Any]]], mask: MaskSpec, name: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The candidate config with the best mean head PSNR on the validation volumes."""
    trials = []
    for label, config in candidates:
        figures = score(volumes, build_model_from_mapping(name, config), mask)
        trials.append({"setting": label, "config": config, "head_psnr": figures["head_psnr"]})
        print(f"  tune {name} {mask.label}: {label} head PSNR {figures['head_psnr']:.2f} dB", flush=True)
    best = max(trials, key=lambda t: t["head_psnr"])
    return best["config"], trials


def tune_cs(
    volumes: Sequence[Volume], mask: MaskSpec, iterations: int, lambdas: Sequence[float]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """CS's coil maps (its own ESPIRiT or the pipeline's) at the middle λ, then λ with the better
    maps: the best of these trials by head PSNR on the validation volumes."""
    middle = lambdas[len(lambdas) // 2]

    def trials_of(settings: Sequence[tuple[float, str]]) -> list[dict[str, Any]]:
        candidates = [
            (
                f"lambda {lam:g}, {maps} maps",
                {"regularization": lam, "iterations": iterations, "coil_maps": maps},
            )
            for lam, maps in settings
        ]
        return tune(volumes, candidates, mask, "cs_l1wavelet")[1] if candidates else []

    trials = trials_of([(middle, maps) for maps in CS_MAPS])
    best_maps = max(trials, key=lambda t: t["head_psnr"])["config"]["coil_maps"]
    trials += trials_of([(lam, best_maps) for lam in lambdas if lam != middle])
    return max(trials, key=lambda t: t["head_psnr"])["config"], trials


def _prior_baselines(args: argparse.Namespace) -> dict[str, Any]:
    """The results of earlier runs (``--baselines``, each with some of the masks) on the same sets,
    combined: their tuning and figures, of which the baselines' are reused; empty without any."""
    runs = {path: json.loads(Path(path).read_text()) for path in args.baselines}
    for path, prior in runs.items():
        before = prior.get("args", {})
        for key in RUN_KEYS:
            if before.get(key) != getattr(args, key):
                raise SystemExit(
                    f"--baselines {path} was run with {key}={before.get(key)!r}, this run with "
                    f"{getattr(args, key)!r}: its figures do not apply"
                )
    return combine(runs.values())


def _label_and_source(spec: str) -> tuple[str, str]:
    """``LABEL=CHECKPOINT`` → both; a checkpoint path → its stem and itself; a pretrained name →
    itself twice."""
    label, _, source = spec.partition("=")
    if not source:
        label, source = Path(spec).stem if Path(spec).suffix else spec, spec
    return label, source


def learned_models(specs: Sequence[str]) -> list[tuple[str, Reconstructor]]:
    """``LABEL=CHECKPOINT``, a checkpoint path, or a shipped pretrained name."""
    from mrirecon.inference.loading import load_reconstructor

    out = []
    for spec in specs:
        label, source = _label_and_source(spec)
        loaded = load_reconstructor(source)
        out.append((label, loaded.model.eval()))
    return out


def model_records(specs: Sequence[str], learned: Sequence[tuple[str, torch.nn.Module]]) -> dict[str, Any]:
    """Label → the spec it was loaded from and the sha256 of its weights (what was scored)."""
    from mrirecon.models.io import weights_sha256

    return {
        label: {"source": _label_and_source(spec)[1], "weights_sha256": weights_sha256(model)}
        for spec, (label, model) in zip(specs, learned)
    }


def figure(
    volume: Volume,
    masks: Sequence[MaskSpec],
    models_for: Callable[[MaskSpec], list[tuple[str, Reconstructor]]],
    path: Path,
) -> None:
    """One volume's first slice under every mask, for every model, with error maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = volume.target[0]
    vmax = float(np.percentile(reference, 99.5))
    columns = len(models_for(masks[0])) + 1
    fig, axes = plt.subplots(
        2 * len(masks), columns, figsize=(2.2 * columns, 4.4 * len(masks)), squeeze=False
    )
    for row, mask in enumerate(masks):
        axes[2 * row, 0].imshow(reference, cmap="gray", vmin=0, vmax=vmax)
        axes[2 * row, 0].set_title(f"reference\n{mask.label}", fontsize=8)
        axes[2 * row + 1, 0].axis("off")
        for col, (label, model) in enumerate(models_for(mask), start=1):
            recon = reconstruct(model, volume, mask)[0][0]
            head = masked_metrics(volume.target[:1], recon[None], volume.head[:1])
            axes[2 * row, col].imshow(recon, cmap="gray", vmin=0, vmax=vmax)
            axes[2 * row, col].set_title(
                f"{label}\n{head['psnr']:.1f} dB, SSIM {head['ssim']:.3f}", fontsize=8
            )
            axes[2 * row + 1, col].imshow(np.abs(recon - reference), cmap="magma", vmin=0, vmax=0.2 * vmax)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{volume.path.stem}: reconstructions (head PSNR, SSIM) and |error| ×5", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict[str, Any]:
    configure_threads(args.threads)
    folder = Path(args.data_dir)
    paths = ensure_sets(folder, args.quick)
    sets = {name: load_volumes(paths[name]) for name in ("simulated", "real")}
    validation = [] if args.models_only else load_volumes(paths["validation"])  # for tuning only
    learned = learned_models(args.model)
    masks: tuple[MaskSpec, ...] = MASKS[:2] if args.quick else MASKS
    if args.masks:
        wanted = [label.strip() for label in args.masks.split(",")]
        unknown = [label for label in wanted if label not in {m.label for m in MASKS}]
        if unknown:
            raise SystemExit(f"unknown masks {unknown}; the columns are {', '.join(m.label for m in MASKS)}")
        masks = tuple(m for m in masks if m.label in wanted)
    cs_lambdas = CS_LAMBDAS[1:2] if args.quick else CS_LAMBDAS
    results: dict[str, Any] = {"sets": {}, "tuning": {}, "models": model_records(args.model, learned)}
    prior = _prior_baselines(args)
    for mask in masks:
        baselines: list[tuple[str, Reconstructor]] = []
        if args.models_only:
            pass  # no baselines: the models' figures merge with theirs later (--merge)
        elif mask.label in prior["tuning"]:  # tuned and scored before: reuse them
            results["tuning"][mask.label] = prior["tuning"][mask.label]
            for set_name in sets:
                for label in BASELINE_LABELS:
                    figures = prior["sets"][set_name][label][mask.label]
                    results["sets"].setdefault(set_name, {}).setdefault(label, {})[mask.label] = figures
        else:
            cs_config, cs_trials = tune_cs(validation, mask, args.cs_iterations, cs_lambdas)
            sense_config, sense_trials = tune(
                validation,
                [
                    (f"{it} it, lambda {lam:g}", {"iterations": it, "regularization": lam})
                    for it, lam in SENSE_SETTINGS
                ],
                mask,
                "sense",
            )
            results["tuning"][mask.label] = {
                "cs": cs_trials,
                "sense": sense_trials,
                "chosen": [cs_config, sense_config],
            }
            baselines = [
                ("CS", build_model_from_mapping("cs_l1wavelet", cs_config)),
                ("SENSE", build_model_from_mapping("sense", sense_config)),
                ("zero-filled", build_model_from_mapping("zero_filled", {})),
            ]
        models: list[tuple[str, Reconstructor]] = [*learned, *baselines]
        for set_name, volumes in sets.items():
            for label, model in models:
                figures = score(volumes, model, mask)
                results["sets"].setdefault(set_name, {}).setdefault(label, {})[mask.label] = figures
                f = figures
                print(
                    f"{set_name:9s} {mask.label:14s} {label:14s} PSNR {f['psnr']:.2f} head "
                    f"{f['head_psnr']:.2f} dB, SSIM {f['ssim']:.4f} head {f['head_ssim']:.4f}, "
                    f"lesions {f['lesions_kept']}/{f['lesions']}, {f['seconds_per_slice']:.2f} s",
                    flush=True,
                )
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="a learned model: a pretrained name, a checkpoint, or LABEL=CHECKPOINT (repeatable)",
    )
    parser.add_argument("--data-dir", default=str(RESULTS / "quality_data"), help="where the sets are kept")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--cs-iterations", type=int, default=100, help="FISTA iterations of CS")
    parser.add_argument(
        "--masks", help="only these columns, comma-separated labels (e.g. 'random 4x,Poisson 8x')"
    )
    parser.add_argument(
        "--baselines",
        action="append",
        default=[],
        help="reuse the tuning and baseline figures of this earlier JSON (same sets): score the models only",
    )
    parser.add_argument("--quick", action="store_true", help="small sets, two masks (a smoke test)")
    parser.add_argument("--output", default=None, help="JSON path (default benchmarks/results/quality.json)")
    parser.add_argument("--no-figure", action="store_true", help="skip the comparison figure")
    parser.add_argument(
        "--models-only", action="store_true", help="score the models only: no tuning, no baselines"
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="merge earlier runs' JSONs (e.g. baselines and models run apart) into --output; runs nothing",
    )
    args = parser.parse_args(argv)
    results = merge(args.merge) if args.merge else run(args)
    device = torch.device("cpu")
    # a merge records its runs' sets and settings, which a later --baselines checks against
    run_args = {**vars(args), **results.pop("run_args", {})}
    payload = {"machine": machine_info(device), "args": run_args, **results}
    print_tables(results)
    path = write_json("quality", payload, Path(args.output) if args.output else None)
    path.with_suffix(".md").write_text(markdown(results) + "\n")
    print(f"\nwrote {path} and {path.with_suffix('.md')}")
    masks = [m for m in MASKS if m.label in results["tuning"]]
    if not args.no_figure and not masks:
        print(
            "no figure: it shows CS beside the models, and this run tuned no CS (--models-only); "
            "merge it with a baselines run (--merge) for one"
        )
    elif not args.no_figure:
        # a merge's models are those its runs scored (their recorded sources)
        specs = args.model or [
            f"{label}={record['source']}" for label, record in results.get("models", {}).items()
        ]
        learned = learned_models(specs)

        def models_for(mask: MaskSpec) -> list[tuple[str, Reconstructor]]:
            cs_config = results["tuning"][mask.label]["chosen"][0]
            return [
                *learned,
                ("CS", build_model_from_mapping("cs_l1wavelet", cs_config)),
                ("zero-filled", build_model_from_mapping("zero_filled", {})),
            ]

        real = load_volumes(ensure_sets(Path(args.data_dir), args.quick)["real"])
        volume = next((v for v in real if "t1" in v.path.name), real[0])
        png = path.with_suffix(".png")
        figure(volume, masks, models_for, png)
        print(f"wrote {png}")


if __name__ == "__main__":
    main()
