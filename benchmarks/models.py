"""Speed, memory and arithmetic throughput of every registered model at its paper config.

For each model (every registry entry at its default config, plus the reference configurations the
issue compares with, e.g. ``rim_direct``) and each slice size (an 8-coil 218×170 brain slice and a
15-coil 320×320 knee slice; batch 1, 4× equispaced mask, random complex data), it measures

- ``inference``: seconds per slice under ``torch.inference_mode``;
- ``train``: forward + backward seconds per slice (loss on every returned step);
- ``train_ckpt``: the same with gradient checkpointing on (models that support it);

each in a fresh subprocess whose peak resident set size (``ru_maxrss``; on GPU the peak of
``torch.cuda.max_memory_allocated``) is the memory figure. Times are the median of up to three
calls after one warm-up call. The inference worker also counts the model's FLOPs
(``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix products; FFTs and
element-wise work are not counted) and runs a large-convolution microbenchmark in the same process,
so the achieved GFLOP/s can be set beside what this machine reaches on a convolution.

A SigPy L1-wavelet compressed-sensing reconstruction (100 iterations, ESPIRiT maps, the real 8-coil
230×180 slice of /work/shared/data when present) is timed the same way as the CPU yardstick the
CIRIM is compared with.

    python -m benchmarks.models [--quick] [--models rim cirim ...] [--sizes brain knee]
        [--modes inference train train_ckpt] [--threads 2] [--device cpu|cuda]
        [--allocator reuse|huge_pages] [--json PATH]

Ratios are to the reference implementations' figures in :data:`REFERENCE` (measured by the issue's
author on this kind of machine, 2 CPU threads); >1 means ours is faster or smaller.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import REAL_POISSON_BRAIN, RESULTS, machine_info, print_table, sync, write_json

#: (coils, height, width) of the benchmark slices.
SIZES = {"brain": (8, 218, 170), "knee": (15, 320, 320)}
QUICK_SIZES = {"tiny": (2, 24, 20)}
MODES = ("inference", "train", "train_ckpt")
#: Modes run on each size by default (the reference has only inference figures for the knee).
DEFAULT_MODES = {"brain": MODES, "knee": ("inference",), "tiny": MODES}

#: The reference implementations' figures (issue 4): seconds per slice and bytes.
REFERENCE: dict[str, dict[str, Any]] = {
    "recurrentvarnet": {
        "label": "DIRECT RecurrentVarNet",
        "params": 6.92e6,
        "brain/inference": 9.1,
        "brain/train": 27.5,
        "brain/train_rss": 9.4e9,
        "knee/inference": 44.0,
    },
    "rim_direct": {
        "label": "DIRECT RIM (128 ch, 16 steps)",
        "params": 0.36e6,
        "brain/inference": 7.8,
        "brain/train": 26.9,
        "brain/train_rss": 9.7e9,
        "knee/inference": 40.3,
    },
    "cirim": {
        "label": "ATOMMIC CIRIM",
        "params": 0.265e6,
        "brain/inference": 3.2,
        "brain/train": 8.7,
        "brain/train_rss": 4.0e9,
        "knee/inference": 9.4,
    },
    "rim": {
        "label": "ATOMMIC RIM (GRU)",
        "params": 0.094e6,
        "brain/inference": 1.3,
        "brain/train": 2.9,
        "brain/train_rss": 3.1e9,
        "knee/inference": 3.6,
    },
}
#: SigPy L1-wavelet CS, 100 iterations, real 8-coil 230×180 slice (issue 4): 2.2–2.9 s.
REFERENCE_CS_SECONDS = (2.2, 2.9)


@dataclass(frozen=True)
class Job:
    """One measurement, run in its own process."""

    config: str
    size: str
    coils: int
    height: int
    width: int
    mode: str
    threads: int
    device: str
    repeats: int = 3
    memory_limit_gb: float = 0.0


def _limit_memory(gigabytes: float) -> None:
    """Refuse allocations beyond ``gigabytes`` of heap (the machine is shared)."""
    if gigabytes > 0:
        limit = int(gigabytes * (1 << 30))
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def make_inputs(
    coils: int, height: int, width: int, device: torch.device, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random complex k-space under a 4× equispaced mask, and random normalised coil maps."""
    from mrirecon.masks.registry import create_mask_func
    from mrirecon.physics import normalize_coil_maps

    g = torch.Generator().manual_seed(seed)
    shape = (1, coils, height, width)
    kspace = torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g))
    maps = normalize_coil_maps(
        torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g))
    )
    mask, _ = create_mask_func("equispaced", [0.08], [4], seed=seed)(shape)
    mask = mask.reshape(1, 1, 1, width).to(torch.float32)
    return (kspace * mask).to(device), mask.to(device), maps.to(device)


