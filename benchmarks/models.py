"""Speed, memory and arithmetic throughput of the models, and the same-run comparison with the references.

For each model (every registry entry at its default config, or the configs given) and each slice
size (an 8-coil 218×170 brain slice and a 15-coil 320×320 knee slice; batch 1, 4× equispaced mask,
random complex data), it measures

- ``inference``: seconds per slice under ``torch.inference_mode``;
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
Without ``--peers`` no ratio is measured and none is printed.

    python -m benchmarks.models [--quick] [--models rim cirim ...] [--sizes brain knee]
        [--modes inference train train_ckpt] [--threads 2] [--device cpu|cuda]
        [--allocators untouched tuned] [--peers DIR] [--docs docs/benchmarks.md] [--json PATH]
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
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import torch

from benchmarks import peers
from benchmarks.common import (
    REAL_POISSON_BRAIN,
    RESULTS,
    machine_info,
    peak_rss_bytes,
    print_table,
    sync,
    write_json,
)

#: (coils, height, width) of the benchmark slices.
SIZES = {"brain": (8, 218, 170), "knee": (15, 320, 320)}
#: Sizes timed only when asked for (--sizes): the full fastMRI knee matrix, for GPU inference.
EXTRA_SIZES = {"knee_full": (15, 640, 368)}
QUICK_SIZES = {"tiny": (2, 24, 20)}
ALL_SIZES = {**SIZES, **EXTRA_SIZES, **QUICK_SIZES}
MODES = ("inference", "train", "train_ckpt")
#: Modes run on each size by default.
DEFAULT_MODES = {"brain": MODES, "knee": ("inference",), "knee_full": ("inference",), "tiny": MODES}
#: The pretrained model timed beside CS on the real slice.
PRETRAINED_CS_PEER = "cirim-brain"


@dataclass(frozen=True)
class Job:
    """One measurement, run in its own process: an mrirecon config, or a reference (``peer``)."""

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
    peer: str = ""  # key of benchmarks.peers.PEERS; config is then "peer:<key>"
    peers_dir: str = ""
    loss: str = "all"  # "all" returned estimates, or the "last" one


def _limit_memory(gigabytes: float) -> None:
    """Refuse allocations beyond ``gigabytes`` of heap (the machine is shared)."""
    if gigabytes > 0:
        limit = int(gigabytes * (1 << 30))
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


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


def count_flops(call: Any) -> int:
    """FLOPs of one inference call (convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        call()
    return int(counter.get_total_flops())


def _loss(images: list[torch.Tensor]) -> torch.Tensor:
    """The training loss both sides are timed with: the mean magnitude of each estimate, averaged."""
    return sum((image.abs().mean() for image in images), torch.zeros((), device=images[0].device)) / len(
        images
    )


def _build(job: Job, device: torch.device) -> tuple[Any, Any, Any, dict[str, Any]]:
    """``(model, forward(), estimates(output), row fields)`` of the job's model on its inputs."""
    from mrirecon.models.registry import parameter_count

    inputs = make_inputs(job.coils, job.height, job.width, device)
    torch.manual_seed(0)
    if job.peer:
        peer = peers.PEERS[job.peer]
        model = peers.build_peer(job.peer, Path(job.peers_dir)).to(device)
        prepared = peer.prepare(*inputs)
        fields = {
            "model": peer.label,
            "source": peer.source,
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        return model, lambda: peer.call(model, prepared), peer.images, {**fields, "trainable": True}

    from mrirecon.models.config_files import load_model_config
    from mrirecon.models.registry import build_model

    # Random k-space has no coil sensitivities for ESPIRiT to find: CS uses the given (random) maps.
    overrides = ["coil_maps=given"] if job.config == "cs_l1wavelet" else []
    name, config = load_model_config(job.config, overrides)
    ours = build_model(name, config).to(device)

    def estimates(out: Any) -> list[torch.Tensor]:
        steps = [step for cascade in out.steps for step in cascade]
        return steps[-1:] if job.loss == "last" else steps

    fields = {"model": name, "parameters": parameter_count(ours), "trainable": ours.trainable}
    if job.mode == "train_ckpt":
        fields["checkpointing"] = ours.supports_checkpointing
        if ours.supports_checkpointing:
            ours.set_gradient_checkpointing(True)
    return ours, lambda: ours(*inputs), estimates, fields


def run_job(job: Job) -> dict[str, Any]:
    """Measure one (model, size, mode) in this process; returns the row."""
    from mrirecon.runtime import configure_threads, tune_allocator

    tune_allocator()  # a no-op unless the profile leaves it to mrirecon (see ALLOCATORS)
    configure_threads(job.threads)
    _limit_memory(job.memory_limit_gb)
    device = torch.device(job.device)
    model, forward, estimates, fields = _build(job, device)
    row: dict[str, Any] = {**asdict(job), **fields}
    if job.mode != "inference" and not fields["trainable"]:
        return {**row, "skipped": "not trainable"}
    if job.mode == "train_ckpt" and not fields.get("checkpointing"):
        return {**row, "skipped": "no gradient checkpointing"}
    row["baseline_rss"] = peak_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def call() -> None:
        if job.mode == "inference":
            model.eval()
            with torch.no_grad():
                forward()
        else:
            model.train()
            model.zero_grad(set_to_none=True)
            _loss(estimates(forward())).backward()
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
    except (RuntimeError, MemoryError) as error:  # refused by the memory limit
        if not isinstance(error, MemoryError) and "allocate" not in str(error):
            raise
        return {**row, "skipped": f"over the {job.memory_limit_gb:g} GB memory limit"}
    row["seconds"] = statistics.median(times)
    row["cpu_seconds"] = statistics.median(cpu_times)  # all threads: shows the load of a busy machine
    row["calls"] = len(times)
    row["peak_rss"] = peak_rss_bytes()
    if device.type == "cuda":
        row["peak_gpu_memory"] = torch.cuda.max_memory_allocated(device)
    if job.mode == "inference" and not job.peer:
        model.eval()
        row["flops"] = count_flops(forward)
        row["gflops_per_s"] = row["flops"] / row["seconds"] / 1e9
        row["conv_gflops_per_s"] = conv_microbenchmark(device)
    return row


def _real_slice() -> tuple[Any, str]:
    """The real 8-coil 230×180 Poisson-disc slice (k-space scaled to a maximum of 1), or a random one."""
    import numpy as np

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
    return kspace / np.abs(kspace).max(), source


def _timed(fn: Any, calls: int = 4) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn`` over ``calls - 1`` calls after a warm-up call."""
    times, cpu_times = [], []
    for _ in range(calls):
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return statistics.median(times[1:]), statistics.median(cpu_times[1:])


def run_real_slice_job(kind: str, threads: int) -> dict[str, Any]:
    """SigPy L1-wavelet CS (100 iterations) or the pretrained CIRIM on the real slice; ESPIRiT maps
    (not timed) for both."""
    from sigpy.mri.app import EspiritCalib, L1WaveletRecon

    from mrirecon.runtime import configure_threads, tune_allocator

    tune_allocator()
    configure_threads(threads)
    kspace, source = _real_slice()
    maps = EspiritCalib(kspace, show_pbar=False).run()
    if kind == "cs":
        config = "sigpy_l1wavelet_cs"

        def call() -> None:
            L1WaveletRecon(kspace, maps, lamda=0.005, max_iter=100, show_pbar=False).run()
    else:
        from mrirecon.models.pretrained import load_pretrained

        config = PRETRAINED_CS_PEER
        _, model, _ = load_pretrained(PRETRAINED_CS_PEER)
        y = torch.from_numpy(kspace)[None]
        mask = (y.abs().sum(1, keepdim=True) > 0).to(torch.float32)  # (1, 1, H, W): Poisson disc
        coil_maps = torch.from_numpy(maps.astype("complex64"))[None]

        def call() -> None:
            with torch.no_grad():
                model(y, mask, coil_maps)

    seconds, cpu_seconds = _timed(call)
    return {
        "config": config,
        "size": "real_230x180",
        "mode": "inference",
        "threads": threads,
        "source": source,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "calls": 3,
        "peak_rss": peak_rss_bytes(),
    }


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
    for _ in range(1 + max(args.retries, 0)):
        waited = 0.0
        idle = idle_fraction()
        while args.wait_idle and idle < 0.9 and waited < args.max_wait:
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
    common: dict[str, Any] = {"threads": args.threads, "device": args.device}
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
        rss = row.get("peak_rss")
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
    "peak RSS GB",
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
    jobs = _jobs(args)
    real = [] if args.no_cs or args.quick or args.device != "cpu" else ["cs", "pretrained"]
    total = len(allocators) * (len(jobs) + len(real))
    rows: list[dict[str, Any]] = []
    started = datetime.now(UTC)
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
        for kind in real:
            index += 1
            print(f"[{index}/{total}] {allocator} {kind} on the real slice ...", file=sys.stderr, flush=True)
            rows.append(measure({"real_slice": kind, "threads": args.threads}, args, allocator))

    print_table(HEADERS, table(rows))
    payload: dict[str, Any] = {
        "benchmark": "models",
        "command": "python -m benchmarks.models " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": f"{started:%Y-%m-%d %H:%M}–{datetime.now(UTC):%H:%M} UTC",
        "machine": machine_info(torch.device(args.device)),
        "threads": args.threads,
        "allocators": {name: ALLOCATORS[name] for name in allocators},
        "rows": rows,
    }
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
    path = write_json(
        "models", payload, args.json or (RESULTS / ("models_quick.json" if args.quick else "models.json"))
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
