"""Test inputs and test-only models for the inference tests.

- :func:`write_input`: a small fastMRI-layout input written by the data layer's own writer
  (``kspace``, header, optional ``mask``, ``geometry/``, attrs); :func:`rss_volume`: its RSS;
- models registered for the tests only: ``fake_learned`` (one weight per coil: takes only the
  coil count it was built for, as a model trained for a fixed coil count would), ``fake_slow``
  (sleeps: lets a test kill a run half-way) and ``fake_nan`` (a broken model); the last two build
  on :class:`FakeZeroFilled` (the SENSE combination of the zero-filled coil images).

Readers, transforms and the real models are mrirecon's own. :func:`install` registers the test
models (``monkeypatch`` in a test, module attributes in a subprocess started by
``tests/inference/run_cli.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn

from mrirecon.data.fastmri_writer import write_volume
from mrirecon.data.header import build_ismrmrd_header
from mrirecon.errors import ModelError
from mrirecon.models import registry
from mrirecon.models.base import ReconOutput, Reconstructor
from mrirecon.physics import fft2c, ifft2c, rss, sense_reduce

# ---------------------------------------------------------------------------------------- inputs


def phantom_kspace(slices: int, coils: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """complex64 ``(slices, coils, H, W)`` centred k-space of a smooth ellipse seen by smooth coils."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    out = np.zeros((slices, coils, h, w), dtype=np.complex64)
    for s in range(slices):
        image = (xx**2 / 0.6**2 + yy**2 / 0.8**2 < 1) * (1.0 + 0.3 * np.cos(3 * xx + s))
        image = image + 0.5 * ((xx - 0.2) ** 2 + (yy + 0.1) ** 2 < 0.04)
        image = image * (1 + 0.1 * rng.standard_normal())
        for c in range(coils):
            angle = 2 * np.pi * c / coils
            coil = np.exp(-((xx - 0.8 * np.cos(angle)) ** 2 + (yy - 0.8 * np.sin(angle)) ** 2))
            coil = coil * np.exp(1j * angle)
            out[s, c] = image * coil
    data = torch.from_numpy(out)
    return (fft2c(data) * 1e-3).numpy().astype(np.complex64)


def write_input(
    path: Path,
    *,
    slices: int = 3,
    coils: int = 4,
    size: tuple[int, int] = (32, 24),
    seed: int = 0,
    crop: tuple[int, int] | None = None,
    mask: np.ndarray | None = None,
    patient_id: str = "",
    header: str | None = None,
    geometry: Any = None,
) -> Path:
    """A fastMRI-layout input (``crop``: the header's reconstruction size; with ``mask``:
    prospectively undersampled; ``geometry``: a :class:`~mrirecon.export.geometry.SliceGeometry`)."""
    kspace = phantom_kspace(slices, coils, size, seed)
    h, w = size
    crop = crop or (h, w)
    header = header or build_ismrmrd_header(encoded_matrix=(h, w, 1), recon_matrix=(crop[0], crop[1], 1))
    if mask is not None:
        kspace = kspace * (mask if mask.ndim == 2 else mask[None, :])
    arrays = None
    if geometry is not None:
        arrays = {
            name: getattr(geometry, name)
            for name in ("position", "read_dir", "phase_dir", "slice_dir", "patient_table_position")
        }
        arrays["slice_thickness_mm"] = geometry.slice_thickness_mm
    attrs = {"acquisition": "AXT2"} | ({"patient_id": patient_id} if patient_id else {})
    return write_volume(path, kspace=kspace, header_xml=header, mask=mask, geometry=arrays, attrs=attrs)


def rss_volume(path: Path) -> np.ndarray:
    """float32 ``(S, H, W)``: RSS of the coil images of the file's k-space (the zero-filled oracle)."""
    with h5py.File(path) as f:
        kspace = torch.from_numpy(f["kspace"][()])
    return rss(ifft2c(kspace), dim=1).numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ZeroFilledConfig:
    """No parameters."""


