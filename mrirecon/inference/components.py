"""The pieces inference takes from the other layers, in one place.

Inference never reads k-space, builds samples or unpickles checkpoints itself: it calls

- :func:`open_input` → ``mrirecon.data.volume.open_volume`` (every input ``mrirecon convert`` reads);
- :func:`make_transform` / :func:`make_sample` → ``mrirecon.data.transforms.ReconTransform`` (one
  slice → :class:`~mrirecon.data.sample.ReconSample`, normalised by ``scale``);
- :func:`load_checkpoint` → ``mrirecon.models.checkpoints.load_trained_model`` (pretrained
  names, ``.safetensors``, Lightning ``.ckpt`` and model payload ``.pt``, with the coil-map method
  they were trained with; nothing unpickled);
- :func:`input_metadata`: what a reconstruction copies from its input (header, geometry,
  ``acquisition``, ``patient_id``), from the open volume, whatever its file format.

Every call to another layer's contract goes through this module, so the rest of
:mod:`mrirecon.inference` depends only on the small protocols below (and tests can substitute
them).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np

from mrirecon.data.geometry_values import GEOMETRY_DIRECTIONS, field_of_view, slice_thickness
from mrirecon.data.ismrmrd_raw import Frame
from mrirecon.data.sample import ReconSample
from mrirecon.errors import DataError
from mrirecon.export import InputMetadata
from mrirecon.export.geometry import SliceGeometry
from mrirecon.masks import MaskFunc
from mrirecon.models.base import Reconstructor

__all__ = [
    "RawVolumeLike",
    "SliceTransform",
    "input_metadata",
    "load_checkpoint",
    "make_sample",
    "make_transform",
    "open_input",
    "opens_whole",
]


class PlannedInput(Protocol):
    """What planning uses of an input (:func:`probe_input`).

    Attributes:
        num_slices: Slices in the volume.
        kspace_shape: ``(C, H, W)`` of one slice.
        mask: bool ``(W,)`` or ``(H, W)`` for prospectively undersampled input, else None.
        crop_size: ``(h, w)``, the reconstruction size.
        centered: FFT convention of the stored k-space.
        attrs: File attributes (``acquisition``, ``patient_id``, ...).
    """

    @property
    def num_slices(self) -> int: ...

    @property
    def kspace_shape(self) -> tuple[int, int, int]: ...

    @property
    def mask(self) -> np.ndarray | None: ...

    @property
    def crop_size(self) -> tuple[int, int]: ...

    @property
    def centered(self) -> bool: ...

    @property
    def attrs(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class RawVolumeLike(PlannedInput, Protocol):
    """What inference uses of ``mrirecon.data.volume.RawVolume`` (docs/interfaces.md, raw inputs):
    :class:`PlannedInput`'s attributes and

    Attributes:
        header_xml: The ISMRMRD header as text, or None.
        geometry: The ``geometry/`` arrays (``position``, ``read_dir``, ... ``(S, 3)``) and their
            attributes (``field_of_view_mm``, ``slice_thickness_mm``), or None.
    """

    @property
    def header_xml(self) -> str | None: ...

    @property
    def geometry(self) -> dict[str, Any] | None: ...


CoilMapMethod = Literal["acs", "espirit", "none"]
#: ``transform(volume, slice_index) -> ReconSample`` (see :func:`make_sample`).
SliceTransform = Callable[..., ReconSample]


def open_input(
    path: str | os.PathLike[str], *, npy_axes: str | None = None, frame: Frame | None = None
) -> RawVolumeLike:
    """Open one input volume lazily (fastMRI/ISMRMRD HDF5, BART cfl, npy).

    Raises:
        DataError: if the file is missing, unreadable or inconsistent.
    """
    from mrirecon.data.volume import open_volume

    volume: RawVolumeLike = open_volume(Path(path), npy_axes=npy_axes, frame=frame)
    return volume


def probe_input(
    path: str | os.PathLike[str], *, npy_axes: str | None = None, frame: Frame | None = None
) -> PlannedInput:
    """What planning needs of one input: an ISMRMRD raw file from its headers alone
    (:func:`~mrirecon.data.ismrmrd_raw.probe_ismrmrd`: converting it takes seconds per GB, and a
    resumed run would convert every finished input again), any other input opened lazily.

    Raises:
        DataError: if the file is missing, unreadable or inconsistent.
    """
    from mrirecon.data.ismrmrd_raw import probe_ismrmrd
    from mrirecon.data.volume import HDF5_SUFFIXES, is_ismrmrd_raw

    path = Path(path)
    if path.suffix.lower() in HDF5_SUFFIXES and path.is_file() and is_ismrmrd_raw(path):
        probe: PlannedInput = probe_ismrmrd(path, frame=frame)
        return probe
    return open_input(path, npy_axes=npy_axes, frame=frame)


def has_frames(planned: PlannedInput) -> bool:
    """Whether the input :func:`probe_input` planned is an ISMRMRD raw file, whose contrast,
    repetition, phase and set are chosen with ``frame`` (other inputs hold one frame)."""
    from mrirecon.data.ismrmrd_raw import IsmrmrdProbe

    return isinstance(planned, IsmrmrdProbe)


def opens_whole(path: str | os.PathLike[str], planned: PlannedInput) -> bool:
    """Whether :func:`open_input` reads or converts all of ``path`` before its first slice: an
    ISMRMRD raw file is converted, and a NumPy or BART array is read into memory when memory maps
    are off (batch inference turns them off); a fastMRI HDF5 file is read slice by slice.
    ``planned`` is what :func:`probe_input` returned for it."""
    from mrirecon.data.raw import memory_maps_enabled
    from mrirecon.data.volume import HDF5_SUFFIXES

    if has_frames(planned):  # converted when opened
        return True
    return Path(path).suffix.lower() not in HDF5_SUFFIXES and not memory_maps_enabled()


def make_transform(*, mask_func: MaskFunc | None, coil_maps: str) -> SliceTransform:
    """The slice transform of inference: the volume's own mask for prospective input, ``mask_func``
    (seeded from the file name, so every run draws the same mask) for fully sampled input when
    given, else no undersampling; coil maps ``"acs"`` or ``"espirit"``."""
    from mrirecon.data.transforms import ReconTransform

    transform: SliceTransform = ReconTransform(
        mask_func=mask_func,
        deterministic_mask=True,
        coil_maps=cast(CoilMapMethod, coil_maps),
        with_reference=False,  # never used by a reconstruction
    )
    return transform


def make_sample(transform: SliceTransform, volume: Any, index: int) -> ReconSample:
    """Slice ``index`` of ``volume`` as a :class:`ReconSample` (shapes without the batch axis)."""
    return transform(volume, index)


def input_metadata(volume: RawVolumeLike, *, source: str | os.PathLike[str] | None = None) -> InputMetadata:
    """The header, slice geometry, ``acquisition``, ``patient_id`` and whether the volume is a 3-D
    acquisition decoupled along the readout (``mrirecon_decoupled_3d``): what a reconstruction copies.

    Every geometry value is checked here, whatever reader served it: a value that is not finite
    real numbers (text, complex, the wrong count) is the input's fault.

    Args:
        volume: The open input.
        source: Its path, named in errors.

    Raises:
        DataError: if the geometry arrays or attributes are malformed.
    """
    g = volume.geometry
    geometry = None
    if g and all(name in g for name in GEOMETRY_DIRECTIONS):
        fov = g.get("field_of_view_mm")
        thickness = g.get("slice_thickness_mm")
        where = Path(source) if source is not None else None
        try:  # SliceGeometry checks the arrays (real_numbers); the attributes are converted here
            geometry = SliceGeometry(
                **{name: g[name] for name in GEOMETRY_DIRECTIONS},
                patient_table_position=g.get("patient_table_position"),
                field_of_view_mm=None if fov is None else field_of_view(fov, where),
                slice_thickness_mm=None if thickness is None else slice_thickness(thickness, where),
            )
        except DataError as error:
            if error.path is not None or where is None:
                raise
            raise DataError(error.message, path=where, hint=error.hint) from error
    attrs = volume.attrs or {}
    decoupled = attrs.get("mrirecon_decoupled_3d", False)
    return InputMetadata(
        volume.header_xml or None,
        geometry,
        _attribute_text(attrs, "acquisition", source),
        _attribute_text(attrs, "patient_id", source),
        decoupled_3d=isinstance(decoupled, bool | np.bool_) and bool(decoupled),
    )


def _attribute_text(attrs: dict[str, Any], name: str, source: str | os.PathLike[str] | None) -> str:
    """A text attribute the outputs copy, without the NUL padding of a fixed-length C string; a
    NUL inside the text is refused (the text after it would be cut from the HDF5 output and the
    DICOM, or end the write)."""
    text = str(attrs.get(name, "") or "").rstrip("\0")
    if "\0" in text:
        raise DataError(
            f"the '{name}' attribute holds a NUL character inside its text ({text!r})",
            path=source,
            hint=f"rewrite the attribute without it (h5py: f.attrs['{name}'] = 'TEXT')",
        )
    return text


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[str, Reconstructor, str | None]:
    """``(model name, model in eval mode, coil-map method it was trained with or None)`` from a
    Lightning ``.ckpt``, a model payload ``.pt``, a ``.safetensors`` model or a pretrained name,
    read once (``mrirecon.models.checkpoints.load_trained_model``).

    Raises:
        CheckpointError: unreadable file, unknown model, weights that do not fit the model.
    """
    from mrirecon.models.checkpoints import load_trained_model

    return load_trained_model(path)  # a str may name a pretrained model, a Path is a file
