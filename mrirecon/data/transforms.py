"""``ReconTransform``: one slice of a :class:`~mrirecon.data.raw.RawVolume` → a ``ReconSample``.

Steps, in order:

1. Read the slice's k-space ``(C, H, W)`` (:meth:`~mrirecon.data.raw.RawVolume.kspace_slice`:
   for contiguous fastMRI files a read-only view of the memory-mapped file, no copy).
2. Sampling. Input undersampled before mrirecon saw it (prospective data, fastMRI test files)
   keeps its own mask. Fully sampled input is undersampled with the mask function when one is
   given: with a per-volume seed derived from the file name when ``deterministic_mask`` (the
   same mask on every slice, epoch and machine: validation, test, inference), with fresh
   randomness otherwise (training); columns outside the header's acquired range (fastMRI's
   zero padding) are never marked sampled. Without a mask function, fully sampled input stays
   fully sampled (mask of ones over the acquired columns).
3. Normalisation. ``scale`` is the root mean square of the zero-filled RSS image of the measured
   k-space over the ``H × W`` grid, which by Parseval (orthonormal FFT) needs no FFT:

       scale = sqrt(Σ_{c,h,w} |M y|² / (H·W)) = sqrt(mean_{h,w} RSS(F⁻¹ M y)²)

   (:func:`zero_filled_rms`). Every input has one, prospective ones included; it is the same for
   centred and uncentred data, and it is an energy, so one bright pixel or a spike of noise does
   not set it (the maximum did). The sample holds ``M y / scale``, ``target / scale`` and
   ``max_value / scale``; a reconstruction ``x̂`` of the sample returns to the input's intensity
   scale as ``x̂ · scale`` (the maps are unit-free). A slice whose measured k-space is all zero
   cannot be normalised (``DataError``).

   Speed: the loader does no FFT and two passes over the slice after reading it. One computes
   the energy of every column (line masks) or k-space location (2-D masks) summed over coils
   (:func:`~mrirecon.data.raw.kspace_energy`); its total is also the reader's NaN/Inf/all-zero
   check, and its dot product with the mask gives the measured energy. The other writes
   ``0 + y · mask / scale`` (in place, or from a memory-mapped file into a new tensor), so
   unsampled locations are exact +0, never -0 (:func:`normalize_slice`; docs/data.md).
4. Coil maps: ``"acs"`` from the fully sampled centre of the mask (a tapered low-resolution
   estimate, cheap), ``"espirit"`` (SigPy ESPIRiT on the calibration region, cached per volume),
   or ``"none"`` (an empty ``(0, 0, 0)`` tensor, for models that estimate their own maps and for
   loader benchmarks). An input with a separate calibration scan (ISMRMRD raw data whose
   reference lines are a scan of their own: :meth:`~mrirecon.data.raw.RawVolume.read_calibration`)
   gives the maps from that scan's lines instead, as GRAPPA and SENSE do: the imaging data may
   then have no fully sampled centre.
5. Target, ``max_value`` and lesion labels, centre-cropped to ``crop_size`` (the header's
   reconstruction size unless given); a zero target and ``max_value`` 0 without a reference.

The transform is a frozen dataclass: picklable (DataLoader workers get a copy) and built from
typed arguments.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from mrirecon.data.coilmaps import EspiritCache, acs_coil_maps
from mrirecon.data.raw import RawVolume, check_slice_energy, file_number, kspace_energy
from mrirecon.data.sample import ReconSample
from mrirecon.errors import ConfigError, DataError
from mrirecon.masks import MaskFunc, describe_mask, mask_seed
from mrirecon.physics import espirit_calibration_width, espirit_kernel_width
from mrirecon.shapes import center_crop, check_shape

__all__ = ["COIL_MAP_METHODS", "ReconTransform", "normalize_slice", "zero_filled_rms"]

COIL_MAP_METHODS = ("acs", "espirit", "none")
_EMPTY_LABELS = torch.zeros((0, 0), dtype=torch.int16)
_ZERO = torch.zeros((), dtype=torch.float32)


def _dims(mask: torch.Tensor) -> tuple[int, ...]:
    return (-1,) if mask.shape[-2] == 1 else (-2, -1)


def _to_layout(mask: torch.Tensor, centered: bool) -> torch.Tensor:
    """A mask drawn in the centred view, in the data's layout (``ifftshift`` for uncentred data)."""
    return mask if centered else torch.fft.ifftshift(mask, dim=_dims(mask))


