"""``SliceDataset``: every slice of a folder, a manifest, a file or a list of files, served lazily.

Building the dataset reads only slice counts (from the manifest when there is one, otherwise by
opening each file's metadata); volumes are opened when a slice is first asked for, in the process
that asks (each DataLoader worker opens its own files, never sharing an HDF5 handle across a
fork), and at most ``max_open`` stay open per process.

With ``skip_bad=True`` files that cannot be opened are left out and listed in ``bad_files``; a
slice that turns out to be unreadable later (NaN or Inf values, an all-zero slice, a file that
changed or vanished) is reported with a warning, its file is added to ``bad_files`` of that
process, and the next readable slice is served in its place, so a training epoch goes on.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.utils.data import Dataset, default_collate, get_worker_info
from tqdm import tqdm

from mrirecon.data.manifest import list_volume_files, read_manifest
from mrirecon.data.raw import RawVolume
from mrirecon.data.sample import ReconSample
from mrirecon.data.volume import open_volume
from mrirecon.errors import DataError, Notice

__all__ = ["SliceDataset", "VolumeFacts", "collate_samples", "resolve_sources", "seed_mask_worker"]


class VolumeFacts(NamedTuple):
    """What training must know of a volume before it starts: its k-space's FFT convention, whether
    it has a fully sampled reference, whether it stores its own undersampling mask, and the
    ``(C, H, W)`` of its slices (None when unknown)."""

    centered: bool
    has_target: bool
    own_mask: bool = False
    slice_shape: tuple[int, int, int] | None = None

    @classmethod
    def of(cls, volume: RawVolume) -> VolumeFacts:
        """The facts of an open volume."""
        shape = tuple(int(n) for n in volume.kspace_shape)
        return cls(
            volume.centered, volume.has_target, volume.mask is not None, (shape[0], shape[1], shape[2])
        )


Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def resolve_sources(source: Source, split: str | None = None) -> list[tuple[Path, int | None]]:
    """The files of a source, each with its slice count when a manifest gives it.

    Args:
        source: A folder (its supported files, not recursive), a manifest ``.csv``, one file, or
            a list of files.
        split: With a manifest, keep only entries of this split.

    Raises:
        DataError: a missing path, ``split`` without a manifest, or no file at all.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.suffix.lower() == ".csv":
            entries = read_manifest(path)
            files: list[tuple[Path, int | None]] = [
                (e.path, e.num_slices) for e in entries if split is None or e.split == split
            ]
            if not files:
                raise DataError(
                    "the manifest lists no file" + (f" in split '{split}'" if split else ""), path=path
                )
            return files
        if split is not None:
            raise DataError("a split needs a manifest CSV as the source", path=path)
        if path.is_dir():
            found = list_volume_files(path, recursive=False)
            if not found:
                raise DataError("no supported volume files in the folder", path=path)
            return [(p, None) for p in found]
        if not path.exists() and path.suffix.lower() not in (".cfl", ".hdr"):
            raise DataError("no such file or folder", path=path)
        return [(path, None)]
    if split is not None:
        raise DataError("a split needs a manifest CSV as the source")
    paths = [Path(p) for p in source]
    if not paths:
        raise DataError("the list of input files is empty")
    return [(p, None) for p in paths]


def seed_mask_worker(worker_id: int) -> None:  # noqa: ARG001 (the DataLoader passes it)
    """``worker_init_fn`` for DataLoaders: reseed each worker's mask function from its torch seed.

    Without it every worker starts from the same mask-function state and draws the same masks.
    """
    info = get_worker_info()
    if info is None:
        return
    transform = getattr(info.dataset, "transform", None)
    mask_func = getattr(transform, "mask_func", None)
    if mask_func is not None:
        mask_func.rng.seed(info.seed % (2**32))


