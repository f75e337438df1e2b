"""The demo: simulate a multi-coil acquisition, undersample it, reconstruct it and score it.

Steps: a Shepp-Logan slice with a smooth background phase, birdcage coil maps (SigPy) and complex
Gaussian noise → fully sampled coil k-space → fastMRI ``equispaced_fraction`` undersampling →
coil maps from the fully sampled centre → zero-filled (RSS) and SENSE (conjugate gradient)
reconstructions → SSIM, PSNR and NMSE against the fully sampled RSS reference, and a PNG.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mrirecon.evaluation.metrics import volume_metrics
from mrirecon.masks import create_mask_func, describe_mask
from mrirecon.physics import (
    MultiCoilOperator,
    conjugate_gradient,
    estimate_coil_maps_acs,
    fft2c,
    ifft2c,
    rss,
)

__all__ = ["run_demo", "simulate_slice"]


def simulate_slice(size: int, coils: int, seed: int, snr: float = 40.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A noisy fully sampled multi-coil k-space slice of a Shepp-Logan phantom.

    Returns:
        ``(kspace, reference)``: k-space ``(1, C, H, W)`` complex64 and the fully sampled RSS
        image ``(1, H, W)`` float32.
    """
    import sigpy
    import sigpy.mri

    rng = np.random.default_rng(seed)
    image = sigpy.shepp_logan((size, size), dtype=np.complex64)
    y, x = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    phase = np.exp(1j * np.pi * (0.3 * x + 0.2 * y + 0.1 * rng.standard_normal()))
    maps = sigpy.mri.birdcage_maps((coils, size, size), r=1.2, dtype=np.complex64)
    coil_images = torch.from_numpy((maps * image * phase).astype(np.complex64))[None]
    kspace = fft2c(coil_images)
    signal = float(kspace.abs().pow(2).mean().sqrt())
    noise = rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape)
    kspace = kspace + torch.from_numpy((noise * signal / snr / np.sqrt(2)).astype(np.complex64))
    reference = rss(ifft2c(kspace)).to(torch.float32)
    return kspace, reference


def run_demo(
    output_dir: Path,
    *,
    size: int = 160,
    coils: int = 8,
    acceleration: float = 4.0,
    seed: int = 0,
    echo: Callable[[str], object] = print,
) -> dict[str, dict[str, float]]:
    """Run the demo and return the metrics per method; writes ``demo.png`` into ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    echo(f"Simulating a {coils}-coil {size}×{size} slice (seed {seed})...")
    kspace, reference = simulate_slice(size, coils, seed)
    mask_func = create_mask_func("equispaced_fraction", [0.08], [acceleration], seed=seed)
    mask, _ = mask_func(kspace.shape)
    info = describe_mask(mask)
    masked = kspace * mask + 0.0
    echo(
        f"Undersampled: equispaced_fraction, effective acceleration {info.acceleration:.2f}, "
        f"{info.num_low_frequencies} centre lines"
    )

    timings: dict[str, float] = {}
    start = time.perf_counter()
    zero_filled = rss(ifft2c(masked))
    timings["zero-filled"] = time.perf_counter() - start

    start = time.perf_counter()
    acs = torch.zeros_like(mask)
    acs[..., info.acs_slices[0]] = 1
    maps = estimate_coil_maps_acs(masked, acs)
    operator = MultiCoilOperator(maps, mask)
    sense = conjugate_gradient(operator.normal, operator.adjoint(masked), max_iter=30, damping=1e-3).abs()
    timings["SENSE (CG)"] = time.perf_counter() - start

    results: dict[str, dict[str, float]] = {}
    ref = reference.numpy()
    for name, image in (("zero-filled", zero_filled), ("SENSE (CG)", sense)):
        results[name] = volume_metrics(ref, image.to(torch.float32).numpy())
        results[name]["seconds"] = timings[name]

    echo("")
    echo(f"{'method':<14}{'SSIM':>8}{'PSNR (dB)':>11}{'NMSE':>9}{'time (s)':>10}")
    for name, m in results.items():
        echo(f"{name:<14}{m['ssim']:>8.4f}{m['psnr']:>11.2f}{m['nmse']:>9.4f}{m['seconds']:>10.3f}")
    figure = output_dir / "demo.png"
    _save_figure(
        figure, ref[0], {k: v[0].numpy() for k, v in (("zero-filled", zero_filled), ("SENSE", sense))}
    )
    echo(f"\nMetrics follow fastMRI's evaluate.py (volume max as data range). Picture: {figure}")
    return results


def _save_figure(path: Path, reference: np.ndarray, images: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"reference (fully sampled)": reference, **images}
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    vmax = float(np.percentile(reference, 99.5))
    for ax, (title, image) in zip(axes, panels.items()):
        ax.imshow(image, cmap="gray", vmin=0, vmax=vmax)
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