def _to_centred(mask: torch.Tensor, centered: bool) -> torch.Tensor:
    """A mask in the data's layout, in the centred view (``fftshift`` for uncentred data)."""
    return mask if centered else torch.fft.fftshift(mask, dim=_dims(mask))


def zero_filled_rms(masked_kspace: torch.Tensor) -> float:
    """The normalisation ``scale`` of measured k-space ``(C, H, W)``: ``sqrt(Σ|y|² / (H·W))``.

    By Parseval (orthonormal FFT) this is the root mean square over the ``H × W`` grid of the
    zero-filled RSS image ``RSS(F⁻¹ y)``, centred or not (shifts change no magnitude's energy).
    """
    check_shape(masked_kspace, "C H W", name="masked_kspace")
    height, width = masked_kspace.shape[-2:]
    energy = float(torch.linalg.vector_norm(masked_kspace.to(torch.complex128))) ** 2
    return math.sqrt(energy / (height * width))


def normalize_slice(
    kspace: np.ndarray, mask: torch.Tensor, path: Path | None = None, index: int = 0
) -> tuple[torch.Tensor, float]:
    """Mask and normalise a slice: ``(M y / scale, scale)``, ``scale`` of :func:`zero_filled_rms`.

    Two passes over the slice and no FFT: :func:`~mrirecon.data.raw.kspace_energy` (whose total
    also checks the slice like :meth:`RawVolume.read_kspace`), then one multiply-add that writes
    the result, in place when ``kspace`` is writeable, else into a new tensor.

    Args:
        kspace: ``(C, H, W)`` complex64, C-contiguous (:meth:`RawVolume.kspace_slice`): a
            writeable array is overwritten, a read-only view (a memory-mapped file) only read.
        mask: ``(1, 1, W)`` or ``(1, H, W)`` float32, 1 = sampled, in the data's layout.
        path, index: Named in errors.

    Returns:
        ``(C, H, W)`` complex64 tensor (sharing memory with a writeable ``kspace``), exact +0
        where not sampled, and ``scale``.

    Raises:
        DataError: NaN/Inf in the slice, an all-zero slice, or nothing measured under the mask.
    """
    _, height, width = kspace.shape
    lines = mask.shape[-2] == 1
    check_shape(mask, "1 1 W" if lines else "1 H W", name="mask", dims={"H": height, "W": width})
    energy = kspace_energy(kspace, per_column=lines)
    check_slice_energy(float(energy.sum(dtype=np.float64)), kspace, path, index)
    weights = mask.numpy().reshape(energy.shape)
    measured = float(np.dot(energy.reshape(-1).astype(np.float64), weights.reshape(-1)))
    if not measured > 0:
        raise DataError(
            f"slice {index}: the measured k-space is all zero after masking",
            path=path,
            hint="the mask misses every sample with signal: give it a fully sampled centre "
            "(--center-fraction) or a lower --acceleration",
        )
    scale = math.sqrt(measured / (height * width))
    # mask / scale for the real and the imaginary part of each location, broadcast over coils
    factors = np.repeat(weights * np.float32(1.0 / scale), 2, axis=-1)
    pairs = kspace.view(np.float32)  # (C, H, 2W): real and imaginary parts side by side
    out = pairs if kspace.flags.writeable else np.empty(pairs.shape, dtype=np.float32)
    _multiply_onto_zero(pairs, factors, out)
    return torch.from_numpy(out.view(np.complex64)), scale


