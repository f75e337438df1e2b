"""``ReconTransform``: one slice of a :class:`~mrirecon.data.raw.RawVolume` → a ``ReconSample``.

Steps, in order:

1. Read the slice's k-space ``(C, H, W)``.
2. Sampling. Input undersampled before mrirecon saw it (prospective data, fastMRI test files)
   keeps its own mask. Fully sampled input is undersampled with the mask function when one is
   given: with a per-volume seed derived from the file name when ``deterministic_mask`` (the
   same mask on every slice, epoch and machine: validation, test, inference), with fresh
   randomness otherwise (training); columns outside the header's acquired range (fastMRI's
   zero padding) are never marked sampled. Without a mask function, fully sampled input stays
   fully sampled (mask of ones over the acquired columns).
3. Normalisation. ``scale`` is the maximum of the zero-filled RSS image of the measured k-space
   (``max |RSS(F⁻¹ y)|``), so every input, prospective ones included, has one. The sample holds
   ``y / scale``, ``target / scale`` and ``max_value / scale``; a reconstruction ``x̂`` of the
   sample returns to the input's intensity scale as ``x̂ · scale`` (the maps are unit-free). A
   slice whose measured k-space is all zero cannot be normalised (the reader already refuses it).
4. Coil maps: ``"acs"`` from the fully sampled centre of the mask (a tapered low-resolution
   estimate, cheap), ``"espirit"`` (SigPy ESPIRiT on the calibration region, cached per volume),
   or ``"none"`` (an empty ``(0, 0, 0)`` tensor, for models that estimate their own maps and for
   loader benchmarks).
5. Target, ``max_value`` and lesion labels, centre-cropped to ``crop_size`` (the header's
   reconstruction size unless given); a zero target and ``max_value`` 0 without a reference.

The transform is a frozen dataclass: picklable (DataLoader workers get a copy) and built from
typed arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from mrirecon.data.coilmaps import EspiritCache, acs_coil_maps, espirit_calib_width
from mrirecon.data.raw import RawVolume, center_crop
from mrirecon.data.sample import ReconSample
from mrirecon.errors import ConfigError, DataError
from mrirecon.masks import MaskFunc, describe_mask, mask_seed
from mrirecon.physics import ifftnc, rss

__all__ = ["COIL_MAP_METHODS", "ReconTransform", "zero_filled_max"]

COIL_MAP_METHODS = ("acs", "espirit", "none")
_EMPTY_LABELS = torch.zeros((0, 0), dtype=torch.int16)


def _dims(mask: torch.Tensor) -> tuple[int, ...]:
    return (-1,) if mask.shape[-2] == 1 else (-2, -1)


def _to_layout(mask: torch.Tensor, centered: bool) -> torch.Tensor:
    """A mask drawn in the centred view, in the data's layout (``ifftshift`` for uncentred data)."""
    return mask if centered else torch.fft.ifftshift(mask, dim=_dims(mask))


def _to_centred(mask: torch.Tensor, centered: bool) -> torch.Tensor:
    """A mask in the data's layout, in the centred view (``fftshift`` for uncentred data)."""
    return mask if centered else torch.fft.fftshift(mask, dim=_dims(mask))


