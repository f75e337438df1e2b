"""L1-wavelet compressed sensing (Lustig et al. 2007) through SigPy, with ESPIRiT coil maps.

Per slice it solves ``min_x ½‖M·F·S·x − y‖² + λ·s·‖Ψx‖₁`` with SigPy's
``sigpy.mri.app.L1WaveletRecon`` (FISTA, step size from a power iteration; Ψ a Daubechies-4
wavelet transform by default), on the CPU, and returns the images on the input's device.

Coil maps: by default ESPIRiT maps (Uecker et al. 2014, :func:`mrirecon.physics.estimate_coil_maps_espirit`)
estimated from the slice's own measured k-space, as the classical pipeline (and fastMRI's BART
baseline) does; ``coil_maps="given"`` uses the maps passed in instead. The calibration width is
the configured one, reduced where needed so that SigPy's centred calibration block lies inside the
mask's fully sampled centre (for 1-D line masks that means at most the number of centre lines).

Scale: ``s`` is the maximum of the slice's zero-filled RSS image, so λ is relative and means the
same whatever the scale of the data (the problem is positively homogeneous: scaling ``y`` by α
scales the solution by α). The result is in the input's scale, like ``Aᴴy`` and SENSE: with
Σ_c |S_c|² = 1 its magnitude is comparable with theirs and with the RSS of the fully sampled
coil images. Where the maps are zero (outside ESPIRiT's support) the data say nothing about the
image, and the result is set to zero there, as SENSE's is (FISTA would otherwise let the wavelet
shrinkage's leakage accumulate in those pixels). ESPIRiT maps carry their own phase, so the phase
of the result can differ from that of models given other maps; compare magnitudes.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from mrirecon.errors import ModelError, Notice
from mrirecon.masks import describe_mask
from mrirecon.models.base import ReconOutput, Reconstructor
from mrirecon.models.baselines.inputs import check_inputs
from mrirecon.physics import (
    espirit_calibration_width,
    espirit_kernel_width,
    estimate_coil_maps_espirit,
    ifft2c,
    rss,
)

__all__ = ["L1WaveletCS", "L1WaveletConfig"]


@dataclass(frozen=True)
class L1WaveletConfig:
    """Settings of :class:`L1WaveletCS`.

    Attributes:
        regularization: λ, relative to the maximum of the slice's zero-filled RSS image.
        iterations: FISTA iterations.
        wavelet: PyWavelets name of the discrete wavelet (``db4``: SigPy's default).
        coil_maps: ``"espirit"``: estimate ESPIRiT maps from the measured k-space; ``"given"``: use
            the maps passed to ``forward``.
        espirit_calib_width: Largest calibration width for ESPIRiT (SigPy's default 24).
        espirit_threshold: Singular-value threshold of the calibration matrix.
        espirit_kernel_width: ESPIRiT kernel width.
        espirit_crop: Eigenvalue threshold below which the maps are zero (background).
    """

    regularization: float = 0.005
    iterations: int = 100
    wavelet: str = "db4"
    coil_maps: Literal["espirit", "given"] = "espirit"
    espirit_calib_width: int = 24
    espirit_threshold: float = 0.02
    espirit_kernel_width: int = 6
    espirit_crop: float = 0.95

    def __post_init__(self) -> None:
        if self.regularization < 0:
            raise ValueError(f"regularization must be non-negative, got {self.regularization}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {self.iterations}")
        if self.coil_maps not in ("espirit", "given"):
            raise ValueError(f"coil_maps must be 'espirit' or 'given', got {self.coil_maps!r}")
        import pywt  # light; SigPy depends on it

        if self.wavelet not in pywt.wavelist(kind="discrete"):
            raise ValueError(
                f"wavelet {self.wavelet!r} is not a discrete wavelet PyWavelets knows "
                "(e.g. db4, haar, sym8; see pywt.wavelist(kind='discrete'))"
            )
        if self.espirit_kernel_width < 1 or self.espirit_calib_width <= self.espirit_kernel_width:
            raise ValueError(
                f"espirit_calib_width ({self.espirit_calib_width}) must exceed espirit_kernel_width "
                f"({self.espirit_kernel_width}) ≥ 1"
            )
        if not 0 <= self.espirit_crop <= 1:
            raise ValueError(f"espirit_crop must be in [0, 1], got {self.espirit_crop}")


@contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """Seed NumPy's global generator (SigPy's power iterations start from it), then restore it."""
    state = np.random.get_state()  # noqa: NPY002 (SigPy draws from the legacy global generator)
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


class L1WaveletCS(Reconstructor):
    """L1-wavelet compressed sensing through SigPy (classical: no parameters, no checkpoint).

    Shapes: as :class:`~mrirecon.models.base.Reconstructor`; returns ``(B, H, W)`` complex64 on the
    input's device and ``steps = [[image]]``. Not differentiable (SigPy runs on NumPy arrays).
    Deterministic: SigPy's random power-iteration starts are seeded (NumPy's global generator is
    restored afterwards).
    """

    trainable = False

    def __init__(self, config: L1WaveletConfig | None = None):
        super().__init__()
        self.config = config or L1WaveletConfig()

    def needs_coil_maps(self) -> bool:
        return self.config.coil_maps == "given"

    def _slice_maps(self, kspace: torch.Tensor, mask: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
        """``(C, H, W)`` maps for one slice (``kspace (1, C, H, W)``, ``mask (1, 1, 1|H, W)``), CPU.

        ESPIRiT calibrates on the largest centred block inside the mask's fully sampled centre
        with a kernel of at most half its width (3 for a 7-line centre). Where that is impossible
        (no centre of 4 samples) or ESPIRiT finds no sensitivity, the given maps are used with a
        one-line warning; without given maps that is a :class:`ModelError`.
        """
        cfg = self.config
        if cfg.coil_maps == "given":
            return given
        info = describe_mask(mask)
        width = espirit_calibration_width(
            info.acs_slices, (int(kspace.shape[-2]), int(kspace.shape[-1])), cfg.espirit_calib_width
        )
        kernel = espirit_kernel_width(width, cfg.espirit_kernel_width)
        if kernel == 0:
            return self._fall_back(
                given,
                f"the fully sampled centre of the mask is {_centre_text(info.acs_shape)}, "
                "too small for ESPIRiT",
            )
        with _numpy_seed(0):  # SigPy's power iterations start from NumPy's global generator
            maps = estimate_coil_maps_espirit(
                kspace,
                calib_width=width,
                threshold=cfg.espirit_threshold,
                kernel_width=kernel,
                crop=cfg.espirit_crop,
            )
        if not bool(maps.abs().amax() > 0):
            return self._fall_back(
                given,
                f"ESPIRiT found no coil sensitivity above espirit_crop {cfg.espirit_crop:g} in a "
                f"{width} × {width} calibration block",
            )
        return maps[0]

    @staticmethod
    def _fall_back(given: torch.Tensor, reason: str) -> torch.Tensor:
        if given.numel() == 0 or not bool(given.abs().amax() > 0):
            raise ModelError(
                reason,
                hint="lower espirit_crop, use a mask with a larger fully sampled centre, or give coil maps",
            )
        warnings.warn(Notice(f"CS: {reason}; using the data layer's coil maps instead"), stacklevel=3)
        return given

    @torch.no_grad()
    def coil_maps_for(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> torch.Tensor:
        """The coil maps :meth:`forward` uses: ESPIRiT's from the measured k-space, or the given ones.

        Shapes: as :meth:`forward`; returns ``(B, C, H, W)`` complex64 on the input's device.
        """
        coil_maps = _none_as_zeros(masked_kspace, coil_maps)
        dims = check_inputs(masked_kspace, mask, coil_maps)
        kspace, masks, given = self._on_cpu(masked_kspace, mask, coil_maps, dims["B"])
        maps = [self._slice_maps(kspace[b : b + 1], masks[b : b + 1], given[b]) for b in range(dims["B"])]
        return torch.stack(maps).to(masked_kspace.device)

    @staticmethod
    def _on_cpu(
        masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor, batch: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            masked_kspace.detach().to("cpu", torch.complex64),
            mask.detach().to("cpu", torch.float32).expand(batch, -1, -1, -1),
            coil_maps.detach().to("cpu", torch.complex64),
        )

    @torch.no_grad()
    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        """Reconstruct each slice of the batch in turn on the CPU."""
        coil_maps = _none_as_zeros(masked_kspace, coil_maps)
        dims = check_inputs(masked_kspace, mask, coil_maps)
        from sigpy.mri.app import L1WaveletRecon  # lazy: numba start-up costs about a second

        cfg = self.config
        kspace, masks, given = self._on_cpu(masked_kspace, mask, coil_maps, dims["B"])
        images = []
        for b in tqdm(
            range(dims["B"]),
            desc="L1-wavelet CS",
            unit="slice",
            leave=False,
            disable=dims["B"] < 2 or not sys.stderr.isatty(),  # no bar in logs
        ):
            scale = float(rss(ifft2c(kspace[b]), dim=0).max())
            if scale == 0.0:
                images.append(np.zeros((dims["H"], dims["W"]), dtype=np.complex64))
                continue
            maps = self._slice_maps(kspace[b : b + 1], masks[b : b + 1], given[b])
            with _numpy_seed(0):  # the same input gives the same image
                image = L1WaveletRecon(
                    (kspace[b] / scale).numpy(),
                    maps.numpy(),
                    cfg.regularization,
                    weights=masks[b, 0].expand(dims["H"], dims["W"]).numpy(),
                    wave_name=cfg.wavelet,
                    max_iter=cfg.iterations,
                    show_pbar=False,
                ).run()
            # Where the maps vanish the data say nothing and FISTA lets the wavelet shrinkage's
            # leakage accumulate; the image is zero there, as SENSE's is.
            support = (rss(maps, dim=0) > 0).numpy()
            images.append(np.asarray(image, dtype=np.complex64) * scale * support)
        image = torch.from_numpy(np.stack(images)).to(masked_kspace.device)
        return ReconOutput(image, [[image]])


def _none_as_zeros(masked_kspace: torch.Tensor, coil_maps: torch.Tensor) -> torch.Tensor:
    """No coil maps (``--coil-maps none``: an empty tensor) as all-zero maps of the k-space's shape,
    which ESPIRiT's fall-back reads as "none given"."""
    if coil_maps.numel() > 0:
        return coil_maps
    return torch.zeros_like(masked_kspace, dtype=torch.complex64)


def _centre_text(shape: tuple[int, ...]) -> str:
    """A mask's fully sampled centre in words: ``7 lines`` (1-D), ``12 × 12 samples`` (2-D)."""
    if len(shape) == 1:
        return f"{shape[0]} line{'s' if shape[0] != 1 else ''}"
    return " × ".join(str(n) for n in shape) + " samples"
