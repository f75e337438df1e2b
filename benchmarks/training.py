"""Training speed and memory: seconds per training step and peak memory, per model, with and without
gradient checkpointing.

Each measurement runs in a fresh subprocess (so its peak resident set size is its own): it builds
the model at its paper configuration (the registry defaults: CIRIM 5 cascades × 8 IndRNN steps
× 64 channels; RIM 8 GRU steps × 64 channels; RecurrentVarNet 8 steps × 4 conv-GRU layers × 128
channels with the learned initialiser), one multi-coil slice of random k-space with a 4× line mask,
the model's multi-step loss (L1 + SSIM), Adam, and times whole steps (forward, loss, backward,
optimiser step) after a warm-up step.

    python -m benchmarks.training                 # CPU, 12 coils × 128 × 128
    python -m benchmarks.training --device cuda --height 218 --width 170
    python -m benchmarks.training --device cuda --precision bf16-mixed   # CNNs under bf16 autocast
    python -m benchmarks.training --quick         # tiny models, for the test suite

Prints a Markdown table and writes benchmarks/results/training.json (or ``--output``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mrirecon.training.losses import Weighting

MODELS = ("cirim", "rim", "recurrentvarnet")

#: Loss weighting over steps per model (CIRIM: ATOMMIC's logspace; RIM: uniform; RVN: final only).
WEIGHTING: dict[str, tuple[Weighting, Weighting]] = {
    "cirim": ("logspace", "logspace"),
    "rim": ("uniform", "uniform"),
    "recurrentvarnet": ("final", "final"),
}

#: Tiny versions for --quick (the test suite checks the benchmark runs, not its figures).
QUICK_PARAMS: dict[str, dict[str, Any]] = {
    "cirim": {"cascades": 2, "time_steps": 2, "channels": 4},
    "rim": {"time_steps": 2, "channels": 4},
    "recurrentvarnet": {
        "steps": 2,
        "hidden_channels": 4,
        "layers": 2,
        "initializer_channels": [4, 4, 4, 4],
    },
}


def _worker(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this process; returns the figures."""
    import torch

    from benchmarks.common import peak_rss_bytes, sync
    from mrirecon.models.registry import build_model_from_mapping, parameter_count
    from mrirecon.physics import fft2c, ifft2c, normalize_coil_maps, rss
    from mrirecon.runtime import configure_threads, tune_allocator
    from mrirecon.training.losses import ReconLoss

    tune_allocator()
    configure_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    params = QUICK_PARAMS[args.model] if args.quick else {}
    model = build_model_from_mapping(args.model, params).to(device).train()
    model.set_gradient_checkpointing(args.checkpointing)
    time_w, cascade_w = WEIGHTING[args.model]
    criterion = ReconLoss({"l1": 1.0, "ssim": 1.0}, time_w, cascade_w)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    c, h, w = args.coils, args.height, args.width
    maps = normalize_coil_maps(torch.randn(1, c, h, w, dtype=torch.complex64, device=device))
    image = torch.randn(1, h, w, dtype=torch.complex64, device=device)
    kspace = fft2c(maps * image[:, None])
    mask = torch.zeros(1, 1, 1, w, device=device)
    mask[..., ::4] = 1
    mask[..., w // 2 - max(w // 25, 1) : w // 2 + max(w // 25, 1)] = 1
    masked = kspace * mask
    scale = float(rss(ifft2c(masked)).max())
    masked = masked / scale
    target = (image.abs() / scale).float()
    data_range = target.flatten(1).amax(1)
    rss_before = peak_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    half = args.precision == "bf16-mixed"

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        # as training does: the CNNs under autocast, the loss in float32 outside it
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=half):
            output = model(masked, mask, maps)
        loss = criterion(output.steps, target, data_range)
        loss.backward()
        optimizer.step()

    times = []
    for i in range(args.warmup + args.steps):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    result: dict[str, Any] = {
        "model": args.model,
        "checkpointing": bool(args.checkpointing),
        "precision": args.precision,
        "threads": torch.get_num_threads(),  # the worker's (the parent never sets --threads)
        "parameters": parameter_count(model),
        "seconds_per_step": statistics.median(times),
        "steps_timed": len(times),
        "peak_rss_mb": peak_rss_bytes() / 2**20,
        "rss_before_first_step_mb": rss_before / 2**20,
    }
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def _measure(args: argparse.Namespace, model: str, checkpointing: bool) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.training",
        "--worker",
        "--model",
        model,
        "--device",
        args.device,
        "--coils",
        str(args.coils),
        "--height",
        str(args.height),
        "--width",
        str(args.width),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--precision",
        args.precision,
    ]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    if checkpointing:
        command.append("--checkpointing")
    if args.quick:
        command.append("--quick")
    run = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if run.returncode != 0:
        tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
        return {"model": model, "checkpointing": checkpointing, "error": " | ".join(tail)}
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--coils", type=int, default=12)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--precision",
        choices=("32", "bf16-mixed"),
        default="32",
        help="bf16-mixed: the CNNs under bfloat16 autocast, as trainer.precision=bf16-mixed trains",
    )
    parser.add_argument("--quick", action="store_true", help="tiny models and slice (a smoke test)")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default benchmarks/results/)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.coils, args.height, args.width, args.steps, args.warmup = 2, 24, 24, 1, 1
    if args.worker:
        print(json.dumps(_worker(args)))
        return 0

    import torch

    from benchmarks.common import machine_info, print_table, write_json

    rows = []
    results: list[dict[str, Any]] = []
    device = torch.device(args.device)

    def payload(complete: bool) -> dict[str, Any]:
        machine = machine_info(device)
        # the steps ran in workers with --threads (the parent's own count says nothing of them)
        measured = {r["threads"] for r in results if "threads" in r}
        machine["threads"] = measured.pop() if len(measured) == 1 else sorted(measured) or args.threads
        return {
            "machine": machine,
            "slice": {"coils": args.coils, "height": args.height, "width": args.width},
            "precision": args.precision,
            "quick": args.quick,
            "complete": complete,
            "results": results,
        }

    for model in args.models:
        for checkpointing in (False, True):
            result = _measure(args, model, checkpointing)
            results.append(result)
            write_json("training", payload(False), args.output)  # a run stopped early keeps its rows
            switch = "on" if checkpointing else "off"
            if "error" in result:
                rows.append([model, switch, "-", "-", "-", result["error"][:60]])
            else:
                memory = result.get("peak_gpu_mb", result["peak_rss_mb"])
                rows.append([model, switch, result["parameters"], result["seconds_per_step"], memory, ""])
            print(" | ".join(str(cell) for cell in rows[-1]), flush=True)
    memory = "peak GPU MB" if args.device.startswith("cuda") else "peak RSS MB"
    print(
        f"\nTraining step, {args.coils} coils × {args.height} × {args.width}, batch 1, {args.device}, "
        f"precision {args.precision}" + (" (quick: tiny models)" if args.quick else " (paper configs)")
    )
    print_table(["model", "checkpointing", "parameters", "s/step", memory, "note"], rows)
    path = write_json("training", payload(True), args.output)
    print(f"\nwrote {path}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
