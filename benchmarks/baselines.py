"""Seconds per slice of the baselines, with SigPy's own L1-wavelet call beside our CS wrapper.

Real data: the 8-coil 230 × 180 Poisson-undersampled brain of ``shared/data`` (SigPy's tutorial
slice), where the issue quotes 2.2–2.9 s for 100 iterations of SigPy's L1-wavelet recon on this
kind of machine. Rows: ESPIRiT maps alone, bare ``sigpy.mri.app.L1WaveletRecon`` (100 iterations,
those maps), our ``cs_l1wavelet`` with the same maps (``coil_maps=given``) and end to end (its
default: ESPIRiT + CS), CG-SENSE and zero-filled with the ESPIRiT maps. Synthetic slices
(8 × 218 × 170 brain, 15 × 320 × 320 knee; random complex k-space, 4× equispaced mask, random
normalised maps): every baseline at its default config (CS with the given maps), inference only
(no gradients).

Median of ``--repeats`` calls after one warm-up call (which also pays numba's JIT compilation).

    python -m benchmarks.baselines [--threads 2] [--repeats 3] [--skip-learned] [--json PATH]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import REAL_POISSON_BRAIN, machine_info, print_table, time_call, write_json
from mrirecon.masks import describe_mask, mask_from_kspace
from mrirecon.models.registry import build_model, build_model_from_mapping
from mrirecon.physics import espirit_calibration_width, estimate_coil_maps_espirit, normalize_coil_maps
from mrirecon.runtime import configure_threads, tune_allocator

SYNTHETIC = {"brain 8×218×170": (8, 218, 170), "knee 15×320×320": (15, 320, 320)}
CPU = torch.device("cpu")


def real_brain_rows(path: Path, repeats: int) -> list[dict[str, object]]:
    """Time ESPIRiT, bare SigPy CS and our baselines on the real Poisson brain."""
    from sigpy.mri.app import L1WaveletRecon

    kspace = torch.from_numpy(np.load(path))[None]
    mask = mask_from_kspace(kspace[0]).reshape(1, 1, *kspace.shape[-2:])
    width = espirit_calibration_width(
        describe_mask(mask).acs_slices, (int(kspace.shape[-2]), int(kspace.shape[-1])), 24
    )
    maps = estimate_coil_maps_espirit(kspace, calib_width=width)
    ksp_np, maps_np, weights = kspace[0].numpy(), maps[0].numpy(), mask[0, 0].numpy()
    given = build_model_from_mapping("cs_l1wavelet", {"coil_maps": "given"})
    default = build_model("cs_l1wavelet")

    def espirit() -> object:
        return estimate_coil_maps_espirit(kspace, calib_width=width)

    def bare_sigpy() -> object:
        return L1WaveletRecon(ksp_np, maps_np, 0.005, weights=weights, max_iter=100, show_pbar=False).run()

    cases: list[tuple[str, Callable[[], object]]] = [
        (f"ESPIRiT maps (SigPy, calib {width})", espirit),
        ("bare SigPy L1WaveletRecon, 100 it", bare_sigpy),
        ("cs_l1wavelet, given (ESPIRiT) maps", lambda: given(kspace, mask, maps)),
        ("cs_l1wavelet default (ESPIRiT + CS)", lambda: default(kspace, mask, maps)),
        ("sense (30 CG it)", lambda: build_model("sense")(kspace, mask, maps)),
        ("zero_filled", lambda: build_model("zero_filled")(kspace, mask, maps)),
    ]
    rows = []
    with torch.no_grad():
        for name, fn in cases:
            seconds = time_call(fn, CPU, repeats=repeats, warmup=1)
            rows.append({"data": "real brain 8×230×180", "case": name, "seconds": seconds})
    return rows


def synthetic_slice(coils: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random k-space under a 4× equispaced mask with 24 centre lines (enough for ESPIRiT), random maps."""
    g = torch.Generator().manual_seed(0)
    shape = (1, coils, height, width)
    kspace = torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g))
    maps = normalize_coil_maps(
        torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g))
    )
    mask = torch.zeros(1, 1, 1, width)
    mask[..., ::4] = 1
    mask[..., width // 2 - 12 : width // 2 + 12] = 1
    return kspace * mask, mask, maps


def synthetic_rows(names: list[str], repeats: int) -> list[dict[str, object]]:
    """Every baseline at its default on random slices of the two reference sizes."""
    rows = []
    for label, size in SYNTHETIC.items():
        inputs = synthetic_slice(*size)
        for name in names:
            # ESPIRiT on random k-space means nothing (its cost is in the real-brain rows): CS here
            # uses the given maps. SENSE runs all its 30 iterations (CG meets its tolerance after
            # 20-22 on random data, not on the real brain).
            settings: dict[str, dict[str, object]] = {
                "cs_l1wavelet": {"coil_maps": "given"},
                "sense": {"tolerance": 0.0},
            }
            mapping = settings.get(name, {})
            model = build_model_from_mapping(name, mapping).eval()

            def call(m: torch.nn.Module = model, x: tuple[torch.Tensor, ...] = inputs) -> object:
                return m(*x)

            with torch.no_grad():
                seconds = time_call(call, CPU, repeats=repeats, warmup=1)
            rows.append({"data": label, "case": name, "seconds": seconds})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the CI machines have 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--brain", type=Path, default=REAL_POISSON_BRAIN)
    parser.add_argument("--skip-learned", action="store_true", help="only the classical baselines")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    tune_allocator()
    configure_threads(args.threads)
    rows = real_brain_rows(args.brain, args.repeats) if args.brain.is_file() else []
    if not rows:
        print(f"(no real brain at {args.brain}: its rows are skipped)")
    names = ["zero_filled", "sense", "cs_l1wavelet"]
    names += [] if args.skip_learned else ["unet", "e2e_varnet"]
    rows += synthetic_rows(names, args.repeats)
    print(f"\nBaselines, CPU, {torch.get_num_threads()} threads, median of {args.repeats} after a warm-up\n")
    print_table(["data", "case", "s/slice"], [[r["data"], r["case"], r["seconds"]] for r in rows])
    path = write_json("baselines_cpu", {"machine": machine_info(CPU), "rows": rows}, args.json)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
