"""Reading what ``mrirecon evaluate`` compares: reference volumes and reconstruction files.

- Targets are fastMRI files (``reconstruction_rss`` ``(S, h, w)``; of single-coil files,
  ``reconstruction_esc``, :func:`mrirecon.data.fastmri.reference_key`; optional ``lesion_labels`` on the
  same grid, attrs ``acquisition``, ``acceleration``) listed by a folder (every ``*.h5``) or a
  manifest CSV (:func:`mrirecon.data.manifest.read_manifest`).
- Reconstructions are files of the same name in a reconstruction folder, with ``reconstruction``
  ``(S, h', w')`` and optionally ``zero_filled`` (docs/interfaces.md §5).
- Both are centre-cropped as fastMRI's ``evaluate.py`` does: to ``(W_t, W_t)`` with ``W_t`` the
  target's width; where the target is less high than wide (fastMRI's crop would fail), to
  ``(H_t, W_t)``. A volume smaller than the crop, a different slice count, a missing file or
  dataset is a :class:`~mrirecon.errors.DataError` that names the file.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mrirecon import shapes
from mrirecon.data.fastmri import reference_key
from mrirecon.data.hdf5_inputs import check_stored, numeric_dataset, plain_attrs, stored_dataset
from mrirecon.data.lesions import checked_labels
from mrirecon.data.volume import HDF5_SUFFIXES
from mrirecon.errors import DataError, Notice
from mrirecon.export import ReconVolume, read_reconstruction

__all__ = [
    "ReconSource",
    "TargetVolume",
    "center_crop",
    "describe_sources",
    "fastmri_crop_size",
    "format_acceleration",
    "list_targets",
    "read_attrs",
    "read_cropped",
    "read_target",
]


def fastmri_crop_size(shape: tuple[int, ...]) -> tuple[int, int]:
    """fastMRI's evaluation crop of a target ``(..., H_t, W_t)``.

    ``(W_t, W_t)`` as ``evaluate.py``; ``(H_t, W_t)`` where H_t < W_t (fastMRI's crop would fail).

    Args:
        shape: The target's shape.
    """
    height, width = int(shape[-2]), int(shape[-1])
    return min(height, width), width


def center_crop(x: np.ndarray, size: tuple[int, int], *, path: Path, what: str) -> np.ndarray:
    """:func:`mrirecon.shapes.center_crop` of an input file's array.

    Raises:
        DataError: if the array is smaller than ``size`` (naming the file and the array).
    """
    height, width = x.shape[-2:]
    try:
        return shapes.center_crop(x, size)
    except ValueError:
        raise DataError(
            f"{what} has in-plane size {height}×{width}, "
            f"smaller than the evaluation crop {size[0]}×{size[1]}",
            path=path,
            hint="reconstructions must cover the target's grid (fastMRI's submission format)",
        ) from None


def read_attrs(handle: h5py.File) -> dict[str, Any]:
    """The file's attributes as plain Python values (bytes decoded, NumPy scalars unwrapped)."""
    return plain_attrs(handle.attrs)


def _distinct_names(folders: Sequence[Path]) -> list[str]:
    """The shortest trailing parts of the folders' paths that tell them apart (``runA/reconstructions``
    and ``runB/reconstructions``: fastMRI's and ATOMMIC's scripts all write to ``reconstructions``)."""
    parts = [folder.resolve().parts for folder in folders]
    deepest = max((len(p) for p in parts), default=1)
    for depth in range(1, deepest + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [folder.name for folder in folders]  # one folder given twice: refused by the caller


def hdf5_files(folder: Path) -> list[Path]:
    """The HDF5 files of a folder, sorted: ``.h5`` and ``.hdf5`` in any case (fastMRI's evaluate.py
    scores every file of its folder), hidden and partial files left out."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in HDF5_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def list_targets(targets: str | Path, split: str | None = None) -> list[Path]:
    """The target files of a folder (``.h5``/``.hdf5``, sorted) or a manifest CSV (in the manifest's
    order).

    Args:
        targets: A folder of fastMRI files, or a manifest CSV.
        split: With a manifest, keep only entries of this split (``train``, ``val``, ``test``).

    Raises:
        DataError: if the path does not exist or lists no file.
    """
    targets = Path(targets)
    if targets.is_dir():
        files = hdf5_files(targets)
        if split is not None:
            raise DataError("--split needs a manifest CSV, not a folder", path=targets)
    elif targets.is_file() and targets.suffix.lower() == ".csv":
        from mrirecon.data.manifest import read_manifest

        entries = read_manifest(targets)
        files = [Path(e.path) for e in entries if split is None or e.split == split]
    elif targets.exists():
        raise DataError("targets must be a folder of .h5 files or a manifest .csv", path=targets)
    else:
        raise DataError("no such folder or manifest", path=targets)
    if not files:
        raise DataError(
            "no target volumes found" + (f" in split '{split}'" if split else ""),
            path=targets,
            hint="targets are fastMRI .h5 files with a reconstruction_rss dataset",
        )
    return files


@dataclass
class TargetVolume:
    """A reference volume, cropped for evaluation.

    Attributes:
        path: The file.
        image: ``(S, h, w)`` reference magnitudes (``reconstruction_rss``; ``reconstruction_esc`` of
            single-coil k-space, as fastMRI's ``evaluate.py``; cropped; the file's dtype,
            float32 for fastMRI, as ``evaluate.py`` uses it).
        full_shape: ``(S, H, W)`` of the reference before the crop (fastMRI+ boxes live there).
        labels: ``(S, h, w)`` int lesion labels (cropped), or ``None``.
        attrs: The file's attributes.
    """

    path: Path
    image: np.ndarray
    full_shape: tuple[int, int, int]
    labels: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def crop(self) -> tuple[int, int]:
        return int(self.image.shape[-2]), int(self.image.shape[-1])


def _open(path: Path, what: str) -> h5py.File:
    if not path.is_file():
        raise DataError(f"{what} file is missing", path=path)
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"cannot open the {what} file as HDF5: {error}", path=path) from error


def _volume(handle: h5py.File, key: str, path: Path, what: str) -> np.ndarray:
    if key not in handle:
        raise DataError(f"{what} file has no '{key}' dataset", path=path)
    data = numeric_dataset(handle, key, path)
    if data.ndim != 3 or data.shape[0] == 0:
        raise DataError(f"'{key}' must be a volume (slices, height, width), got {data.shape}", path=path)
    check_stored(data, path)  # a few KB declaring gigabytes of unwritten chunks: refused, not read
    array = np.asarray(data[()])
    if np.iscomplexobj(array):
        array = np.abs(array)
    return array


def read_target(path: str | Path) -> TargetVolume:
    """Read and crop a reference volume (and its lesion labels, if any).

    Raises:
        DataError: missing file, no reference dataset, labels of another shape.
    """
    path = Path(path)
    with _open(path, "target") as handle:
        key = reference_key(handle)
        if key is None:
            raise DataError(
                "target file has no 'reconstruction_rss' (or, single-coil, 'reconstruction_esc') dataset",
                path=path,
                hint="evaluation needs a fully sampled reference; prospective data has none",
            )
        image = _volume(handle, key, path, "target")
        labels = None
        if "lesion_labels" in handle:
            labels = checked_labels(np.asarray(stored_dataset(handle, "lesion_labels", path)[()]), path)
            if labels.shape != image.shape:
                raise DataError(
                    f"lesion_labels {labels.shape} and {key} {image.shape} differ in shape",
                    path=path,
                )
        attrs = read_attrs(handle)
    crop = fastmri_crop_size(image.shape)
    full_shape = (int(image.shape[0]), int(image.shape[1]), int(image.shape[2]))
    image = np.ascontiguousarray(center_crop(image, crop, path=path, what=key))
    if labels is not None:
        cropped = np.ascontiguousarray(center_crop(labels, crop, path=path, what="lesion_labels"))
        _say_cut_lesions(labels, cropped, crop, path)
        labels = cropped
    return TargetVolume(path=path, image=image, full_shape=full_shape, labels=labels, attrs=attrs)


def _say_cut_lesions(full: np.ndarray, cropped: np.ndarray, crop: tuple[int, int], path: Path) -> None:
    """A notice naming the lesions fastMRI's crop cuts: left out (wholly outside) or measured on
    the part inside (their ring too)."""
    before = dict(zip(*np.unique(full[full > 0], return_counts=True), strict=True))
    after = dict(zip(*np.unique(cropped[cropped > 0], return_counts=True), strict=True))
    outside = sorted(int(k) for k in before if k not in after)
    partly = sorted(int(k) for k in after if after[k] < before[k])
    if outside or partly:
        parts = ([f"{len(outside)} outside it, not measured"] if outside else []) + (
            [f"{len(partly)} partly outside, measured on the part inside"] if partly else []
        )
        warnings.warn(
            Notice(
                f"{path.name}: lesions cut by the {crop[0]} × {crop[1]} evaluation crop: {'; '.join(parts)}"
            ),
            stacklevel=3,
        )


def read_cropped(path: str | Path, target: TargetVolume) -> ReconVolume:
    """A reconstruction (:func:`mrirecon.export.read_reconstruction`, the one reader) cropped like
    its target.

    Raises:
        DataError: missing file, no ``reconstruction``, another slice count, smaller than the crop.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            "reconstruction file is missing",
            path=path,
            hint="each target needs a reconstruction of the same file name in the reconstruction folder",
        )
    recon = read_reconstruction(path)
    arrays = {"reconstruction": recon.reconstruction, "zero_filled": recon.zero_filled}
    out: dict[str, np.ndarray | None] = {}
    for key, array in arrays.items():
        if array is None:
            out[key] = None
            continue
        if array.shape[0] != target.image.shape[0]:
            raise DataError(
                f"'{key}' has {array.shape[0]} slices but the target {target.name} "
                f"has {target.image.shape[0]}",
                path=path,
            )
        out[key] = np.ascontiguousarray(center_crop(array, target.crop, path=path, what=f"'{key}'"))
    recon_image = out["reconstruction"]
    assert recon_image is not None
    return dataclasses.replace(recon, reconstruction=recon_image, zero_filled=out["zero_filled"])


@dataclass(frozen=True)
class ReconSource:
    """A reconstruction folder and how reports name it.

    Attributes:
        label: The display label: the model's name. Folders of one model at different accelerations
            share it (the acceleration tells them apart); ``(label, acceleration)`` is unique.
        folder: The folder of reconstruction files.
        model: The files' ``model`` attribute ("" if absent; baselines and learned models alike).
        checkpoint_sha256: The files' ``checkpoint_sha256`` attribute ("" for classical baselines).
        acceleration: The first file's ``acceleration`` attribute as text ("" if absent).
    """

    label: str
    folder: Path
    model: str = ""
    checkpoint_sha256: str = ""
    acceleration: str = ""

    @property
    def display(self) -> str:
        """``label R=acceleration`` (or the label alone without an acceleration)."""
        return f"{self.label} R={self.acceleration}" if self.acceleration else self.label


def format_acceleration(value: Any) -> str:
    """An ``acceleration`` attribute as text (``4.0`` → ``"4"``; ``""`` when absent)."""
    if value is None or value == "":
        return ""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


def describe_sources(folders: Sequence[Path], labels: Sequence[str] = ()) -> list[ReconSource]:
    """Label each reconstruction folder: ``labels`` if given, else its files' ``model``, else its name.

    The first readable HDF5 file of a folder supplies ``model``, ``checkpoint_sha256`` and
    ``acceleration``. Folders of the same model at different accelerations keep the model's name;
    where two folders have the same name *and* acceleration (two checkpoints of one model), the
    folder name is appended (``cirim [run2]``), with as many of its parents as tell the folders
    apart (``[runA/reconstructions]``).

    Raises:
        DataError: if a folder does not exist, the label count differs from the folder count, or
            two given labels collide at the same acceleration.
    """
    if labels and len(labels) != len(folders):
        raise DataError(
            f"{len(labels)} labels given for {len(folders)} reconstruction folders", hint="one per folder"
        )
    found: list[tuple[Path, dict[str, Any]]] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise DataError(
                "reconstruction folder does not exist",
                path=folder,
                hint="pass the -o folder of infer or batch",
            )
        attrs: dict[str, Any] = {}
        for path in hdf5_files(folder):
            try:
                with h5py.File(path, "r") as handle:
                    attrs = read_attrs(handle)
            except OSError:
                continue
            break
        found.append((folder, attrs))
    names = list(labels) or [str(attrs.get("model", "")) or folder.name for folder, attrs in found]
    keys = [(name, format_acceleration(attrs.get("acceleration"))) for name, (_, attrs) in zip(names, found)]
    folder_names = _distinct_names([folder for folder, _ in found])
    out = []
    for name, key, folder_name, (folder, attrs) in zip(names, keys, folder_names, found):
        label = f"{name} [{folder_name}]" if keys.count(key) > 1 and not labels else name
        out.append(
            ReconSource(
                label=label,
                folder=folder,
                model=str(attrs.get("model", "")),
                checkpoint_sha256=str(attrs.get("checkpoint_sha256", "")),
                acceleration=key[1],
            )
        )
    if len({(s.label, s.acceleration) for s in out}) != len(out):
        raise DataError(
            "two reconstruction folders have the same label and acceleration",
            hint="give distinct --label values",
        )
    return out