def collate_samples(samples: Sequence[ReconSample]) -> ReconSample:
    """Batch samples like ``default_collate``, but keep the per-slice numbers as Python lists.

    Tensors are stacked as ``default_collate`` stacks them (straight into shared memory in a
    DataLoader worker). ``slice_num``, ``max_value``, ``scale``, ``num_low_frequencies`` and
    ``acceleration`` become lists of length ``B`` instead of ``(B,)`` tensors, ``crop_size``
    ``[heights, widths]`` instead of two tensors, ``fname`` a tuple as before: the same values
    (``torch.as_tensor(batch.scale)`` is the tensor ``default_collate`` makes, to float rounding).

    Why: with DataLoader workers every tensor of a batch reaches the main process through its
    own shared-memory segment and file descriptor, handed over by a helper thread of the worker.
    ``default_collate`` makes seven one-number tensors per batch, and on a busy machine sending
    them costs more than sending the k-space (docs/benchmarks.md, Data). Pass
    ``collate_fn=collate_samples`` to a DataLoader of ``ReconSample``s whose consumer reads the
    numbers with ``torch.as_tensor``.
    """
    first = samples[0]
    fields: dict[str, Any] = {}
    for name, value in zip(first._fields, first):
        values = [getattr(sample, name) for sample in samples]
        if isinstance(value, torch.Tensor):
            fields[name] = default_collate(_stackable(name, values, samples))
        elif isinstance(value, str):
            fields[name] = tuple(values)
        elif isinstance(value, tuple):  # crop_size: transposed, as default_collate does
            fields[name] = [list(column) for column in zip(*values)]
        else:
            fields[name] = values
    return ReconSample(**fields)


def _stackable(name: str, values: list[torch.Tensor], samples: Sequence[ReconSample]) -> list[torch.Tensor]:
    """Tensors of one field that stack: a slice without lesion labels gets zero labels of the others'
    size; any other difference of shape is the data's, refused with the files named."""
    shapes = {tuple(v.shape) for v in values}
    if len(shapes) == 1:
        return values
    if name == "lesion_labels":
        sizes = {shape for shape in shapes if 0 not in shape}
        if len(sizes) == 1:
            size = sizes.pop()
            return [v if v.numel() else torch.zeros(size, dtype=v.dtype) for v in values]
    where = ", ".join(f"{s.fname} slice {s.slice_num} {tuple(v.shape)}" for s, v in zip(samples, values))
    raise DataError(
        f"the slices of one batch differ in {name} ({where})",
        hint="use data.batch_size 1 (and val_batch_size 1), or data of one size and one mask type",
    )


