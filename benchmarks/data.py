"""Data benchmarks: slices per second served by the training loader beside raw h5py reads, and the
time to simulate a dataset.

Loader: ``SliceDataset`` + ``ReconTransform`` (random line mask, normalisation, target crop; no
coil-map estimation) through a ``DataLoader`` (batch 1) with 0 and 2 workers. Raw: the same
slices' ``kspace`` and ``reconstruction_rss`` read with h5py through the same ``DataLoader``
settings (a dataset that only reads). Files are fastMRI-format volumes of 8 coils × 256 × 256 and
15 coils × 640 × 368 (a fastMRI knee slice), read once before timing (page cache warm, as from
the second epoch on). Goal: the loader delivers at least 80 % of the raw read rate.

    python -m benchmarks.data [--quick] [--skip-simulate]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import machine_info, print_table, write_json
from mrirecon.data.dataset import SliceDataset, seed_mask_worker
from mrirecon.data.fastmri import write_volume
from mrirecon.data.header import build_ismrmrd_header
from mrirecon.data.simulate import simulate_dataset
from mrirecon.data.transforms import ReconTransform
from mrirecon.masks import create_mask_func
from mrirecon.physics import ifftnc
from mrirecon.runtime import tune_allocator

#: (label, volumes, slices, coils, H, W, crop)
SHAPES = (
    ("8 × 256 × 256", 2, 16, 8, 256, 256, (256, 256)),
    ("15 × 640 × 368", 1, 16, 15, 640, 368, (320, 320)),
)


class RawReads(Dataset[tuple[Any, Any]]):
    """The same slices read with plain h5py (one handle per file and process).

    With ``fft=True`` each slice also gets one 2-D inverse FFT (returned instead of the k-space):
    the least work any loader does that normalises by the zero-filled image, as the contract of
    docs/interfaces.md §2 asks.
    """

    def __init__(self, index: list[tuple[Path, int]], *, fft: bool = False):
        self.index = index
        self.fft = fft
        self._files: dict[Path, h5py.File] = {}

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[Any, Any]:
        path, slice_index = self.index[item]
        handle = self._files.get(path)
        if handle is None:
            handle = self._files[path] = h5py.File(path, "r")
        kspace = handle["kspace"][slice_index]
        data = ifftnc(torch.from_numpy(kspace), 2, centered=False) if self.fft else kspace
        return data, handle["reconstruction_rss"][slice_index]

    def __getstate__(self) -> dict[str, Any]:
        return {"index": self.index, "fft": self.fft, "_files": {}}


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


def rate(loader: DataLoader, repeats: int) -> float:
    """Slices per second over ``repeats`` passes (after one warm-up pass)."""
    for _ in loader:
        pass
    count = 0
    start = time.perf_counter()
    for _ in range(repeats):
        for _ in loader:
            count += 1
    return count / (time.perf_counter() - start)


def bench_loader(quick: bool) -> list[dict[str, Any]]:
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
            raw = RawReads(dataset.index)
            for workers in (0, 2):
                options: dict[str, Any] = {"batch_size": 1, "num_workers": workers}
                if workers:
                    options.update(worker_init_fn=seed_mask_worker, persistent_workers=True)
                repeats = 1 if quick else 3
                raw_rate = rate(DataLoader(raw, **options), repeats)
                floor_rate = rate(DataLoader(RawReads(dataset.index, fft=True), **options), repeats)
                loader_rate = rate(DataLoader(dataset, **options), repeats)
                rows.append(
                    {
                        "shape": label,
                        "workers": workers,
                        "raw_slices_per_s": raw_rate,
                        "raw_plus_ifft_slices_per_s": floor_rate,
                        "loader_slices_per_s": loader_rate,
                        "ratio": loader_rate / raw_rate,
                        "ratio_to_raw_plus_ifft": loader_rate / floor_rate,
                    }
                )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Small sizes (a smoke run).")
    parser.add_argument("--skip-simulate", action="store_true", help="Only the loader benchmark.")
    args = parser.parse_args()
    tune_allocator()
    torch.set_num_threads(2)
    rows = bench_loader(args.quick)
    print("\nTraining loader (SliceDataset + ReconTransform, no coil maps) vs raw h5py reads, batch 1:\n")
    print_table(
        [
            "coils × H × W",
            "workers",
            "raw",
            "raw + 1 iFFT",
            "loader",
            "loader / raw",
            "loader / (raw + iFFT)",
        ],
        [
            [
                r["shape"],
                r["workers"],
                r["raw_slices_per_s"],
                r["raw_plus_ifft_slices_per_s"],
                r["loader_slices_per_s"],
                f"{r['ratio']:.0%}",
                f"{r['ratio_to_raw_plus_ifft']:.0%}",
            ]
            for r in rows
        ],
    )
    print("(slices per second)")
    payload: dict[str, Any] = {
        "machine": machine_info(torch.device("cpu")),
        "load_average": os.getloadavg(),  # other work on the machine while measuring
        "loader": rows,
    }
    if not args.skip_simulate:
        sim = bench_simulate(args.quick)
        payload["simulate"] = sim
        shape = f"{sim['volumes']} volumes × {sim['slices']} slices × {sim['coils']} coils × {sim['size']}²"
        print(f"\nmrirecon simulate: {shape} with lesions in {sim['seconds']:.1f} s")
    print(f"\nJSON: {write_json('data', payload)}")


if __name__ == "__main__":
    main()
