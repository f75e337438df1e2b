"""Data benchmarks: slices per second served by the training loader beside raw reads of the same
slices, and the time to simulate a dataset.

Loader: ``SliceDataset`` + ``ReconTransform`` (random line mask, normalisation, target crop; no
coil-map estimation) through a ``DataLoader`` (batch 1, the default collate), and the same with
``collate_fn=collate_samples`` (the per-slice numbers as lists, not seven one-number tensors that
workers must each send through shared memory). Raw: the same slices' k-space and
``reconstruction_rss`` read through the loader's own reader (the same memory map of the file, or
h5py where the loader uses h5py) and copied once, through a ``DataLoader`` with the same settings
(a dataset that only reads): the loader does this work and more, so its ratio to raw reads stays
at or below 100 % up to measurement noise. Files are fastMRI-format volumes of 8 coils × 256 × 256 and
15 coils × 640 × 368 (a fastMRI knee slice), read once before timing (page cache warm, as from
the second epoch on). Configurations: 0 workers with 1 and with 2 torch threads in the main
process, and 2 workers (one thread each, checked in every worker).

The machine may be shared: each configuration is measured in several rounds, raw and loader
alternating (which goes first alternates too), each measurement at least ``--seconds`` long; the
table gives the median rates and the median, lowest and highest per-round ratio loader / raw,
with the load average before and after. Goal: the loader delivers at least 80 % of the raw rate.

    python -m benchmarks.data [--quick] [--skip-simulate] [--rounds 9] [--seconds 0.5] [--no-mmap]

``--no-mmap`` sets ``MRIRECON_NO_MMAP=1``: the loader then reads k-space through h5py as it does
for chunked or compressed files (see docs/data.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import machine_info, print_table, write_json
from mrirecon.data.dataset import SliceDataset, collate_samples, seed_mask_worker
from mrirecon.data.fastmri_writer import write_volume
from mrirecon.data.header import build_ismrmrd_header
from mrirecon.data.raw import RawVolume
from mrirecon.data.simulate import simulate_dataset
from mrirecon.data.transforms import ReconTransform
from mrirecon.data.volume import open_volume
from mrirecon.masks import create_mask_func
from mrirecon.runtime import tune_allocator
from mrirecon.workers import init_worker as init_mrirecon_worker

#: (label, volumes, slices, coils, H, W, crop)
SHAPES = (
    ("8 × 256 × 256", 2, 16, 8, 256, 256, (256, 256)),
    ("15 × 640 × 368", 1, 16, 15, 640, 368, (320, 320)),
)
#: (DataLoader workers, torch threads of the main process)
CONFIGS = ((0, 1), (0, 2), (2, 2))


class RawReads(Dataset[tuple[Any, Any]]):
    """The same slices read through the loader's own reader, and nothing else done to them.

    ``open_volume`` as ``SliceDataset`` uses it, so k-space comes from the same read-only memory
    map of the file (or through h5py where the loader reads through h5py: chunked files,
    ``--no-mmap``); k-space from the map is copied out of it once (an h5py read is already a
    private copy), the least any consumer of the slice does. The loader does at least this much
    work, so its rate cannot exceed this one's except by measurement noise.
    """

    def __init__(self, index: list[tuple[Path, int]]):
        self.index = index
        self._volumes: dict[Path, RawVolume] = {}

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[Any, Any]:
        path, slice_index = self.index[item]
        volume = self._volumes.get(path)
        if volume is None:
            volume = self._volumes[path] = open_volume(path)
        kspace = volume.kspace_slice(slice_index)  # a view of the memory map, or h5py's fresh array
        return kspace if kspace.flags.writeable else np.array(kspace), volume.read_target(slice_index)

    def __getstate__(self) -> dict[str, Any]:
        return {"index": self.index, "_volumes": {}}


def init_worker(worker_id: int) -> None:
    """``worker_init_fn``: per-worker masks, and a check that the worker computes on one thread."""
    threads = torch.get_num_threads()
    if threads != 1:
        raise RuntimeError(f"DataLoader worker {worker_id} runs {threads} torch threads; expected 1")
    init_mrirecon_worker(worker_id)  # as training's loaders do
    seed_mask_worker(worker_id)


def write_files(
    folder: Path, volumes: int, slices: int, coils: int, height: int, width: int, crop: tuple[int, int]
) -> list[Path]:
    """fastMRI files of complex Gaussian k-space (the content does not change reading speed)."""
    rng = np.random.default_rng(0)
    header = build_ismrmrd_header(encoded_matrix=(height, width, 1), recon_matrix=(crop[0], crop[1], 1))
    paths = []
    for v in range(volumes):
        shape = (slices, coils, height, width)
        kspace = (
            rng.standard_normal(shape, dtype=np.float32) + 1j * rng.standard_normal(shape, dtype=np.float32)
        ).astype(np.complex64)
        target = rng.random((slices, *crop), dtype=np.float32)
        paths.append(
            write_volume(
                folder / f"bench_{coils}c_{v}.h5", kspace=kspace, header_xml=header, reconstruction_rss=target
            )
        )
    return paths


def rate(batches: Any, seconds: float) -> float:
    """Slices per second of whole passes over ``batches`` (batch 1), for at least ``seconds``."""
    count = 0
    start = time.perf_counter()
    while True:
        for _ in batches:
            count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def measure(
    loaders: dict[str, DataLoader], threads: int, rounds: int, seconds: float
) -> dict[str, list[float]]:
    """Rates of each loader per round, the order alternating between rounds (after a warm-up pass)."""
    torch.set_num_threads(threads)
    for batches in loaders.values():
        for _ in batches:
            pass
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    names = list(loaders)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            rates[name].append(rate(loaders[name], seconds))
    return rates


def bench_loader(quick: bool, rounds: int, seconds: float) -> list[dict[str, Any]]:
    rows = []
    transform = ReconTransform(mask_func=create_mask_func("random", [0.08], [4]), coil_maps="none")
    with tempfile.TemporaryDirectory() as tmp:
        for label, volumes, slices, coils, height, width, crop in SHAPES:
            if quick:
                slices = 4
            folder = Path(tmp) / label.replace(" ", "")
            folder.mkdir()
            write_files(folder, volumes, slices, coils, height, width, crop)
            dataset = SliceDataset(folder, transform)
            for workers, threads in CONFIGS:
                options: dict[str, Any] = {"batch_size": 1, "num_workers": workers}
                if workers:
                    options.update(worker_init_fn=init_worker, persistent_workers=True)
                loaders = {
                    "raw": DataLoader(RawReads(dataset.index), **options),
                    "loader": DataLoader(dataset, **options),
                    "lists": DataLoader(dataset, collate_fn=collate_samples, **options),
                }
                load_before = os.getloadavg()[0]
                rates = measure(loaders, threads, rounds, seconds)
                ratios = [a / b for a, b in zip(rates["loader"], rates["raw"])]
                lists_ratios = [a / b for a, b in zip(rates["lists"], rates["raw"])]
                rows.append(
                    {
                        "shape": label,
                        "workers": workers,
                        "main_threads": threads,
                        "raw_slices_per_s": statistics.median(rates["raw"]),
                        "loader_slices_per_s": statistics.median(rates["loader"]),
                        "ratio": statistics.median(ratios),
                        "ratio_min": min(ratios),
                        "ratio_max": max(ratios),
                        "collate_samples_slices_per_s": statistics.median(rates["lists"]),
                        "collate_samples_ratio": statistics.median(lists_ratios),
                        "rounds": {name: values for name, values in rates.items()},
                        "load_average": [load_before, os.getloadavg()[0]],
                    }
                )
                del loaders  # ends the persistent workers
    return rows


def bench_simulate(quick: bool) -> dict[str, Any]:
    volumes, slices, coils, size = (2, 4, 8, 128) if quick else (10, 16, 8, 256)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        simulate_dataset(
            tmp,
            volumes=volumes,
            slices=slices,
            coils=coils,
            size=(size, size),
            seed=0,
            lesions=True,
            progress=False,
        )
        seconds = time.perf_counter() - start
    return {"volumes": volumes, "slices": slices, "coils": coils, "size": size, "seconds": seconds}


class _RealisticSlices(Dataset[int]):
    """Realistic slices of fixed size, simulated on demand (what a training stream's workers do)."""

    def __init__(self, count: int, size: int, coils: int):
        from mrirecon.data.realistic import RealisticOptions

        self.count = count
        self.options = RealisticOptions(rows=(size, size), aspect=(1.0, 1.0), coils=(coils, coils))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> int:
        from mrirecon.data.realistic import simulate_realistic_slice

        sim = simulate_realistic_slice(self.options, (0, index))
        return int(sim.kspace.shape[0])


def bench_realistic(quick: bool, workers: int) -> dict[str, Any]:
    """Seconds to simulate ``count`` realistic slices through a DataLoader with ``workers`` workers
    (one torch thread each); the template is loaded in each worker first (not timed)."""
    from mrirecon.data.anatomy import load_template

    count, size, coils = (40, 128, 8) if quick else (1000, 256, 8)
    load_template()  # forked workers inherit it
    loader = DataLoader(
        _RealisticSlices(count, size, coils),
        batch_size=None,
        num_workers=workers,
        worker_init_fn=init_worker if workers else None,
    )
    start = time.perf_counter()
    done = sum(1 for _ in loader)
    seconds = time.perf_counter() - start
    return {"slices": done, "size": size, "coils": coils, "workers": workers, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Small sizes, one short round (a smoke run).")
    parser.add_argument("--skip-simulate", action="store_true", help="Only the loader benchmark.")
    parser.add_argument("--rounds", type=int, default=9, help="Rounds per configuration (default 9).")
    parser.add_argument("--seconds", type=float, default=0.5, help="Least seconds per measurement.")
    parser.add_argument("--no-mmap", action="store_true", help="Loader reads k-space through h5py.")
    parser.add_argument(
        "--only-realistic", action="store_true", help="Only the realistic simulator's throughput."
    )
    args = parser.parse_args()
    if args.only_realistic:
        result = bench_realistic(args.quick, workers=2)
        print(
            f"realistic simulator: {result['slices']} slices of {result['coils']} coils × {result['size']}² "
            f"in {result['seconds']:.1f} s with {result['workers']} workers "
            f"({result['slices'] / result['seconds']:.1f} slices/s; goal 1,000 in < 120 s)"
        )
        realistic_payload = {"machine": machine_info(torch.device("cpu")), **result}
        print(f"\nJSON: {write_json('data_realistic', realistic_payload)}")
        return
    if args.no_mmap:
        os.environ["MRIRECON_NO_MMAP"] = "1"
    rounds, seconds = (1, 0.2) if args.quick else (max(1, args.rounds), args.seconds)
    tune_allocator()
    rows = bench_loader(args.quick, rounds, seconds)
    print(
        "\nTraining loader (SliceDataset + ReconTransform, no coil maps) vs raw reads of the same slices "
        "through the same reader (k-space copied once), batch 1, "
        f"{rounds} rounds{', k-space through h5py (--no-mmap)' if args.no_mmap else ''}:\n"
    )
    print_table(
        [
            "coils × H × W",
            "workers",
            "main threads",
            "raw",
            "loader",
            "loader / raw",
            "per round",
            "loader, collate_samples / raw",
            "load avg",
        ],
        [
            [
                r["shape"],
                r["workers"],
                r["main_threads"],
                r["raw_slices_per_s"],
                r["loader_slices_per_s"],
                f"{r['ratio']:.0%}",
                f"{r['ratio_min']:.0%}–{r['ratio_max']:.0%}",
                f"{r['collate_samples_ratio']:.0%}",
                "–".join(f"{value:.1f}" for value in r["load_average"]),
            ]
            for r in rows
        ],
    )
    print(
        "(slices per second, medians over the rounds; 'collate_samples': the same loader with "
        "collate_fn=collate_samples, numbers as lists; load avg: 1-minute, before–after)"
    )
    payload: dict[str, Any] = {
        "machine": machine_info(torch.device("cpu")),
        "cpus": os.cpu_count(),
        "memory_map": not args.no_mmap,
        "loader": rows,
    }
    if not args.skip_simulate:
        torch.set_num_threads(2)
        sim = bench_simulate(args.quick)
        payload["simulate"] = sim
        shape = f"{sim['volumes']} volumes × {sim['slices']} slices × {sim['coils']} coils × {sim['size']}²"
        print(f"\nmrirecon simulate: {shape} with lesions in {sim['seconds']:.1f} s")
        realistic = bench_realistic(args.quick, workers=2)
        payload["realistic"] = realistic
        print(
            f"realistic simulator: {realistic['slices']} slices of {realistic['coils']} coils × "
            f"{realistic['size']}² in {realistic['seconds']:.1f} s with 2 workers (goal 1,000 in < 120 s)"
        )
    print(f"\nJSON: {write_json('data', payload)}")


if __name__ == "__main__":
    main()