def _multiply_onto_zero(values: np.ndarray, factors: np.ndarray, out: np.ndarray) -> None:
    """``out = 0 + values · factors`` (broadcast): exact +0 where a factor is 0, whatever the sign.

    On one torch thread (DataLoader workers) torch's fused multiply-add, one pass; with more
    threads NumPy (a multiply, then +0 to clear signed zeros), which never starts OpenMP threads:
    a parallel torch op in a process that shares a busy machine waits for a descheduled thread
    for milliseconds, more than the whole pass costs on one core.
    """
    if torch.get_num_threads() == 1:
        if values.flags.writeable:
            source = torch.from_numpy(values)
        else:
            with warnings.catch_warnings():  # torch warns about read-only arrays; this one is only read
                warnings.simplefilter("ignore", UserWarning)
                source = torch.from_numpy(values)
        torch.addcmul(_ZERO, source, torch.from_numpy(factors), out=torch.from_numpy(out))
    else:
        np.multiply(values, factors, out=out)
        np.add(out, np.float32(0.0), out=out)


def _mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """A stored bool mask ``(W,)``/``(H, W)`` as float32 ``(1, 1, W)``/``(1, H, W)``."""
    out = torch.from_numpy(mask.astype(np.float32))
    return out.reshape(1, 1, -1) if out.ndim == 1 else out.unsqueeze(0)


