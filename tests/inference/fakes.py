"""Small stand-ins for the pieces other layers provide (readers, transforms, models), for tests.

- :func:`write_input`: a fastMRI-layout HDF5 input (``kspace``, optional ``mask``, header, attrs);
- :class:`FakeVolume` / :class:`FakeTransform`: what inference uses of ``open_volume`` and
  ``ReconTransform`` (docs/interfaces.md §1, §2), built on mrirecon.physics and mrirecon.masks;
- models for the registry: ``fake_zero_filled`` (classical: the SENSE combination of the zero-filled
  coil images with RSS-normalised maps, i.e. exactly their RSS), ``fake_learned`` (one weight per
  coil: takes only the coil count it was built for), ``fake_slow`` (sleeps: lets a test kill a run
  half-way).

:func:`install` switches them in (``monkeypatch`` in a test, or module attributes in a subprocess
started by ``tests/inference/run_cli.py``).
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

from mrirecon.data.header import build_ismrmrd_header
from mrirecon.data.sample import ReconSample
from mrirecon.errors import DataError
from mrirecon.masks import MaskFunc, apply_mask, volume_seed
from mrirecon.models import registry
from mrirecon.models.base import ReconOutput, Reconstructor
from mrirecon.physics import fft2c, ifft2c, normalize_coil_maps, rss, sense_reduce

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
    """A fastMRI-layout input file (with ``mask``: prospectively undersampled; ``geometry``: a
    :class:`~mrirecon.export.geometry.SliceGeometry` written as the ``geometry/`` group)."""
    kspace = phantom_kspace(slices, coils, size, seed)
    h, w = size
    crop = crop or (h, w)
    header = header or build_ismrmrd_header(encoded_matrix=(h, w, 1), recon_matrix=(crop[0], crop[1], 1))
    if mask is not None:
        kspace = kspace * (mask if mask.ndim == 2 else mask[None, :])
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace
        f["ismrmrd_header"] = np.bytes_(header.encode())
        if mask is not None:
            f["mask"] = mask.astype(bool)
        f.attrs["acquisition"] = "AXT2"
        f.attrs["crop"] = np.asarray(crop)
        if patient_id:
            f.attrs["patient_id"] = patient_id
        if geometry is not None:
            geometry.write(f.create_group("geometry"))
    return path


def rss_volume(path: Path) -> np.ndarray:
    """float32 ``(S, H, W)``: RSS of the coil images of the file's k-space (the zero-filled oracle)."""
    with h5py.File(path) as f:
        kspace = torch.from_numpy(f["kspace"][()])
    return rss(ifft2c(kspace), dim=1).numpy().astype(np.float32)