class SliceDataset(Dataset[Any]):
    """The slices of many volumes as one dataset.

    Args:
        source: A folder, a manifest CSV, a file, or a list of files.
        transform: ``transform(volume, slice_index)`` → sample, e.g. a
            :class:`~mrirecon.data.transforms.ReconTransform`. None serves ``(kspace (C, H, W)
            complex64 ndarray, path, slice_index)``.
        split: With a manifest: only this split (``train``, ``val``, ``test``).
        skip_bad: Leave bad files out instead of raising (see the module docstring).
        npy_axes: Axis order of ``.npy`` inputs.
        centered: FFT convention override (``False`` for Calgary-Campinas-style data).
        max_open: Volumes kept open per process.
        progress: Progress bar while counting slices of a folder.

    Attributes:
        index: ``[(file, slice), ...]``, one per item, grouped by volume in file order.
        bad_files: ``[(file, reason), ...]`` left out (with ``skip_bad``).
    """

    def __init__(
        self,
        source: Source,
        transform: Callable[[RawVolume, int], Any] | None = None,
        *,
        split: str | None = None,
        skip_bad: bool = False,
        npy_axes: str | None = None,
        centered: bool | None = None,
        max_open: int = 32,
        progress: bool = False,
    ):
        self.transform = transform
        self.skip_bad = skip_bad
        self.npy_axes = npy_axes
        self.centered = centered
        self.max_open = max(1, max_open)
        self.bad_files: list[tuple[Path, str]] = []
        self.index: list[tuple[Path, int]] = []
        self._open: OrderedDict[Path, RawVolume] = OrderedDict()
        self._pid = os.getpid()
        self._facts: dict[Path, VolumeFacts] = {}
        self._listed: dict[Path, int] = {}  # slice counts a manifest gives, checked when opened
        files = resolve_sources(source, split)
        for path, slices in tqdm(files, desc="scanning", unit="file", disable=not progress):
            if slices is not None:
                self._listed[path] = slices
            else:
                try:
                    with self._open_volume(path) as volume:
                        slices = volume.num_slices
                        self._facts[path] = VolumeFacts.of(volume)
                except DataError as error:
                    if not skip_bad:
                        raise
                    self._mark_bad(path, error)
                    continue
            self.index.extend((path, s) for s in range(slices))
        self._refuse_if_empty()

    @property
    def files(self) -> list[Path]:
        """The volumes served, in order."""
        return list(dict.fromkeys(path for path, _ in self.index))

    def file_facts(self) -> dict[Path, VolumeFacts]:
        """Each volume's :class:`VolumeFacts`, in file order.

        Volumes the scan did not open (a manifest gives the slice counts) are probed here: a fastMRI
        file by its structure (:func:`~mrirecon.data.fastmri.probe_conventions`, no k-space read),
        any other opened once; with ``skip_bad`` one that cannot be read is left out, with a
        notice, and its slices are no longer served.

        Raises:
            DataError: a volume that cannot be read (without ``skip_bad``), or none left.
        """
        from mrirecon.data.fastmri import probe_conventions

        for path in self.files:
            if path in self._facts:
                continue
            try:
                probed = probe_conventions(path, self.centered) if path.suffix.lower() == ".h5" else None
                if probed is not None:  # a fastMRI file: its structure says it, no k-space read
                    self._facts[path] = VolumeFacts(*probed)
                    continue
                with self._open_volume(path) as volume:
                    self._check_listed(path, volume)
                    self._facts[path] = VolumeFacts.of(volume)
            except DataError as error:
                if not self.skip_bad:
                    raise
                self._mark_bad(path, error)
        bad = {path for path, _ in self.bad_files}
        if bad:  # a manifest listed them: their slices are not served
            self.index = [(path, s) for path, s in self.index if path not in bad]
            self._refuse_if_empty()
        return {path: self._facts[path] for path in self.files if path in self._facts}

    def _refuse_if_empty(self) -> None:
        """A DataError when no slice is left to serve, with the first bad files' reasons."""
        if not self.index:
            raise DataError(
                f"no readable slices ({len(self.bad_files)} bad file(s))",
                hint="; ".join(reason for _, reason in self.bad_files[:3]) or None,
            )

    def slices_of(self, path: str | Path) -> list[int]:
        """Dataset indices of the slices of one volume, in slice order."""
        path = Path(path)
        return [i for i, (p, _) in enumerate(self.index) if p == path]

    def __len__(self) -> int:
        return len(self.index)

    def _open_volume(self, path: Path) -> RawVolume:
        return open_volume(path, npy_axes=self.npy_axes, centered=self.centered)

    def _check_listed(self, path: Path, volume: RawVolume) -> None:
        """A volume a manifest lists must have the slices the manifest says (more would be left
        out silently, fewer would fail at a later slice)."""
        listed = self._listed.get(path)
        if listed is not None and volume.num_slices != listed:
            raise DataError(
                f"the file has {volume.num_slices} slice(s), the manifest {listed}",
                path=path,
                hint="write the manifest again (mrirecon manifest create) or restore the file",
            )

    def volume(self, path: Path) -> RawVolume:
        """The open volume of ``path`` in this process (opened on first use, least recent closed)."""
        if self._pid != os.getpid():  # a forked worker: never reuse the parent's handles
            self._open = OrderedDict()
            self._pid = os.getpid()
        volume = self._open.get(path)
        if volume is None:
            volume = self._open_volume(path)
            try:
                self._check_listed(path, volume)
            except DataError:
                volume.close()
                raise
            self._open[path] = volume
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)[1].close()
        self._open.move_to_end(path)
        return volume

    def _load(self, item: int) -> Any:
        path, slice_index = self.index[item]
        volume = self.volume(path)  # a manifest written before the file changed: refused there
        if self.transform is None:
            return volume.read_kspace(slice_index), str(path), slice_index
        return self.transform(volume, slice_index)

    def __getitem__(self, item: int) -> Any:
        try:
            return self._load(item)
        except DataError as error:
            if not self.skip_bad:
                raise
            self._mark_bad(self.index[item][0], error)
        bad = {path for path, _ in self.bad_files}
        for step in range(1, len(self.index)):
            other = (item + step) % len(self.index)
            if self.index[other][0] in bad:
                continue
            try:
                return self._load(other)
            except DataError as error:
                self._mark_bad(self.index[other][0], error)
                bad.add(self.index[other][0])
        raise DataError("no readable slice is left in the dataset", hint="see the warnings above")

    def _mark_bad(self, path: Path, error: DataError) -> None:
        if any(p == path for p, _ in self.bad_files):
            return
        self.bad_files.append((path, error.one_line()))
        warnings.warn(Notice(f"skipping a bad file (data.skip_bad): {error.one_line()}"), stacklevel=3)
        volume = self._open.pop(path, None)
        if volume is not None:
            volume.close()

    def close(self) -> None:
        """Close every volume this process opened."""
        while self._open:
            self._open.popitem()[1].close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()  # open files stay in their process
        return state

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown anything may be gone
            if self._pid == os.getpid():
                self.close()
