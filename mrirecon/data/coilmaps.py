"""Coil maps for the data pipeline: ACS maps per slice, ESPIRiT maps cached per volume.

ESPIRiT (through SigPy) takes seconds per slice on a CPU, so its maps are computed once per
``(volume, slice, calibration width)`` and kept: in memory for the last few volumes of this process,
and, when a cache folder is given, on disk (one ``.npy`` per slice in a folder per volume, keyed
by the file's path, size and modification time, so a changed file is never served stale maps).
The calibration width is the largest block SigPy centres inside the mask's fully sampled centre
(at most 24; :func:`mrirecon.physics.espirit_calibration_width`), so the maps use only measured
data, and a volume whose mask function varies its centre fraction gets one entry per width.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from mrirecon.atomic import atomic_file
from mrirecon.errors import DataError, ExportError
from mrirecon.masks import acs_mask
from mrirecon.physics import espirit_kernel_width, estimate_coil_maps_acs, estimate_coil_maps_espirit

__all__ = ["EspiritCache", "acs_coil_maps"]


#: Pixels whose low-resolution coil RSS is below this fraction of its peak get zero maps: in an
#: exactly zero background (noiseless or masked data) only float rounding is left there, which
#: normalisation would blow up to unit-norm maps of random phase. Any measured noise floor is far
#: above it (real and simulated scans keep every pixel).
ACS_MAP_FLOOR = 1e-5


def acs_coil_maps(
    masked_kspace: torch.Tensor,
    mask: torch.Tensor,
    *,
    centered: bool,
    path: Path | None = None,
    index: int = 0,
) -> torch.Tensor:
    """Coil maps ``(C, H, W)`` from the fully sampled centre of ``mask`` (``(1, 1|H, W)``).

    Uncentred k-space ``u = F x`` is estimated in the centred view: ``fftshift(u)`` is the centred
    k-space of the rolled image ``fftshift(x)``, so the maps found there are rolled back with
    ``ifftshift``.

    Raises:
        DataError: (naming ``path`` and slice ``index``) if the mask has no fully sampled centre.
    """
    spatial = (-2, -1)
    if not centered:
        masked_kspace = torch.fft.fftshift(masked_kspace, dim=spatial)
        mask = torch.fft.fftshift(mask, dim=(-1,) if mask.shape[-2] == 1 else spatial)
    acs = acs_mask(mask.unsqueeze(0))
    if not bool(acs.any()):
        raise DataError(
            f"slice {index}: the mask samples no fully sampled centre to estimate coil maps from",
            path=path,
            hint="use a mask with a fully sampled centre (center_fractions above 0), or coil maps "
            "of a model that estimates its own (coil_maps: none)",
        )
    maps = estimate_coil_maps_acs(masked_kspace.unsqueeze(0), acs, centered=True, threshold=ACS_MAP_FLOOR)[0]
    return maps if centered else torch.fft.ifftshift(maps, dim=spatial)


def _volume_key(path: Path) -> str:
    stat = path.stat()
    text = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha1(text.encode()).hexdigest()[:20]


class EspiritCache:
    """ESPIRiT maps per ``(volume, slice, calibration width)``, in memory and optionally on disk.

    Args:
        folder: On-disk cache folder, or None for memory only.
        volumes_in_memory: How many volumes' maps to keep in memory.

    Pickles empty (each DataLoader worker fills its own memory cache; the disk cache is shared).
    """

    def __init__(self, folder: Path | None = None, volumes_in_memory: int = 4):
        self.folder = Path(folder) if folder is not None else None
        self.volumes_in_memory = volumes_in_memory
        self._memory: OrderedDict[str, dict[tuple[int, int, str], torch.Tensor]] = OrderedDict()

    def __getstate__(self) -> dict[str, object]:
        return {"folder": self.folder, "volumes_in_memory": self.volumes_in_memory}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["folder"], state["volumes_in_memory"])  # type: ignore[misc]

    def maps(
        self,
        path: Path,
        slice_index: int,
        masked_kspace: torch.Tensor,
        calib_width: int,
        *,
        centered: bool,
        source: str = "",
    ) -> torch.Tensor:
        """The maps ``(C, H, W)`` of one slice, computed from ``masked_kspace`` on a miss.

        ``source``: what ``masked_kspace`` is when it is not the slice's own measured k-space
        (``"reference"``: a separate calibration scan), part of the key.
        """
        try:
            volume = _volume_key(path)
        except OSError:  # no such file (an in-memory volume): its name, hashed (never a path on disk)
            volume = hashlib.sha1(str(path).encode()).hexdigest()[:20]
        slices = self._memory.get(volume)
        if slices is None:
            slices = self._memory[volume] = {}
            while len(self._memory) > self.volumes_in_memory:
                self._memory.popitem(last=False)
        self._memory.move_to_end(volume)
        key = (slice_index, calib_width, source)
        if key in slices:
            return slices[key]
        name = f"{slice_index:05d}_{calib_width}" + (f"_{source}" if source else "")
        file = None if self.folder is None else self.folder / volume / f"{name}.npy"
        maps = None
        if file is not None and file.is_file():
            with contextlib.suppress(OSError, ValueError):
                maps = torch.from_numpy(np.load(file, allow_pickle=False))
        if maps is None or tuple(maps.shape) != tuple(masked_kspace.shape):
            maps = estimate_coil_maps_espirit(
                masked_kspace.unsqueeze(0),
                calib_width=calib_width,
                kernel_width=espirit_kernel_width(calib_width),
                centered=centered,
            )[0]
            if file is not None:
                with (
                    contextlib.suppress(ExportError),
                    atomic_file(file, what="ESPIRiT cache") as tmp,
                    open(tmp, "wb") as handle,
                ):
                    np.save(handle, maps.numpy())
        slices[key] = maps
        return maps
