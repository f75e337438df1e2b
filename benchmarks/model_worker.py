"""The worker side of :mod:`benchmarks.models`: one measurement in a fresh process.

:func:`run_job` times one (model, size, mode), mrirecon's or a reference's, on random k-space and
reports peak memory and FLOPs; :func:`run_real_slice_job` times SigPy CS or the pretrained CIRIM
on the real slice. ``python -m benchmarks.models --worker JSON`` runs one of them and prints its row.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks import peers
from benchmarks.common import REAL_POISSON_BRAIN, autocast, peak_rss_bytes, sync

__all__ = ["PRETRAINED_CS_PEER", "Job", "make_inputs", "run_job", "run_real_slice_job"]

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
    precision: str = "32"  # or "bf16-mixed": the forward pass under bfloat16 autocast (both sides)


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
    # SENSE's CG would meet its tolerance early on random data (20-22 of 30 iterations): it runs all
    # of them, as on a real scan, so that its row times what its label says.
    overrides = {"cs_l1wavelet": ["coil_maps=given"], "sense": ["tolerance=0"]}.get(job.config, [])
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
    device = torch.device(job.device)
    if device.type == "cpu":  # a GPU run's memory is the device's; its driver maps host memory too
        _limit_memory(job.memory_limit_gb)
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
            with torch.no_grad(), autocast(job.precision, device):
                forward()
        else:
            model.train()
            model.zero_grad(set_to_none=True)
            with autocast(job.precision, device):
                out = forward()
            _loss(estimates(out)).backward()  # the loss in float32, as training computes it
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
    except (RuntimeError, MemoryError) as error:  # refused by the memory limit, or the GPU's memory
        if not isinstance(error, MemoryError) and "allocate" not in str(error):
            raise
        if device.type == "cuda":
            return {**row, "skipped": "out of GPU memory"}
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
        "precision": "32",  # float32 whatever the run's --precision (SigPy has no other)
        "source": source,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "calls": 3,
        "peak_rss": peak_rss_bytes(),
    }
