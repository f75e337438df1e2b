"""Batch inference end to end against the model's compute alone, on the same slices.

A dataset is simulated (``mrirecon.data.simulate.simulate_dataset``), then

- **compute only**: every slice is prepared beforehand (read, undersampled, coil maps) and put on
  the device; the time is the model's forward passes in batches of ``--batch-size`` (plus taking
  the magnitude back to the host, which any use of the output needs);
- **end to end**: ``mrirecon batch`` on the same files (:func:`mrirecon.inference.run_batch`):
  reading in DataLoader workers, coil maps, reconstruction, HDF5 and (with ``--dicom``, the
  default) DICOM writing; the time is the whole run (planning, worker start-up and the last write
  included).

The goal is end to end ≥ 80 % of compute only: the pipeline keeps the device busy. The model is
built from its config with random weights (the speed does not depend on the values). The two
measurements alternate ``--repeats`` times and the best of each counts; figures on a shared
machine are still provisional.

    python -m benchmarks.inference [--model cirim] [--model-config FILE] [--volumes 4] [--slices 8]
        [--coils 8] [--size 128 128] [--batch-size 4] [--workers 2] [--device auto] [--no-dicom]
        [--repeats 2] [--precision 32|bf16-mixed] [--quick]

``--precision bf16-mixed`` runs both measurements with the model's convolutions under bfloat16
autocast, as ``mrirecon batch --precision bf16-mixed`` does.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import autocast, machine_info, print_table, sync, write_json
from mrirecon.inference import RunOptions, Undersampling, run_batch
from mrirecon.inference.components import make_transform
from mrirecon.inference.inputs import list_inputs, output_paths
from mrirecon.inference.loading import LoadedModel
from mrirecon.inference.options import PRECISIONS
from mrirecon.inference.plan import make_plan
from mrirecon.inference.slices import SliceItems, VolumeBatchSampler, collate_slices
from mrirecon.inference.step import forward
from mrirecon.runtime import configure_threads, tune_allocator

#: Small configs for --quick (CIRIM's paper config is 5 cascades × 8 steps × 64 channels).
QUICK_CONFIGS: dict[str, dict[str, Any]] = {
    "cirim": {"cascades": 1, "time_steps": 2, "channels": 8},
    "unet": {"chans": 8, "num_pool_layers": 2},
}


def build(name: str, config_file: Path | None, quick: bool) -> LoadedModel:
    """The model with random weights (learned models included: no checkpoint is needed to time them)."""
    from mrirecon.config import load_yaml
    from mrirecon.models.registry import build_model_from_mapping, config_mapping

    mapping: dict[str, Any] = (
        load_yaml(config_file) if config_file else dict(QUICK_CONFIGS.get(name, {}) if quick else {})
    )
    mapping.pop("model", None)
    model = build_model_from_mapping(name, mapping).eval()
    config = getattr(model, "config", None)
    return LoadedModel(name, model, config=config_mapping(config) if config is not None else {})


def compute_only(
    loaded: LoadedModel, data: Path, options: RunOptions, device: torch.device
) -> tuple[int, float]:
    """Slices and seconds of the model alone on the prepared slices of ``data``."""
    inputs = list_inputs(data)
    plan = make_plan(
        inputs,
        output_paths(inputs, options.output_dir),
        model=loaded.name,
        checkpoint_sha256="",
        undersampling=options.undersampling,
        dicom=False,
        resume=False,
    )
    transform = make_transform(mask_func=options.undersampling.mask_func(), coil_maps=options.coil_map_method)
    items = SliceItems(plan.tasks, transform)
    groups = []
    for keys in VolumeBatchSampler(items, options.batch_size):
        for group in collate_slices([items[k] for k in keys]).groups:
            groups.append((group.masked_kspace.to(device), group.mask.to(device), group.coil_maps.to(device)))
    items.close()
    model = loaded.model.to(device)
    with torch.inference_mode(), autocast(options.precision, device):
        forward(model, loaded.name, *groups[0]).abs().cpu()  # warm-up (allocations, kernels)
        sync(device)
        start = time.perf_counter()
        for kspace, mask, maps in groups:
            forward(model, loaded.name, kspace, mask, maps).abs().cpu()
        sync(device)
        seconds = time.perf_counter() - start
    return sum(g[0].shape[0] for g in groups), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="cirim")
    parser.add_argument("--model-config", type=Path)
    parser.add_argument("--volumes", type=int, default=4)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 128))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-dicom", action="store_true")
    parser.add_argument("--precision", choices=PRECISIONS, default="32")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the best counts")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and a small model (a test)")
    parser.add_argument("--work", type=Path, help="folder for the data and outputs (default: temporary)")
    parser.add_argument("--output", type=Path, help="JSON path (default benchmarks/results/inference.json)")
    args = parser.parse_args()
    if args.quick:
        args.volumes, args.slices, args.coils, args.size, args.batch_size, args.repeats = (
            2,
            2,
            4,
            (32, 32),
            2,
            1,
        )
    tune_allocator()
    configure_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)

    from mrirecon.data.simulate import simulate_dataset

    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        data = work / "data"
        simulate_dataset(
            data, volumes=args.volumes, slices=args.slices, coils=args.coils, size=tuple(args.size), seed=0,
            progress=False,
        )  # fmt: skip
        loaded = build(args.model, args.model_config, args.quick)
        options = RunOptions(
            output_dir=work / "out",
            dicom=not args.no_dicom,
            undersampling=Undersampling("equispaced_fraction", 4.0),
            batch_size=args.batch_size,
            workers=args.workers,
            device=str(device),
            precision=args.precision,
            progress=False,
            resume=False,
            overwrite=True,
        )
        import pytorch_lightning  # noqa: F401  (imported once per process: not part of a run)

        # alternate the two measurements and keep the best of each: the machine may be shared
        compute_runs, e2e_runs = [], []
        for _ in range(args.repeats):
            slices, seconds = compute_only(loaded, data, options, device)
            compute_runs.append(seconds)
            start = time.perf_counter()
            result = run_batch(loaded, data, options)
            e2e_runs.append(time.perf_counter() - start)
            assert result.ok and result.slices == slices, (result.failures, result.slices, slices)
            if e2e_runs[-1] == min(e2e_runs):
                best = result
        compute_s, e2e_s = min(compute_runs), min(e2e_runs)
    rank = best.ranks[0]
    compute_rate, e2e_rate = slices / compute_s, slices / e2e_s
    row = {
        "model": args.model,
        "device": str(device),
        "slices": slices,
        "shape": [args.coils, *args.size],
        "batch_size": args.batch_size,
        "precision": args.precision,
        "workers": args.workers,
        "dicom": not args.no_dicom,
        "compute_only_slices_per_s": compute_rate,
        "end_to_end_slices_per_s": e2e_rate,
        "ratio": e2e_rate / compute_rate,
        "end_to_end_s": e2e_s,
        "loop_s": rank.seconds,
        "loader_wait_s": rank.loader_wait_seconds,
        "model_loop_s": rank.compute_seconds,
        "writer_busy_s": rank.write_seconds,
        "compute_only_runs_s": compute_runs,
        "end_to_end_runs_s": e2e_runs,
    }
    headers = ["model", "device", "precision", "slices", "C×H×W", "batch"]
    headers += ["compute-only slices/s", "end-to-end slices/s"]
    shape = "×".join(map(str, row["shape"]))
    cells = [args.model, str(device), args.precision, slices, shape, args.batch_size, compute_rate, e2e_rate]
    print_table([*headers, "ratio"], [[*cells, f"{row['ratio']:.0%}"]])
    print(
        f"end to end {e2e_s:.1f} s: loop {rank.seconds:.1f} s (waiting for the loader "
        f"{rank.loader_wait_seconds:.1f} s, model and hand-off {rank.compute_seconds:.1f} s), "
        f"writer busy {rank.write_seconds:.1f} s"
    )
    path = write_json("inference", {"machine": machine_info(device), "results": [row]}, args.output)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