def _apply(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the unsampled locations of ``kspace`` in place (exact +0, no sign bit left over)."""
    if mask.shape[-2] == 1:  # a line mask: write only the unsampled columns
        return kspace.index_fill_(-1, (mask.reshape(-1) == 0).nonzero().squeeze(1), 0)
    return kspace.masked_fill_(mask == 0, 0)


def zero_filled_max(masked_kspace: torch.Tensor) -> float:
    """``max |RSS(F⁻¹ y)|`` of k-space ``(C, H, W)``: the normalisation ``scale``.

    The same for centred and uncentred data, and computed without the centring shifts: shifting
    k-space multiplies the image by a unit-modulus phase ramp and shifting the image permutes its
    pixels, and neither changes the largest RSS value. So: one plain 2-D inverse FFT and the RSS.
    """
    images = ifftnc(masked_kspace, 2, centered=False)  # the plain orthonormal inverse FFT
    return float(rss(images, dim=0).max())


def _mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """A stored bool mask ``(W,)``/``(H, W)`` as float32 ``(1, 1, W)``/``(1, H, W)``."""
    out = torch.from_numpy(mask.astype(np.float32))
    return out.reshape(1, 1, -1) if out.ndim == 1 else out.unsqueeze(0)


@dataclass(frozen=True)
class ReconTransform:
    """Turn slice ``index`` of a volume into a :class:`~mrirecon.data.sample.ReconSample`.

    Args:
        mask_func: Undersampling for fully sampled input (``mrirecon.masks.create_mask_func``),
            or None to keep it fully sampled.
        deterministic_mask: Seed the mask from the file name (validation, test, inference).
        coil_maps: ``"acs"``, ``"espirit"`` or ``"none"`` (see the module docstring).
        centered: FFT convention; None takes the volume's (``False`` for Calgary-Campinas data).
        crop_size: ``(h, w)`` of target and labels; None takes the volume's ``crop_size``.
        espirit_cache_dir: Folder for ESPIRiT maps on disk (memory only when None).

    Call: ``transform(volume, index) -> ReconSample``; shapes in
    :class:`~mrirecon.data.sample.ReconSample`.
    """

    mask_func: MaskFunc | None = None
    deterministic_mask: bool = False
    coil_maps: Literal["acs", "espirit", "none"] = "acs"
    centered: bool | None = None
    crop_size: tuple[int, int] | None = None
    espirit_cache_dir: Path | None = None
    _espirit: EspiritCache = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.coil_maps not in COIL_MAP_METHODS:
            raise ConfigError(
                f"unknown coil-map method '{self.coil_maps}'",
                hint=f"choose one of {', '.join(COIL_MAP_METHODS)}",
            )
        if self.crop_size is not None and (len(self.crop_size) != 2 or min(self.crop_size) < 1):
            raise ConfigError(f"crop_size must be two positive sizes (h, w), got {self.crop_size}")
        object.__setattr__(self, "_espirit", EspiritCache(self.espirit_cache_dir))

    def _sampling(
        self, volume: RawVolume, kspace: torch.Tensor, centered: bool
    ) -> tuple[torch.Tensor, torch.Tensor, int, float]:
        """``(masked k-space, mask (1, 1|H, W), num_low_frequencies, acceleration)``.

        Masks are drawn and described in the centred view (the fully sampled block in the middle);
        for uncentred data they are shifted to the data's layout (:func:`_to_layout`).
        """
        width = kspace.shape[-1]
        if volume.mask is not None:
            mask = _mask_tensor(volume.mask)
            num_low = volume.attrs.get("num_low_frequency")
            acceleration = volume.attrs.get("acceleration")
            if num_low is None or acceleration is None:
                info = describe_mask(_to_centred(mask, centered))
                num_low, acceleration = info.num_low_frequencies, info.acceleration
            return _apply(kspace, mask), mask, int(num_low), float(acceleration)
        left, right = volume.padding
        if self.mask_func is not None:
            seed = mask_seed(volume.path.name, deterministic=self.deterministic_mask)
            mask, num_low = self.mask_func(kspace.shape, seed=seed)
            mask[..., :left] = 0
            mask[..., right:] = 0
            acceleration = describe_mask(mask).acceleration
            mask = _to_layout(mask, centered)
            return _apply(kspace, mask), mask, int(num_low), acceleration
        mask = torch.zeros(1, 1, width)
        mask[..., left:right] = 1
        mask = _to_layout(mask, centered)
        return _apply(kspace, mask), mask, right - left, width / max(right - left, 1)

    def _crop(self, volume: RawVolume) -> tuple[int, int]:
        crop = self.crop_size or volume.crop_size
        _, height, width = volume.kspace_shape
        if crop[0] > height or crop[1] > width:
            raise ConfigError(
                f"crop_size {crop} is larger than the k-space grid {height}×{width} of {volume.path}"
            )
        return int(crop[0]), int(crop[1])

    def _reference(
        self, volume: RawVolume, index: int, crop: tuple[int, int]
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        target = volume.read_target(index)
        labels = volume.read_lesion_labels(index)
        for name, array in (("reference", target), ("lesion labels", labels)):
            if array is not None and (array.shape[0] < crop[0] or array.shape[1] < crop[1]):
                raise DataError(
                    f"the {name} of slice {index} is {array.shape[0]}×{array.shape[1]}, "
                    f"smaller than the crop {crop[0]}×{crop[1]}",
                    path=volume.path,
                )
        target = None if target is None else np.ascontiguousarray(center_crop(target, crop))
        labels = None if labels is None else np.ascontiguousarray(center_crop(labels, crop))
        return target, labels

    def __call__(self, volume: RawVolume, index: int) -> ReconSample:
        """One slice as a sample (see the module docstring for the steps)."""
        centered = volume.centered if self.centered is None else self.centered
        crop = self._crop(volume)
        kspace = torch.from_numpy(volume.read_kspace(index))
        masked, mask, num_low, acceleration = self._sampling(volume, kspace, centered)
        scale = zero_filled_max(masked)
        if not scale > 0:
            raise DataError(
                f"slice {index}: the measured k-space is all zero after masking", path=volume.path
            )
        if self.coil_maps == "acs":
            maps = acs_coil_maps(masked, mask, centered=centered)
        elif self.coil_maps == "espirit":
            info = describe_mask(_to_centred(mask, centered))
            width = espirit_calib_width(info, (kspace.shape[-2], kspace.shape[-1]))
            maps = self._espirit.maps(volume.path, index, masked, width, centered=centered)
        else:
            maps = torch.zeros((0, 0, 0), dtype=torch.complex64)
        target, labels = self._reference(volume, index, crop)
        if target is None:
            target_t, max_value = torch.zeros(crop, dtype=torch.float32), 0.0
        else:
            target_t = torch.from_numpy(target).mul_(1.0 / scale)
            max_value = float(volume.target_max or 0.0) / scale
        return ReconSample(
            masked_kspace=masked.mul_(1.0 / scale),
            mask=mask.to(torch.float32),
            coil_maps=maps,
            target=target_t,
            fname=volume.path.name,
            slice_num=int(index),
            max_value=max_value,
            crop_size=crop,
            scale=scale,
            num_low_frequencies=num_low,
            acceleration=float(acceleration),
            lesion_labels=_EMPTY_LABELS if labels is None else torch.from_numpy(labels.astype(np.int16)),
        )