def _no_calibration(volume: RawVolume, index: int) -> DataError:
    """The error for a measured (prospective) slice that holds no calibration data for coil maps:
    no fully sampled centre, and no line of a separate reference scan (said why)."""
    separate = volume.header is not None and volume.header.separate_reference
    if volume.calibration is not None:
        why = "; its separate reference scan has no line on this slice"
    elif separate and volume.attrs.get("mrirecon_decoupled_3d"):
        why = "; its separate reference scan is not used for 3-D data"
    elif separate:
        why = "; the header names a separate reference scan, but the file holds no reference line that fits"
    else:
        why = ""
    return DataError(
        f"slice {index}: the scan measured no fully sampled centre to estimate coil maps from{why}",
        path=volume.path,
        hint="reconstruct it with a model that estimates its own coil maps (e2e_varnet with --coil-maps "
        "none), or give the scan's calibration lines in the file",
    )


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
        with_reference: Read the reference (and lesion labels); False serves zeros (inference,
            which never uses them: for NumPy, BART and ISMRMRD input the reference is an RSS
            image computed from the k-space, about as costly as the rest of the slice).

    Call: ``transform(volume, index) -> ReconSample``; shapes in
    :class:`~mrirecon.data.sample.ReconSample`.
    """

    mask_func: MaskFunc | None = None
    deterministic_mask: bool = False
    coil_maps: Literal["acs", "espirit", "none"] = "acs"
    centered: bool | None = None
    crop_size: tuple[int, int] | None = None
    espirit_cache_dir: Path | None = None
    with_reference: bool = True
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
        self, volume: RawVolume, shape: tuple[int, int, int], centered: bool
    ) -> tuple[torch.Tensor, int, float]:
        """``(mask (1, 1|H, W) float32, num_low_frequencies, acceleration)`` for k-space of ``shape``.

        Masks are drawn and described in the centred view (the fully sampled block in the middle);
        for uncentred data they are shifted to the data's layout (:func:`_to_layout`).
        """
        width = shape[-1]
        left, right = volume.padding
        if volume.mask is not None:
            mask = _mask_tensor(volume.mask)
            if left > 0 or right < width:  # fastMRI's VarNet transform: padding columns are not measured
                centred = _to_centred(mask, centered).clone()
                centred[..., :left] = 0
                centred[..., right:] = 0
                mask = _to_layout(centred, centered)
            num_low = volume.attrs.get("num_low_frequency")
            acceleration = volume.attrs.get("acceleration")
            if num_low is None or acceleration is None:
                info = describe_mask(_to_centred(mask, centered))
                num_low, acceleration = info.num_low_frequencies, info.acceleration
            num_low = file_number(num_low, "the attribute 'num_low_frequency'", volume.path)
            acceleration = file_number(acceleration, "the attribute 'acceleration'", volume.path)
            return mask, int(num_low), acceleration
        if self.mask_func is not None:
            seed = mask_seed(volume.path.name, deterministic=self.deterministic_mask)
            mask, num_low = self.mask_func(shape, seed=seed)
            mask[..., :left] = 0
            mask[..., right:] = 0
            acceleration = describe_mask(mask).acceleration
            mask = _to_layout(mask, centered)
            return mask.to(torch.float32), int(num_low), acceleration
        mask = torch.zeros(1, 1, width)
        mask[..., left:right] = 1
        mask = _to_layout(mask, centered)
        return mask, right - left, width / max(right - left, 1)

    def _crop(self, volume: RawVolume) -> tuple[int, int]:
        crop = self.crop_size or volume.crop_size
        _, height, width = volume.kspace_shape
        if crop[0] > height or crop[1] > width:
            if self.crop_size is None:  # the file's own reference or header: the file is at fault
                raise DataError(
                    f"its reconstruction size {tuple(crop)} is larger than its k-space grid {height}×{width}",
                    path=volume.path,
                    hint="the reference (or the header's reconSpace) does not belong to this k-space",
                )
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
        if target is not None and not np.isfinite(target).all():  # a NaN target is a NaN loss
            raise DataError(
                f"the reference of slice {index} holds NaN or Inf values",
                path=volume.path,
                hint="write the reference again (`mrirecon convert` computes it from the k-space), or "
                "leave the file out (data.skip_bad: true)",
            )
        return target, labels

    def _coil_maps(
        self, volume: RawVolume, index: int, masked: torch.Tensor, mask: torch.Tensor, centered: bool
    ) -> torch.Tensor:
        """Step 4 of the module docstring: ``(C, H, W)`` maps (``(0, 0, 0)`` for ``"none"``)."""
        if self.coil_maps == "none":
            return torch.zeros((0, 0, 0), dtype=torch.complex64)
        calibration = volume.read_calibration(index)
        if calibration is not None:  # a separate calibration scan: its lines, unit-free maps
            masked, mask = torch.from_numpy(calibration[0]), _mask_tensor(calibration[1])
        source = "" if calibration is None else "reference"
        if self.coil_maps == "acs":
            try:  # unit-free: scaling changes nothing
                return acs_coil_maps(masked, mask, centered=centered, path=volume.path, index=index)
            except DataError as error:
                if volume.mask is None:  # a retrospective mask: its centre fraction is the fix
                    raise
                raise _no_calibration(volume, index) from error
        info = describe_mask(_to_centred(mask, centered))
        width = espirit_calibration_width(info.acs_slices, (masked.shape[-2], masked.shape[-1]))
        if espirit_kernel_width(width) == 0:
            raise DataError(
                f"slice {index}: the mask's fully sampled centre ({info.acs_shape}) is too small for "
                "ESPIRiT (at least 4 × 4 samples)",
                path=volume.path,
                hint="use coil_maps: acs, or a mask with a larger fully sampled centre",
            )
        return self._espirit.maps(volume.path, index, masked, width, centered=centered, source=source)

    def __call__(self, volume: RawVolume, index: int) -> ReconSample:
        """One slice as a sample (see the module docstring for the steps)."""
        centered = volume.centered if self.centered is None else self.centered
        crop = self._crop(volume)
        kspace = volume.kspace_slice(index)  # unchecked, maybe a view of the file: normalize_slice checks
        mask, num_low, acceleration = self._sampling(volume, kspace.shape, centered)
        masked, scale = normalize_slice(kspace, mask, volume.path, index)
        maps = self._coil_maps(volume, index, masked, mask, centered)
        target, labels = self._reference(volume, index, crop) if self.with_reference else (None, None)
        if target is None:
            target_t, max_value = torch.zeros(crop, dtype=torch.float32), 0.0
        else:
            target_t = torch.from_numpy(np.multiply(target, np.float32(1.0 / scale), out=target))
            max_value = float(volume.target_max or 0.0) / scale
        return ReconSample(
            masked_kspace=masked,
            mask=mask,
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
