"""Quality of the classical baselines on a simulated lesion dataset, and the cost of ``mrirecon evaluate``.

A small fastMRI-layout dataset is simulated: multi-slice Shepp-Logan volumes with a faint texture,
SigPy birdcage coils on a k-space grid larger than the reconstruction (so the fastMRI crop matters),
white-matter-like lesions inserted into the fully sampled k-space with
:func:`mrirecon.evaluation.lesion.insert_lesions`, complex noise, then fastMRI ``equispaced_fraction``
undersampling at R = 4 and 8 (one mask per volume). Two baselines reconstruct every volume:
zero-filled RSS and CG-SENSE (maps from the ACS lines, 30 iterations, the physics layer's operator).
The dataset and the reconstruction folders are written to ``--work`` and scored with
:func:`mrirecon.evaluation.evaluate.evaluate` exactly as ``mrirecon evaluate`` does; the report
lands in ``--work/report``. The table gives SSIM/PSNR/NMSE (mean ± 2·SD over volumes) and the
lesions kept per method and acceleration, and the seconds ``evaluate`` took per volume and folder.

    python -m benchmarks.evaluation [--volumes 4] [--slices 6] [--size 160] [--coils 8] [--work DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from benchmarks.common import machine_info, print_table, time_call, write_json
from mrirecon.data.header import build_ismrmrd_header
from mrirecon.evaluation.evaluate import evaluate
from mrirecon.evaluation.lesion import insert_lesions, lesion_table_json, place_lesions
from mrirecon.evaluation.metrics import ssim
from mrirecon.evaluation.options import EvaluationOptions
from mrirecon.evaluation.torch_metrics import ssim_torch
from mrirecon.masks import create_mask_func, describe_mask
from mrirecon.physics import MultiCoilOperator, conjugate_gradient, estimate_coil_maps_acs, fft2c, ifft2c, rss
from mrirecon.runtime import configure_threads, tune_allocator

ACCELERATIONS = ((4, 0.08), (8, 0.04))
PAD = (32, 16)  # k-space grid = reconstruction size + PAD (readout, phase)


def simulate_volume(seed: int, slices: int, size: int, coils: int) -> tuple[np.ndarray, np.ndarray]:
    """Clean multi-coil k-space ``(S, C, H, W)`` of a textured Shepp-Logan volume, and its RSS target."""
    import sigpy
    import sigpy.mri
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    height, width = size + PAD[0], size + PAD[1]
    volume = np.zeros((slices, height, width), dtype=np.complex64)
    for s in range(slices):
        scale = 0.92 - 0.05 * abs(s - slices / 2) / slices
        inner = int(size * scale) // 2 * 2
        phantom = np.abs(sigpy.shepp_logan((inner, inner), dtype=np.complex64))
        texture = 1 + 0.04 * ndimage.gaussian_filter(rng.standard_normal(phantom.shape), 1.5) / 0.2
        r0, c0 = (height - inner) // 2, (width - inner) // 2
        volume[s, r0 : r0 + inner, c0 : c0 + inner] = phantom * texture
    yy, xx = np.mgrid[-1 : 1 : height * 1j, -1 : 1 : width * 1j]
    volume *= np.exp(1j * np.pi * (0.2 * xx + 0.1 * yy)).astype(np.complex64)
    maps = sigpy.mri.birdcage_maps((coils, height, width), r=1.3, dtype=np.complex64)
    coil_images = torch.from_numpy(volume[:, None] * maps[None])
    return fft2c(coil_images).numpy(), rss(coil_images, dim=1).numpy()


def _crop(x: torch.Tensor, size: int) -> np.ndarray:
    r0, c0 = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., r0 : r0 + size, c0 : c0 + size].to(torch.float32).numpy()


def build_dataset(work: Path, volumes: int, slices: int, size: int, coils: int) -> list[Path]:
    """Write targets and the zero-filled / CG-SENSE folders; returns the reconstruction folders."""
    targets = work / "targets"
    targets.mkdir(parents=True, exist_ok=True)
    methods = ("zero-filled", "sense-cg")
    folders = {(method, acc): work / f"{method}_R{acc}" for method in methods for acc, _ in ACCELERATIONS}
    for folder in folders.values():
        folder.mkdir(exist_ok=True)
    for v in range(volumes):
        name = f"file_sim_lesion_{v:03d}.h5"
        kspace, clean = simulate_volume(v, slices, size, coils)
        r0, c0 = PAD[0] // 2, PAD[1] // 2
        reference = clean[:, r0 : r0 + size, c0 : c0 + size]
        lesions = place_lesions(
            reference, 4, radius=3.0, contrast=1.5, irregularity=0.3, depth=1.5, seed=v, tissue_fraction=0.15
        )
        inserted = insert_lesions(kspace, lesions, crop_size=(size, size))
        rng = np.random.default_rng(1000 + v)
        level = float(np.sqrt(np.mean(np.abs(inserted.kspace) ** 2))) / 30 / np.sqrt(2)
        noise = (rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape)) * level
        full = torch.from_numpy((inserted.kspace + noise).astype(np.complex64))
        target = _crop(rss(ifft2c(full), dim=1), size)
        header = build_ismrmrd_header(
            encoded_matrix=(full.shape[-2], full.shape[-1], 1),
            recon_matrix=(size, size, 1),
            receiver_channels=coils,
        )
        with h5py.File(targets / name, "w") as f:
            f.create_dataset("kspace", data=full.numpy())
            f.create_dataset("reconstruction_rss", data=target)
            f.create_dataset("ismrmrd_header", data=header)
            f.create_dataset("lesion_labels", data=inserted.labels)
            f.attrs.update(acquisition="SIM_T2", max=float(target.max()), patient_id="sim")
            f.attrs["norm"] = float(np.linalg.norm(target))
            f.attrs["lesion_table"] = lesion_table_json(inserted.lesions)
        for acc, center in ACCELERATIONS:
            mask, _ = create_mask_func("equispaced_fraction", [center], [acc], seed=v)(full.shape)
            info = describe_mask(mask)
            masked = full * mask + 0.0
            zero_filled = rss(ifft2c(masked), dim=1)
            acs = torch.zeros_like(mask)
            acs[..., info.acs_slices[0]] = 1
            maps = estimate_coil_maps_acs(masked, acs)
            op = MultiCoilOperator(maps, mask)
            with torch.no_grad():
                sense = conjugate_gradient(op.normal, op.adjoint(masked), max_iter=30, damping=1e-3).abs()
            for method, image in (("zero-filled", zero_filled), ("sense-cg", sense)):
                with h5py.File(folders[(method, acc)] / name, "w") as f:
                    f.create_dataset("reconstruction", data=_crop(image, size))
                    f.create_dataset("zero_filled", data=_crop(zero_filled, size))
                    f.attrs.update(
                        model=method,
                        acceleration=float(acc),
                        mask_type="equispaced_fraction",
                        undersampling="retrospective",
                        acquisition="SIM_T2",
                        input_file=name,
                    )
    return list(folders.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--volumes", type=int, default=4)
    parser.add_argument("--slices", type=int, default=6)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the CI machines have 2)")
    parser.add_argument("--work", type=Path, default=None, help="Where to write the dataset and report.")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    tune_allocator()
    configure_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="mrirecon_eval_bench_"))

    start = time.perf_counter()
    folders = build_dataset(work, args.volumes, args.slices, args.size, args.coils)
    simulate_s = time.perf_counter() - start
    start = time.perf_counter()
    result = evaluate(folders, work / "targets", work / "report", EvaluationOptions(progress=False))
    evaluate_s = time.perf_counter() - start

    rows = []
    for g in result.groups:
        lesions = [
            r
            for r in result.lesion_rows
            if r["visible"]
            and r["model"] == g["model"]
            and g["acceleration"] in ("all", str(r["acceleration"]))
        ]
        kept = sum(bool(r["preserved"]) for r in lesions)
        rows.append(
            {
                "method": g["model"],
                "acceleration": g["acceleration"],
                "volumes": g["ssim"].n,
                "ssim": g["ssim"].format(),
                "psnr": g["psnr"].format(),
                "nmse": g["nmse"].format(),
                "lesions_kept": f"{kept}/{len(lesions)}",
                "median_preservation": float(np.median([r["preservation"] for r in lesions])),
            }
        )
    print(
        f"\nBaselines on {args.volumes} simulated lesion volumes ({args.slices} slices, {args.size}², "
        f"{args.coils} coils), fastMRI metrics (mean ± 2·SD over volumes)\n"
    )
    print_table(
        ["method", "R", "volumes", "SSIM", "PSNR (dB)", "NMSE", "lesions kept", "median preservation"],
        [list(r.values()) for r in rows],
    )

    # SSIM of one volume: NumPy reference (SciPy filters) vs the batched torch version, CPU
    with h5py.File(work / "targets" / sorted((work / "targets").glob("*.h5"))[0].name) as f:
        gt = f["reconstruction_rss"][()]
    pred = gt + 0.01 * gt.max() * np.random.default_rng(0).standard_normal(gt.shape).astype(np.float32)
    cpu = torch.device("cpu")
    numpy_s = time_call(lambda: ssim(gt, pred), cpu, repeats=5)
    gt_t, pred_t = torch.from_numpy(gt), torch.from_numpy(pred)
    torch_s = time_call(lambda: ssim_torch(pred_t, gt_t, gt_t.max()).mean(), cpu, repeats=5)
    per_volume = evaluate_s / (args.volumes * len(folders))
    print(
        f"\nsimulate + reconstruct: {simulate_s:.1f} s; "
        f"evaluate (metrics, lesions, report): {evaluate_s:.1f} s = {per_volume:.2f} s per volume and folder"
    )
    print(f"SSIM of one {gt.shape} volume: NumPy {numpy_s * 1e3:.1f} ms, torch {torch_s * 1e3:.1f} ms (CPU)")
    print(f"report: {result.report_html}")
    payload = {
        "machine": machine_info(cpu),
        "settings": vars(args) | {"work": str(work), "json": str(args.json) if args.json else None},
        "rows": rows,
        "simulate_seconds": simulate_s,
        "evaluate_seconds": evaluate_s,
        "evaluate_seconds_per_volume_and_folder": per_volume,
        "ssim_numpy_ms": numpy_s * 1e3,
        "ssim_torch_ms": torch_s * 1e3,
    }
    print(f"wrote {write_json('evaluation', payload, args.json)}")


if __name__ == "__main__":
    main()