def conv_microbenchmark(device: torch.device, repeats: int = 3) -> float:
    """GFLOP/s of a large 3×3 convolution (128 → 128 channels, 256×256, channels-last, float32)."""
    x = torch.randn(1, 128, 258, 258, device=device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3, device=device)
    flops = 2 * 128 * 128 * 9 * 256 * 256
    with torch.inference_mode():
        torch.nn.functional.conv2d(x, w)
        sync(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.nn.functional.conv2d(x, w)
            sync(device)
            times.append(time.perf_counter() - start)
    return flops / min(times) / 1e9


def count_flops(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """FLOPs of one inference call (convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(*inputs)
    return int(counter.get_total_flops())


def _loss(out: Any) -> torch.Tensor:
    steps = [step for cascade in out.steps for step in cascade]
    return sum((step.abs().mean() for step in steps), torch.zeros((), device=steps[0].device))


def run_job(job: Job) -> dict[str, Any]:
    """Measure one (model, size, mode) in this process; returns the row."""
    from mrirecon.models.config_files import load_model_config
    from mrirecon.models.registry import build_model, parameter_count
    from mrirecon.runtime import configure_threads, tune_allocator

    tune_allocator()
    configure_threads(job.threads)
    _limit_memory(job.memory_limit_gb)
    device = torch.device(job.device)
    # Random k-space has no coil sensitivities for ESPIRiT to find: CS uses the given (random) maps.
    overrides = ["coil_maps=given"] if job.config == "cs_l1wavelet" else []
    name, config = load_model_config(job.config, overrides)
    torch.manual_seed(0)
    model = build_model(name, config).to(device)
    inputs = make_inputs(job.coils, job.height, job.width, device)
    row: dict[str, Any] = {**asdict(job), "model": name, "parameters": parameter_count(model)}
    if job.mode != "inference" and not model.trainable:
        return {**row, "skipped": "not trainable"}
    if job.mode == "train_ckpt":
        if not model.supports_checkpointing:
            return {**row, "skipped": "no gradient checkpointing"}
        model.set_gradient_checkpointing(True)
    row["baseline_rss"] = _peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def call() -> None:
        if job.mode == "inference":
            model.eval()
            with torch.inference_mode():
                model(*inputs)
        else:
            model.train()
            model.zero_grad(set_to_none=True)
            _loss(model(*inputs)).backward()
        sync(device)

    try:
        call()  # warm-up: kernel selection, first-touch page faults
        times: list[float] = []
        cpu_times: list[float] = []
        while len(times) < job.repeats:
            start, cpu_start = time.perf_counter(), time.process_time()
            call()
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
            if sum(times) > 120:  # slow configurations: fewer calls
                break
    except RuntimeError as error:  # refused by the memory limit
        if "allocate" not in str(error):
            raise
        return {**row, "skipped": f"over the {job.memory_limit_gb:g} GB memory limit"}
    row["seconds"] = statistics.median(times)
    row["cpu_seconds"] = statistics.median(cpu_times)  # all threads: shows the load of a busy machine
    row["calls"] = len(times)
    row["peak_rss"] = _peak_rss()
    if device.type == "cuda":
        row["peak_gpu_memory"] = torch.cuda.max_memory_allocated(device)
    if job.mode == "inference":
        row["flops"] = count_flops(model.eval(), inputs)
        row["gflops_per_s"] = row["flops"] / row["seconds"] / 1e9
        row["conv_gflops_per_s"] = conv_microbenchmark(device)
    return row


def run_cs_job(threads: int) -> dict[str, Any]:
    """SigPy L1-wavelet CS, 100 iterations, ESPIRiT maps (not timed), on the real slice if present."""
    import numpy as np
    from sigpy.mri.app import EspiritCalib, L1WaveletRecon

    from mrirecon.runtime import tune_allocator

    tune_allocator()
    if REAL_POISSON_BRAIN.is_file():
        kspace = np.load(REAL_POISSON_BRAIN).astype(np.complex64)
        source = "real 8-coil 230×180 Poisson-disc slice"
    else:
        rng = np.random.default_rng(0)
        kspace = (rng.standard_normal((8, 230, 180)) + 1j * rng.standard_normal((8, 230, 180))).astype(
            np.complex64
        )
        kspace[:, :, 1::4] = 0
        source = "random 8-coil 230×180 slice (real slice absent)"
    kspace = kspace / np.abs(kspace).max()
    maps = EspiritCalib(kspace, show_pbar=False).run()
    times, cpu_times = [], []
    for _ in range(4):
        start, cpu_start = time.perf_counter(), time.process_time()
        L1WaveletRecon(kspace, maps, lamda=0.005, max_iter=100, show_pbar=False).run()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return {
        "config": "sigpy_l1wavelet_cs",
        "size": "cs_230x180",
        "mode": "inference",
        "threads": threads,
        "source": source,
        "seconds": statistics.median(times[1:]),
        "cpu_seconds": statistics.median(cpu_times[1:]),
        "calls": 3,
        "peak_rss": _peak_rss(),
    }


#: Allocator profiles of the worker processes (set through the environment before torch starts).
#: ``reuse``: the project's default, :func:`mrirecon.runtime.tune_allocator` (freed heap memory is
#: kept and reused: no page faults, but the heap fragments). ``huge_pages``: every tensor of 1 MiB or
#: more gets its own mapping, 2 MiB-aligned and backed by transparent huge pages (PyTorch's
#: ``THP_MEM_ALLOC_ENABLE``): no fragmentation (RSS = live memory), few page faults.
ALLOCATORS = {
    "reuse": {},
    "huge_pages": {
        "MRIRECON_NO_MALLOC_TUNING": "1",
        "THP_MEM_ALLOC_ENABLE": "1",
        "MALLOC_MMAP_THRESHOLD_": str(1 << 20),
    },
}


def spawn(payload: dict[str, Any], threads: int, timeout: float, allocator: str = "reuse") -> dict[str, Any]:
    """Run one job in a fresh interpreter and return its row."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        **ALLOCATORS[allocator],
    }
    env.setdefault("NUMBA_NUM_THREADS", str(threads))
    command = [sys.executable, "-m", "benchmarks.models", "--worker", json.dumps(payload)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**payload, "skipped": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**payload, "skipped": f"worker failed (exit {done.returncode}): {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    result["allocator"] = allocator
    return result


def idle_fraction(window: float = 1.0) -> float:
    """Fraction of the machine's CPU time that was idle over ``window`` seconds (Linux ``/proc/stat``)."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    try:
        idle0, total0 = sample()
        time.sleep(window)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return 1.0
    return (idle1 - idle0) / max(total1 - total0, 1)


def measure(payload: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Run a job, on a shared machine waiting for idle CPUs and repeating contended runs.

    A CPU run is *contended* when its process got less than 80 % of its threads' time (CPU time /
    wall time); then it is run again, up to ``--retries`` times, and the least contended run kept.
    """
    best: dict[str, Any] | None = None
    for _ in range(1 + max(args.retries, 0)):
        waited = 0.0
        idle = idle_fraction()
        while args.wait_idle and idle < 0.9 and waited < args.max_wait:
            time.sleep(5)
            waited += 6
            idle = idle_fraction()
        row = spawn(payload, args.threads, args.timeout, args.allocator)
        row["idle_before"] = round(idle, 3)
        if (
            row.get("seconds")
            and row.get("cpu_seconds") is not None
            and args.device == "cpu"
            and not payload.get("cs")
        ):
            row["cores"] = row["cpu_seconds"] / row["seconds"]
            row["contended"] = row["cores"] < 0.8 * args.threads
        if best is None or row.get("cores", 0) > best.get("cores", 0):
            best = row
        if not best.get("contended"):
            break
    assert best is not None
    return best


def default_configs() -> list[str]:
    """Every registered model, plus the reference configurations that are not registry defaults."""
    from mrirecon.models.registry import model_names

    names = model_names()
    return names + [config for config in REFERENCE if config not in names]


def ratio(reference: float | None, ours: float | None) -> str:
    if not reference or not ours:
        return ""
    return f"{reference / ours:.2f}×"


def table(rows: list[dict[str, Any]]) -> list[list[object]]:
    """Rows of the printed table (ratios: reference / ours, >1 is better)."""
    out = []
    for row in rows:
        ref = REFERENCE.get(row["config"], {})
        key = f"{row['size']}/{row['mode'].replace('_ckpt', '')}"
        seconds = row.get("seconds")
        rss = row.get("peak_rss")
        ref_rss = ref.get(f"{row['size']}/train_rss") if row["mode"] != "inference" else None
        cs = row["config"] == "sigpy_l1wavelet_cs"
        out.append(
            [
                row["config"],
                f"{row.get('parameters', 0):,}" if not cs else "–",
                row["size"],
                row["mode"],
                f"{seconds:.3f}" if seconds else row.get("skipped", ""),
                f"{rss / 1e9:.2f}" if rss else "",
                f"{row['gflops_per_s']:.1f}" if "gflops_per_s" in row else "",
                f"{row['conv_gflops_per_s']:.0f}" if "conv_gflops_per_s" in row else "",
                f"{ref[key]:g}" if key in ref else ("2.2–2.9" if cs else ""),
                ratio(ref.get(key), seconds) if not cs else ratio(REFERENCE_CS_SECONDS[0], seconds),
                ratio(ref_rss, rss),
                f"{row['cores']:.2f}" + ("*" if row.get("contended") else "") if "cores" in row else "",
            ]
        )
    return out


HEADERS = [
    "config",
    "params",
    "size",
    "mode",
    "s/slice",
    "peak RSS GB",
    "GFLOP/s",
    "conv GFLOP/s",
    "ref s",
    "time ratio",
    "RSS ratio",
    "cores",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="Tiny slices (checks that everything runs).")
    parser.add_argument("--models", nargs="+", help="Registry or config names (default: all + references).")
    parser.add_argument("--sizes", nargs="+", choices=[*SIZES, *QUICK_SIZES], help="Slice sizes.")
    parser.add_argument("--modes", nargs="+", choices=MODES, help="Modes (default: per size).")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2).")
    parser.add_argument("--device", default="cpu", help="cpu or cuda.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed calls (median).")
    parser.add_argument(
        "--memory-limit-gb", type=float, default=12.0, help="Heap limit per worker (0: none)."
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="Seconds per worker.")
    parser.add_argument("--no-cs", action="store_true", help="Skip the SigPy compressed-sensing yardstick.")
    parser.add_argument(
        "--allocator", choices=list(ALLOCATORS), default="reuse", help="Allocator profile of the workers."
    )
    parser.add_argument("--wait-idle", action="store_true", help="Wait for idle CPUs before each run.")
    parser.add_argument("--max-wait", type=float, default=600.0, help="Seconds to wait for idle CPUs.")
    parser.add_argument("--retries", type=int, default=0, help="Repeat a contended CPU run this many times.")
    parser.add_argument("--json", type=Path, help="Output JSON (default benchmarks/results/models.json).")
    args = parser.parse_args(argv)

    if args.worker:
        payload = json.loads(args.worker)
        result = run_cs_job(payload["threads"]) if payload.get("cs") else run_job(Job(**payload))
        print(json.dumps(result))
        return 0

    sizes = args.sizes or (list(QUICK_SIZES) if args.quick else list(SIZES))
    configs = args.models or default_configs()
    rows: list[dict[str, Any]] = []
    jobs = []
    for size in sizes:
        coils, height, width = {**SIZES, **QUICK_SIZES}[size]
        for config in configs:
            for mode in args.modes or DEFAULT_MODES[size]:
                jobs.append(
                    Job(
                        config,
                        size,
                        coils,
                        height,
                        width,
                        mode,
                        args.threads,
                        args.device,
                        1 if args.quick else args.repeats,
                        args.memory_limit_gb,
                    )
                )
    for index, job in enumerate(jobs, 1):
        print(f"[{index}/{len(jobs)}] {job.config} {job.size} {job.mode} ...", file=sys.stderr, flush=True)
        rows.append(measure(asdict(job), args))
    if not args.no_cs and not args.quick and args.device == "cpu":
        print("[cs] SigPy L1-wavelet, 100 iterations ...", file=sys.stderr, flush=True)
        cs_job = {
            "cs": True,
            "threads": args.threads,
            "config": "sigpy_l1wavelet_cs",
            "size": "cs_230x180",
            "mode": "inference",
        }
        rows.append(measure(cs_job, args))

    print_table(HEADERS, table(rows))
    payload = {
        "benchmark": "models",
        "machine": machine_info(torch.device(args.device)),
        "threads": args.threads,
        "reference": REFERENCE,
        "reference_cs_seconds": REFERENCE_CS_SECONDS,
        "allocator": args.allocator,
        "rows": rows,
    }
    path = write_json(
        "models", payload, args.json or (RESULTS / ("models_quick.json" if args.quick else "models.json"))
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
