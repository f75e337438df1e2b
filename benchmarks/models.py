"""Speed, memory and arithmetic throughput of the models, and the same-run comparison with the references.

For each model (every registry entry at its default config, or the configs given) and each slice
size (an 8-coil 218×170 brain slice and a 15-coil 320×320 knee slice; batch 1, 4× equispaced mask,
random complex data), it measures

- ``inference``: seconds per slice under ``torch.no_grad`` (both sides of a comparison);
- ``train``: forward + backward seconds per slice (loss on every returned step);
- ``train_ckpt``: the same with gradient checkpointing on (models that support it);

each in a fresh subprocess whose peak resident set size (``ru_maxrss``; on GPU the peak of
``torch.cuda.max_memory_allocated``) is the memory figure. Times are the median of up to three
calls after one warm-up call. The inference worker also counts the model's FLOPs
(``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix products; FFTs and
element-wise work are not counted) and runs a large-convolution microbenchmark in the same process,
so the achieved GFLOP/s can be set beside what this machine reaches on a convolution. SigPy
L1-wavelet compressed sensing (100 iterations, ESPIRiT maps) and the pretrained ``cirim-brain`` are
timed on the same real 8-coil 230×180 slice of /work/shared/data (when present).

``--peers DIR`` adds the reference implementations (DIRECT's RecurrentVarNet and RIM, ATOMMIC's
CIRIM and RIM; :mod:`benchmarks.peers`) built from exported source trees under ``DIR``, timed
alternately with mrirecon's configuration of equal parameter count in the same run, under each
allocator profile of ``--allocators`` (default: glibc untouched, then tuned, on both sides). Only
then are ratios printed; the JSON records each ratio against the goals of :data:`peers.GOALS`.
Without ``--peers`` no ratio is measured and none is printed. ``--precision bf16-mixed`` runs every
model's forward pass (both sides) under bfloat16 autocast; the training loss stays float32.

    python -m benchmarks.models [--quick] [--models rim cirim ...] [--sizes brain knee]
        [--modes inference train train_ckpt] [--threads 2] [--device cpu|cuda]
        [--precision 32|bf16-mixed] [--allocators untouched tuned] [--peers DIR]
        [--docs docs/benchmarks.md] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import torch

from benchmarks import peers
from benchmarks.common import (
    RESULTS,
    machine_info,
    print_table,
    write_json,
)
from benchmarks.model_worker import Job, run_job, run_real_slice_job
from mrirecon.inference.options import PRECISIONS

#: (coils, height, width) of the benchmark slices.
SIZES = {"brain": (8, 218, 170), "knee": (15, 320, 320)}
#: Sizes timed only when asked for (--sizes): the full fastMRI knee matrix, for GPU inference.
EXTRA_SIZES = {"knee_full": (15, 640, 368)}
QUICK_SIZES = {"tiny": (2, 24, 20)}
ALL_SIZES = {**SIZES, **EXTRA_SIZES, **QUICK_SIZES}
MODES = ("inference", "train", "train_ckpt")
#: Modes run on each size by default.
DEFAULT_MODES = {"brain": MODES, "knee": ("inference",), "knee_full": ("inference",), "tiny": MODES}
#: Allocator profiles of the worker processes, set through the environment before the interpreter
#: starts, the same for mrirecon and the references. ``untouched``: glibc's defaults.
#: ``tuned``: freed heap memory is kept and reused (no ``mmap``, no trimming: few page faults, but
#: the heap fragments) — what :func:`mrirecon.runtime.tune_allocator` sets for mrirecon's own
#: commands. ``huge_pages``: every tensor of 1 MiB or more gets its own mapping backed by transparent
#: huge pages (PyTorch's ``THP_MEM_ALLOC_ENABLE``): RSS = live memory, few page faults.
ALLOCATORS = {
    "untouched": {"MRIRECON_NO_MALLOC_TUNING": "1"},
    "tuned": {
        "MRIRECON_NO_MALLOC_TUNING": "1",
        "MALLOC_MMAP_MAX_": "0",
        "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1),
        "MALLOC_TOP_PAD_": str(64 << 20),
    },
    "huge_pages": {
        "MRIRECON_NO_MALLOC_TUNING": "1",
        "THP_MEM_ALLOC_ENABLE": "1",
        "MALLOC_MMAP_THRESHOLD_": str(1 << 20),
    },
}


def spawn(payload: dict[str, Any], threads: int, timeout: float, allocator: str = "tuned") -> dict[str, Any]:
    """Run one job in a fresh interpreter and return its row."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), **ALLOCATORS[allocator]})
    env.setdefault("NUMBA_NUM_THREADS", str(threads))
    command = [sys.executable, "-m", "benchmarks.models", "--worker", json.dumps(payload)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**payload, "allocator": allocator, "skipped": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {
            **payload,
            "allocator": allocator,
            "skipped": f"worker failed (exit {done.returncode}): {tail}",
        }
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


def measure(payload: dict[str, Any], args: argparse.Namespace, allocator: str) -> dict[str, Any]:
    """Run a job, on a shared machine waiting for idle CPUs and repeating contended runs.

    A CPU run is *contended* when its process got less than 80 % of its threads' time (CPU time /
    wall time); then it is run again, up to ``--retries`` times, and the least contended run kept.
    """
    best: dict[str, Any] | None = None
    on_cpu = args.device == "cpu"  # a GPU run neither waits for idle CPUs nor spends a second probing
    for _ in range(1 + max(args.retries, 0)):
        waited = 0.0
        idle = idle_fraction() if on_cpu else 1.0
        while on_cpu and args.wait_idle and idle < 0.9 and waited < args.max_wait:
            time.sleep(5)
            waited += 6
            idle = idle_fraction()
        row = spawn(payload, args.threads, args.timeout, allocator)
        row["idle_before"] = round(idle, 3)
        single_threaded = payload.get("real_slice") == "cs"  # SigPy runs CS on one core
        if row.get("seconds") and row.get("cpu_seconds") is not None and args.device == "cpu":
            row["cores"] = row["cpu_seconds"] / row["seconds"]
            row["contended"] = row["cores"] < 0.8 * (1 if single_threaded else args.threads)
        if best is None or row.get("cores", 0) > best.get("cores", 0):
            best = row
        if not best.get("contended"):
            break
    assert best is not None
    return best


def _jobs(args: argparse.Namespace) -> list[Job]:
    """The run's measurements, in the order they are taken (a reference right before its pair)."""
    sizes = args.sizes or (list(QUICK_SIZES) if args.quick else list(SIZES))
    pairs = {pair.config: pair for pair in peers.PAIRS} if args.peers else {}
    if args.models:
        configs = args.models
    elif args.peers:
        configs = list(pairs)
    else:
        from mrirecon.models.registry import model_names

        configs = model_names()
    common: dict[str, Any] = {"threads": args.threads, "device": args.device, "precision": args.precision}
    common.update(memory_limit_gb=args.memory_limit_gb, repeats=1 if args.quick else args.repeats)
    jobs = []
    for size in sizes:
        coils, height, width = ALL_SIZES[size]
        modes = args.modes or (MODES if args.peers else DEFAULT_MODES[size])
        for config in configs:
            pair = pairs.get(config)
            for mode in modes:
                if pair is not None and mode != "train_ckpt":
                    reference = Job(f"peer:{pair.peer}", size, coils, height, width, mode, **common)
                    jobs.append(replace(reference, peer=pair.peer, peers_dir=str(args.peers)))
                loss = pair.loss if pair is not None else "all"
                jobs.append(Job(config, size, coils, height, width, mode, **common, loss=loss))
    excluded = args.exclude or []
    return [
        job for job in jobs if not any(fnmatch(f"{job.config}:{job.size}:{job.mode}", p) for p in excluded)
    ]


def table(rows: list[dict[str, Any]]) -> list[list[object]]:
    """Rows of the printed table of every measurement."""
    out = []
    for row in rows:
        seconds = row.get("seconds")
        rss = row.get("peak_gpu_memory", row.get("peak_rss"))  # on a GPU, its memory
        params = row.get("parameters")
        out.append(
            [
                row["config"],
                row.get("allocator", ""),
                f"{params:,}" if params else "–",
                row["size"],
                row["mode"],
                f"{seconds:.3f}" if seconds else row.get("skipped", ""),
                f"{rss / 1e9:.2f}" if rss else "",
                f"{row['gflops_per_s']:.1f}" if "gflops_per_s" in row else "",
                f"{row['conv_gflops_per_s']:.0f}" if "conv_gflops_per_s" in row else "",
                f"{row['cores']:.2f}" + ("*" if row.get("contended") else "") if "cores" in row else "",
            ]
        )
    return out


HEADERS = [
    "config",
    "allocator",
    "params",
    "size",
    "mode",
    "s/slice",
    "peak GB (RSS; GPU: allocated)",
    "GFLOP/s",
    "conv GFLOP/s",
    "cores",
]


def build_parser() -> argparse.ArgumentParser:
    """The command line of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="Tiny slices (checks that everything runs).")
    parser.add_argument("--models", nargs="+", help="Config names (default: every registered model).")
    parser.add_argument("--sizes", nargs="+", choices=list(ALL_SIZES), help="Slice sizes.")
    parser.add_argument("--modes", nargs="+", choices=MODES, help="Modes (default: per size).")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2).")
    parser.add_argument("--device", default="cpu", help="cpu or cuda.")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="32",
        help="bf16-mixed: every model's forward pass (mrirecon's and the references') under bf16 autocast.",
    )
    parser.add_argument("--repeats", type=int, default=3, help="Timed calls (median).")
    parser.add_argument(
        "--memory-limit-gb", type=float, default=12.0, help="Heap limit per worker (0: none)."
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="Seconds per worker.")
    parser.add_argument(
        "--no-cs", action="store_true", help="Skip CS and the pretrained CIRIM on the real slice."
    )
    parser.add_argument(
        "--allocators",
        nargs="+",
        choices=list(ALLOCATORS),
        help="Allocator profiles, each a full pass (default: untouched and tuned with --peers, else tuned).",
    )
    parser.add_argument(
        "--peers", type=Path, help="Folder of exported DIRECT and ATOMMIC trees: time them too."
    )
    parser.add_argument(
        "--docs", type=Path, help="With --peers: rewrite this Markdown file's comparison section."
    )
    parser.add_argument(
        "--exclude",
        nargs="+",
        metavar="PATTERN",
        help="skip measurements matching CONFIG:SIZE:MODE (shell patterns, e.g. 'peer:direct_*:knee:train')",
    )
    parser.add_argument("--wait-idle", action="store_true", help="Wait for idle CPUs before each run.")
    parser.add_argument("--max-wait", type=float, default=600.0, help="Seconds to wait for idle CPUs.")
    parser.add_argument("--retries", type=int, default=0, help="Repeat a contended CPU run this many times.")
    parser.add_argument("--json", type=Path, help="Output JSON (default benchmarks/results/models.json).")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    if args.worker:
        request = json.loads(args.worker)
        if request.get("real_slice"):
            result = run_real_slice_job(request["real_slice"], request["threads"])
        else:
            result = run_job(Job(**request))
        print(json.dumps(result))
        return 0

    allocators = args.allocators or (["untouched", "tuned"] if args.peers else ["tuned"])
    if args.peers:  # what the end of a long run needs, checked before it starts
        peers.commits(args.peers)
        if args.docs:
            peers.check_docs_markers(args.docs)
    jobs = _jobs(args)
    real = [] if args.no_cs or args.quick or args.device != "cpu" else ["cs", "pretrained"]
    total = len(allocators) * (len(jobs) + len(real))
    rows: list[dict[str, Any]] = []
    started = datetime.now(UTC)
    json_path = args.json or (RESULTS / ("models_quick.json" if args.quick else "models.json"))

    def payload_now(complete: bool) -> dict[str, Any]:
        return {
            "benchmark": "models",
            "command": "python -m benchmarks.models " + " ".join(argv if argv is not None else sys.argv[1:]),
            "date": f"{started:%Y-%m-%d %H:%M}–{datetime.now(UTC):%H:%M} UTC",
            "machine": machine_info(torch.device(args.device)),
            "threads": args.threads,
            "precision": args.precision,
            "allocators": {name: ALLOCATORS[name] for name in allocators},
            "complete": complete,
            "rows": rows,
        }

    index = 0
    for allocator in allocators:
        for job in jobs:
            index += 1
            print(
                f"[{index}/{total}] {allocator} {job.config} {job.size} {job.mode} ...",
                file=sys.stderr,
                flush=True,
            )
            rows.append(measure(asdict(job), args, allocator))
            write_json("models", payload_now(False), json_path)  # a run cut short keeps its rows
        for kind in real:
            index += 1
            print(f"[{index}/{total}] {allocator} {kind} on the real slice ...", file=sys.stderr, flush=True)
            rows.append(measure({"real_slice": kind, "threads": args.threads}, args, allocator))
            write_json("models", payload_now(False), json_path)

    print_table(HEADERS, table(rows))
    payload = payload_now(True)
    if args.peers:
        sizes = sorted({job.size for job in jobs}, key=list(ALL_SIZES).index)
        payload["peers"] = {"dir": str(args.peers), "commits": peers.commits(args.peers)}
        payload["comparison"] = peers.compare(rows, allocators, sizes)
        payload["cs_comparison"] = peers.compare_cs(rows, allocators)
        payload["goals"] = peers.GOALS
        print(peers.markdown(payload))
        if args.docs:
            peers.write_docs_section(args.docs, peers.markdown(payload))
    else:
        print("No reference was timed in this run (--peers DIR): no ratio was measured.")
    path = write_json("models", payload, json_path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
