"""``mrirecon convert``: any supported input → one fastMRI-layout HDF5 file (docs/interfaces.md §1).

The input is opened with :func:`~mrirecon.data.volume.open_volume` (so ISMRMRD raw data are
pre-whitened, gridded and freed of readout oversampling; 3-D data are split into 2-D slices;
prospective input keeps its mask) and every slice is read (and checked) once. Fully sampled
input gets a ``reconstruction_rss`` reference (the input's own, or the RSS of its coil images);
undersampled input gets its ``mask`` and the test-set attributes ``acceleration`` and
``num_low_frequency``. Uncentred k-space (Calgary-Campinas, ``--uncentered`` arrays) is written
centred, as fastMRI's code expects. Every output has an ``acquisition`` attribute (empty when the
input names none: fastMRI's ``evaluate.py --acquisition`` reads it). The ISMRMRD header
(identifiers, geometry for DICOM) is kept; inputs without one get a minimal header whose encoding
limits mark the never-acquired columns. A fastMRI single-coil file is refused: it is in fastMRI's
layout already, and its reference is the emulated single coil's (``reconstruction_esc``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrirecon.data.fastmri import FastMRIVolume
from mrirecon.data.fastmri_writer import write_volume
from mrirecon.data.header import EncodingLimits, build_ismrmrd_header
from mrirecon.data.ismrmrd_raw import Frame
from mrirecon.data.raw import RawVolume, rss_reference
from mrirecon.data.volume import HDF5_SUFFIXES, is_ismrmrd_raw, open_volume
from mrirecon.errors import ConfigError, DataError, Notice
from mrirecon.physics import change_convention

__all__ = ["ConversionSummary", "convert_volume", "minimal_header"]

#: Attributes the writer sets itself (or recomputes) and so are not copied from the input.
_WRITER_ATTRS = {
    "max",
    "norm",
    "mrirecon_version",
    "mrirecon_fft_centered",
    "mrirecon_source",
    "lesion_table",
}


@dataclass(frozen=True)
class ConversionSummary:
    """What :func:`convert_volume` wrote.

    Attributes:
        output: The file.
        shape: ``(S, C, H, W)``.
        undersampled: Whether a mask was stored.
        mask_kind: ``"1d"``, ``"2d"`` or ``""``.
        acceleration: Effective acceleration (1 when fully sampled).
        source: The input's description (``mrirecon_source``).
    """

    output: Path
    shape: tuple[int, int, int, int]
    undersampled: bool
    mask_kind: str
    acceleration: float
    source: str

    def describe(self) -> str:
        """One line for the CLI."""
        s, c, h, w = self.shape
        kind = (
            f"undersampled ({self.mask_kind} mask, acceleration {self.acceleration:.2f})"
            if self.undersampled
            else "fully sampled"
        )
        return f"{self.output}: {s} slice(s) × {c} coil(s) × {h} × {w}, {kind}"


def minimal_header(volume: RawVolume, padding: tuple[int, int] | None = None) -> str:
    """An ISMRMRD header for an input without one: the matrix, and the acquired columns (``padding``,
    default the volume's) as limits."""
    coils, height, width = volume.kspace_shape
    left, right = padding or volume.padding
    limits = EncodingLimits(0, right - left - 1, width // 2 - left)
    return build_ismrmrd_header(
        encoded_matrix=(height, width, 1),
        recon_matrix=(volume.crop_size[0], volume.crop_size[1], 1),
        e1_limits=limits,
        model="converter",
        receiver_channels=coils,
    )


def _centred(
    volume: RawVolume, kspace: np.ndarray, path: Path
) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
    """Uncentred k-space ``(S, C, H, W)``, its mask and acquired columns in the centred convention
    (fastMRI's: its FFT and masks put the centre of k-space in the middle)."""
    if volume.calibration is not None or volume.padding != (0, kspace.shape[-1]):
        raise DataError(
            "uncentred k-space with a separate calibration scan or never-acquired columns cannot be "
            "written centred",
            path=path,
            hint="convert the data to the centred convention (np.fft.fftshift) before converting",
        )
    centred = change_convention(torch.from_numpy(kspace), to_centered=True).numpy()
    mask = volume.mask
    if mask is not None:
        shifted = change_convention(torch.from_numpy(mask), to_centered=True, ndim=mask.ndim, phase=False)
        mask = shifted.numpy()
    return centred, mask, (0, kspace.shape[-1])


def convert_volume(
    input_path: str | Path,
    output: str | Path,
    *,
    npy_axes: str | None = None,
    centered: bool | None = None,
    acquisition: str | None = None,
    frame: Frame | None = None,
) -> ConversionSummary:
    """Convert one input to the fastMRI layout.

    Args:
        input_path: Any input :func:`~mrirecon.data.volume.open_volume` reads.
        output: The ``.h5`` to write (atomically).
        npy_axes: Axis order of a ``.npy`` input.
        centered: FFT convention of the input (None: the input's own).
        acquisition: Sets the ``acquisition`` attribute (default: the input's).
        frame: The contrast, repetition, phase and set of an ISMRMRD raw input (default: the first).

    Returns:
        A :class:`ConversionSummary`.

    Raises:
        DataError: unreadable input (any slice included), or an output that is the input.
        ConfigError: an output not named ``.h5``/``.hdf5``, or ``frame`` for an input that is not
            an ISMRMRD raw file.
    """
    input_path, output = Path(input_path), Path(output)
    if output.suffix.lower() not in HDF5_SUFFIXES:
        raise ConfigError(
            f"the output is written as fastMRI HDF5; '{output.suffix or output.name}' is not an HDF5 name",
            path=output,
            hint=f"name the output {output.stem or 'volume'}.h5",
        )
    raw = input_path.suffix.lower() in HDF5_SUFFIXES and input_path.is_file() and is_ismrmrd_raw(input_path)
    if frame is not None and input_path.exists() and not raw:
        raise ConfigError(
            "--frame chooses among the frames of an ISMRMRD raw file; this input holds one frame",
            path=input_path,
            hint="leave --frame out",
        )
    if output.exists() and input_path.exists() and output.resolve() == input_path.resolve():
        raise DataError(
            "the output would overwrite the input", path=output, hint="choose another output name"
        )
    with open_volume(input_path, npy_axes=npy_axes, centered=centered, frame=frame) as volume:
        if isinstance(volume, FastMRIVolume) and volume.single_coil:
            raise DataError(
                "this is a fastMRI single-coil file: it is in fastMRI's layout already",
                path=input_path,
                hint="use it as it is (its reference is reconstruction_esc, the emulated single coil's)",
            )
        kspace = np.empty((volume.num_slices, *volume.kspace_shape), dtype=np.complex64)
        for index in range(volume.num_slices):  # one copy of the volume, filled slice by slice
            kspace[index] = volume.read_kspace(index)
        target = None
        if volume.has_target:
            target = np.stack([np.asarray(volume.read_target(i)) for i in range(volume.num_slices)])
            if not np.isfinite(target).all():
                if volume.mask is not None:
                    raise DataError(
                        "its reference holds NaN or Inf values, and its undersampled k-space cannot "
                        "give another",
                        path=input_path,
                    )
                warnings.warn(
                    Notice(
                        f"{input_path.name}: its reference held NaN or Inf values; made again from k-space"
                    ),
                    stacklevel=2,
                )
                target = None
        if target is None and volume.mask is None:  # fully sampled without a (finite) reference
            target = np.stack([rss_reference(k, volume.crop_size, centered=volume.centered) for k in kspace])
        mask, padding = volume.mask, volume.padding
        if not volume.centered:
            kspace, mask, padding = _centred(volume, kspace, input_path)
        labels = None
        first_labels = volume.read_lesion_labels(0)
        if first_labels is not None:
            labels = np.stack([np.asarray(volume.read_lesion_labels(i)) for i in range(volume.num_slices)])
        attrs = {k: v for k, v in volume.attrs.items() if k not in _WRITER_ATTRS}
        if acquisition is not None:
            attrs["acquisition"] = acquisition
        attrs.setdefault("acquisition", "")  # fastMRI's evaluate.py --acquisition reads it
        source = str(volume.attrs.get("mrirecon_source") or input_path.name)
        write_volume(
            output,
            kspace=kspace,
            header_xml=volume.header_xml or minimal_header(volume, padding),
            reconstruction_rss=target,
            mask=mask,
            lesion_labels=labels,
            lesion_table=volume.attrs.get("lesion_table") if labels is not None else None,
            geometry=volume.geometry,
            attrs=attrs,
            centered=True,
            source=source,
            calibration=volume.calibration,
        )
        acceleration = float(attrs.get("acceleration", 1.0)) if mask is not None else 1.0
    return ConversionSummary(
        output=output,
        shape=(int(kspace.shape[0]), int(kspace.shape[1]), int(kspace.shape[2]), int(kspace.shape[3])),
        undersampled=mask is not None,
        mask_kind="" if mask is None else ("1d" if mask.ndim == 1 else "2d"),
        acceleration=acceleration,
        source=source,
    )
