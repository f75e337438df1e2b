"""Throughput of the multi-coil FFT, A and Aᴴ on fastMRI-sized slices, beside bare ``torch.fft``.

Slices of 15 coils × 640 × 368 (fastMRI knee), batch 1 and 8, complex64. Each row times one
operation on the same tensor in the same process, the operations taking turns within each round,
and reports slices per second and the cost
relative to bare ``torch.fft.fft2`` (for A and Aᴴ: relative to the bare pieces they are made of,
expand/reduce with the coil maps + ``torch.fft`` + mask, uncentred, which is the floor for any
centred implementation). Goal: centring adds at most 15 %.

    python -m benchmarks.physics [--device cpu|cuda] [--threads 2] [--repeats 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import machine_info, print_table, sync, write_json
from mrirecon.physics import MultiCoilOperator, fft2c, ifft2c
from mrirecon.runtime import configure_threads, tune_allocator

COILS, HEIGHT, WIDTH = 15, 640, 368


def roll_fft2c(x: torch.Tensor) -> torch.Tensor:
    """The textbook centred FFT with four copies (what fastMRI's fft2c does)."""
    dims = (-2, -1)
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=dims), norm="ortho"), dim=dims)


def measure_batch(device: torch.device, batch: int, repeats: int) -> list[dict[str, Any]]:
    """Time every operation on one batch of random slices."""
    g = torch.Generator().manual_seed(batch)
    shape = (batch, COILS, HEIGHT, WIDTH)
    kspace = torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g)).to(device)
    image = kspace[:, 0].clone()
    maps = kspace / kspace.abs().pow(2).sum(1, keepdim=True).sqrt()
    mask = torch.zeros(batch, 1, 1, WIDTH, device=device)
    mask[..., ::4] = 1
    op = MultiCoilOperator(maps, mask)
    maps_conj = maps.conj().resolve_conj()

    def bare_forward() -> torch.Tensor:
        return torch.fft.fft2(maps * image.unsqueeze(1), norm="ortho").mul_(mask)

    def bare_adjoint() -> torch.Tensor:
        return torch.sum(maps_conj * torch.fft.ifft2(kspace * mask, norm="ortho"), dim=1)

    cases = [
        ("bare torch.fft.fft2", lambda: torch.fft.fft2(kspace, norm="ortho"), None),
        ("fft2c (mrirecon)", lambda: fft2c(kspace), "bare torch.fft.fft2"),
        ("ifft2c (mrirecon)", lambda: ifft2c(kspace), "bare torch.fft.fft2"),
        ("fft2c with rolls (fastMRI-style)", lambda: roll_fft2c(kspace), "bare torch.fft.fft2"),
        ("bare S, fft2, M (uncentred A)", bare_forward, None),
        ("A = M F S (mrirecon)", lambda: op.forward(image), "bare S, fft2, M (uncentred A)"),
        ("bare M, ifft2, Sᴴ (uncentred Aᴴ)", bare_adjoint, None),
        ("Aᴴ (mrirecon)", lambda: op.adjoint(kspace), "bare M, ifft2, Sᴴ (uncentred Aᴴ)"),
        ("AᴴA (mrirecon)", lambda: op.normal(image), None),
    ]
    with torch.no_grad():
        times = round_robin({name: fn for name, fn, _ in cases}, device, repeats)
    rows = []
    for name, _, reference in cases:
        seconds = statistics.median(times[name])
        row: dict[str, Any] = {
            "operation": name,
            "batch": batch,
            "ms_per_call": seconds * 1e3,
            "slices_per_s": batch / seconds,
            "vs": reference or "",
            "ratio": None,
        }
        if reference:  # within each round, then the median and quartiles over the rounds
            ratios = [a / b for a, b in zip(times[name], times[reference], strict=True)]
            quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
            row.update(ratio=statistics.median(ratios), ratio_quartiles=[quartiles[0], quartiles[2]])
        rows.append(row)
    return rows


def round_robin(
    cases: dict[str, Callable[[], object]], device: torch.device, rounds: int
) -> dict[str, list[float]]:
    """Seconds per call of every case in each of ``rounds`` rounds, the cases alternating within a
    round, so that a shared machine's slow moments fall on a case and its reference alike. After
    a warm-up call, a round times enough calls of a case back to back to last about 20 ms (on a GPU,
    kernel launches of sub-millisecond FFTs would otherwise weigh on the figure)."""
    calls: dict[str, int] = {}
    for name, fn in cases.items():
        fn()
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        calls[name] = max(1, math.ceil(0.02 / max(time.perf_counter() - start, 1e-9)))
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            sync(device)
            times[name].append((time.perf_counter() - start) / calls[name])
    return times


def _ratio_text(row: dict[str, Any]) -> str:
    if row["ratio"] is None:
        return ""
    low, high = row["ratio_quartiles"]
    return f"{row['ratio']:.2f}× [{low:.2f}–{high:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the CI machines have 2)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    tune_allocator()
    configure_threads(args.threads)
    device = torch.device(args.device)
    rows = [row for batch in args.batches for row in measure_batch(device, batch, args.repeats)]
    print(
        f"\nPhysics throughput, {COILS} coils × {HEIGHT} × {WIDTH}, complex64, {device}, "
        f"{torch.get_num_threads()} threads (median of {args.repeats} rounds, the operations "
        "alternating within a round; a ratio is taken within each round: median [quartiles])\n"
    )
    print_table(
        ["operation", "batch", "ms/call", "slices/s", "cost vs", "ratio"],
        [
            [
                r["operation"],
                r["batch"],
                r["ms_per_call"],
                r["slices_per_s"],
                r["vs"],
                _ratio_text(r),
            ]
            for r in rows
        ],
    )
    path = write_json(f"physics_{device.type}", {"machine": machine_info(device), "rows": rows}, args.json)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