class FakeZeroFilled(Reconstructor):
    trainable = False
    config: object  # the subclasses below take configs of their own (narrowed there)

    def __init__(self, config: ZeroFilledConfig):
        super().__init__()
        self.config = config

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        image = sense_reduce(ifft2c(masked_kspace), coil_maps)
        return ReconOutput(image, [[image]])


@dataclass(frozen=True)
class LearnedConfig:
    coils: int = 4


class FakeLearned(Reconstructor):
    """A weight per coil (initialised to 1: the zero-filled SENSE image); another coil count is a
    ModelError it raises itself (what a model with coil-dependent weights must do)."""

    def __init__(self, config: LearnedConfig):
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(torch.ones(config.coils))

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        if masked_kspace.shape[1] != self.config.coils:
            raise ModelError(
                f"model 'fake_learned' cannot take k-space of {masked_kspace.shape[1]} coil(s): "
                f"it was trained for {self.config.coils}"
            )
        coils = ifft2c(masked_kspace) * self.weight.view(1, -1, 1, 1)
        image = sense_reduce(coils, coil_maps)
        return ReconOutput(image, [[image]])


@dataclass(frozen=True)
class SlowConfig:
    seconds: float = 0.3
    #: A file touched at every call (a test waits for it to know the run is in its loop).
    marker: str = ""


class FakeSlow(FakeZeroFilled):
    config: SlowConfig

    def __init__(self, config: SlowConfig):
        Reconstructor.__init__(self)
        self.config = config

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        if self.config.marker:
            with open(self.config.marker, "a") as handle:
                handle.write("called\n")
        time.sleep(self.config.seconds)
        return super().forward(masked_kspace, mask, coil_maps)


@dataclass(frozen=True)
class NanConfig:
    """No parameters."""


class FakeNan(FakeZeroFilled):
    """Returns NaN (a broken model)."""

    config: NanConfig

    def __init__(self, config: NanConfig):
        Reconstructor.__init__(self)
        self.config = config

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        image = super().forward(masked_kspace, mask, coil_maps).image * float("nan")
        return ReconOutput(image, [[image]])


@dataclass(frozen=True)
class BugConfig:
    pass


class FakeBug(FakeZeroFilled):
    """Raises a plain RuntimeError (a programming error, not bad input)."""

    config: BugConfig

    def __init__(self, config: BugConfig):
        Reconstructor.__init__(self)
        self.config = config

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        raise RuntimeError("bug")


FAKE_MODELS = {
    "fake_learned": (FakeLearned, LearnedConfig),
    "fake_slow": (FakeSlow, SlowConfig),
    "fake_nan": (FakeNan, NanConfig),
    "fake_bug": (FakeBug, BugConfig),
}


def install() -> None:
    """Register the test models through the public registry."""
    for name, (model_class, config_class) in FAKE_MODELS.items():
        registry.register_model(name, model_class, config_class, "test")


def uninstall() -> None:
    for name in FAKE_MODELS:
        registry.unregister_model(name)


def direct_reconstruction(path: Path, model: Reconstructor, mask_func: Any = None) -> np.ndarray:
    """The oracle of a pipeline run: slice by slice, the data layer's transform, the model, times
    ``scale``, cropped — float32 ``(S, h, w)``."""
    from mrirecon.data.transforms import ReconTransform
    from mrirecon.data.volume import open_volume
    from mrirecon.shapes import center_crop

    transform = ReconTransform(mask_func=mask_func, deterministic_mask=True, coil_maps="acs")
    out = []
    with open_volume(path) as volume, torch.inference_mode():
        for index in range(volume.num_slices):
            s = transform(volume, index)
            image = model(s.masked_kspace[None], s.mask[None], s.coil_maps[None]).image[0]
            out.append(center_crop((image.abs() * s.scale).numpy(), volume.crop_size))
    return np.stack(out).astype(np.float32)


def install_checkpoint(path: Path, name: str) -> Path:
    """A model file of a registered test model (default config), for runs in another process."""
    from mrirecon.models.io import save_model

    model_class, config_class = FAKE_MODELS[name]
    config = config_class()
    return save_model(path, name, config, model_class(config))