class FakeVolume:
    """What inference uses of ``RawVolume`` (lazy, re-openable)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError("no such file", path=self.path)
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as error:
            raise DataError(f"not a readable HDF5 file ({error})", path=self.path) from error
        if "kspace" not in self._file:
            self._file.close()
            raise DataError("no 'kspace' dataset", path=self.path)
        shape = self._file["kspace"].shape
        self.num_slices = int(shape[0])
        self.kspace_shape = (int(shape[1]), int(shape[2]), int(shape[3]))
        self.mask = self._file["mask"][()] if "mask" in self._file else None
        crop = self._file.attrs.get("crop", self.kspace_shape[1:])
        self.crop_size = (int(crop[0]), int(crop[1]))
        self.centered = True
        self.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self._file.attrs.items()}
        self.acquisition = str(self.attrs.get("acquisition", ""))
        header = self._file.get("ismrmrd_header")
        self.header_xml = header[()].decode() if header is not None else None
        group = self._file.get("geometry")
        self.geometry = None
        if group is not None:
            self.geometry = {k: group[k][()] for k in group} | dict(group.attrs)

    def read_kspace(self, index: int) -> np.ndarray:
        data = np.asarray(self._file["kspace"][index], dtype=np.complex64)
        if not np.all(np.isfinite(data)):
            raise DataError(f"slice {index} holds NaN or infinite k-space values", path=self.path)
        return data

    def close(self) -> None:
        self._file.close()


def fake_open_input(path: Any, *, npy_axes: str | None = None) -> FakeVolume:
    return FakeVolume(Path(path))


@dataclass(frozen=True)
class FakeTransform:
    """One slice → ReconSample: own mask, else ``mask_func`` seeded from the file name, else none;
    coil maps: the zero-filled coil images over their RSS; ``scale``: the zero-filled RSS maximum."""

    mask_func: MaskFunc | None = None
    coil_maps: str = "acs"

    def __call__(self, volume: FakeVolume, index: int) -> ReconSample:
        kspace = torch.from_numpy(volume.read_kspace(index))
        _, h, w = kspace.shape
        if volume.mask is not None:
            own = torch.from_numpy(volume.mask.astype(np.float32))
            mask = own.reshape(1, 1, w) if own.ndim == 1 else own.reshape(1, h, w)
            masked = kspace * mask
            acceleration = float(mask.numel() / mask.sum())
        elif self.mask_func is not None:
            masked, mask, _ = apply_mask(kspace, self.mask_func, seed=volume_seed(volume.path.name))
            mask = mask.reshape(1, *mask.shape[-2:])
            acceleration = float(mask.numel() / mask.sum())
        else:
            masked, mask, acceleration = kspace, torch.ones(1, 1, w), 1.0
        images = ifft2c(masked)
        scale = float(rss(images[None], dim=1).max())
        return ReconSample(
            masked_kspace=(masked / scale).to(torch.complex64),
            mask=mask.to(torch.float32),
            coil_maps=normalize_coil_maps(images[None])[0].to(torch.complex64),
            target=torch.zeros(volume.crop_size),
            fname=volume.path.name,
            slice_num=index,
            max_value=0.0,
            crop_size=volume.crop_size,
            scale=scale,
            num_low_frequencies=0,
            acceleration=acceleration,
            lesion_labels=torch.zeros(0, 0, dtype=torch.int16),
        )


def fake_make_transform(*, mask_func: MaskFunc | None, coil_maps: str) -> FakeTransform:
    return FakeTransform(mask_func, coil_maps)


def fake_make_sample(transform: Any, volume: Any, index: int) -> ReconSample:
    return transform(volume, index)


# ---------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ZeroFilledConfig:
    """No parameters."""


class FakeZeroFilled(Reconstructor):
    trainable = False

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
    """A weight per coil (initialised to 1: the zero-filled SENSE image); any other coil count fails."""

    def __init__(self, config: LearnedConfig):
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(torch.ones(config.coils))

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        coils = ifft2c(masked_kspace) * self.weight.view(1, -1, 1, 1)
        image = sense_reduce(coils, coil_maps)
        return ReconOutput(image, [[image]])


@dataclass(frozen=True)
class SlowConfig:
    seconds: float = 0.3


class FakeSlow(FakeZeroFilled):
    def __init__(self, config: SlowConfig):  # type: ignore[override]
        Reconstructor.__init__(self)
        self.config = config

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        time.sleep(self.config.seconds)
        return super().forward(masked_kspace, mask, coil_maps)


@dataclass(frozen=True)
class NanConfig:
    """No parameters."""


class FakeNan(FakeZeroFilled):
    """Returns NaN (a broken model)."""

    def __init__(self, config: NanConfig):  # type: ignore[override]
        Reconstructor.__init__(self)
        self.config = config

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, coil_maps: torch.Tensor
    ) -> ReconOutput:
        image = super().forward(masked_kspace, mask, coil_maps).image * float("nan")
        return ReconOutput(image, [[image]])


FAKE_MODELS = {
    "fake_zero_filled": registry.ModelEntry("fake_zero_filled", FakeZeroFilled, ZeroFilledConfig, "test"),
    "fake_learned": registry.ModelEntry("fake_learned", FakeLearned, LearnedConfig, "test"),
    "fake_slow": registry.ModelEntry("fake_slow", FakeSlow, SlowConfig, "test"),
    "fake_nan": registry.ModelEntry("fake_nan", FakeNan, NanConfig, "test"),
}


def install(setattr_: Any = None) -> None:
    """Switch the fakes in: ``setattr_`` is ``monkeypatch.setattr`` in a test, plain setattr otherwise."""
    from mrirecon.inference import components

    put = setattr_ or setattr
    put(components, "open_input", fake_open_input)
    put(components, "make_transform", fake_make_transform)
    put(components, "make_sample", fake_make_sample)
    put(registry, "_REGISTRY", {**registry._registry(), **FAKE_MODELS})
