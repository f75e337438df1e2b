"""Dataset manifests: which files, unchanged (sha256), in which split.

A manifest is a CSV file with a header row and one row per volume (format documented in
``data_manifests/README.md``)::

    path,sha256,shape,coils,acquisition,split
    vol_000.h5,9f2c...,16x8x256x256,8,AXFLAIR,train

- ``path``: relative to the manifest's folder (POSIX separators); :func:`read_manifest` returns
  absolute paths.
- ``sha256``: of the file's bytes (for a BART array: of its ``.cfl``).
- ``shape``: the volume as mrirecon serves it, ``slices x coils x H x W``.
- ``coils``, ``acquisition`` (the ``acquisition`` attribute, may be empty), ``split``
  (``train``, ``val`` or ``test``).

Splits are drawn per patient (the ``patient_id`` attribute; each file is its own patient when it
has none) so that no patient is in two splits, and are reproducible for a seed.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mrirecon.atomic import atomic_file
from mrirecon.data.bart import bart_pair
from mrirecon.data.volume import check_file_name, is_supported, open_volume
from mrirecon.errors import ConfigError, DataError

__all__ = [
    "COLUMNS",
    "SPLITS",
    "ManifestCheck",
    "ManifestEntry",
    "assign_splits",
    "build_manifest",
    "create_manifest",
    "describe_file",
    "list_volume_files",
    "read_manifest",
    "sha256_file",
    "verify_manifest",
    "write_manifest",
]

COLUMNS = ("path", "sha256", "shape", "coils", "acquisition", "split")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ManifestEntry:
    """One row of a manifest.

    Attributes:
        path: Absolute path of the volume.
        sha256: Hex digest of its bytes.
        shape: ``(slices, coils, H, W)`` as served by :func:`~mrirecon.data.volume.open_volume`.
        coils: Coil count.
        acquisition: The ``acquisition`` attribute ("" if none).
        split: ``train``, ``val`` or ``test``.
    """

    path: Path
    sha256: str
    shape: tuple[int, ...]
    coils: int
    acquisition: str
    split: str

    @property
    def num_slices(self) -> int:
        """Slices of the volume (``shape[0]``)."""
        return self.shape[0]


def sha256_file(path: Path, *, chunk: int = 1 << 22) -> str:
    """The sha256 hex digest of a file (of the ``.cfl`` for a BART array)."""
    path = _data_file(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def list_volume_files(folder: Path, *, recursive: bool = True) -> list[Path]:
    """The supported input files below ``folder``, sorted (hidden files and ``.partial`` left out)."""
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in pattern if p.is_file() and is_supported(p))


def _format_shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(n)) for n in shape)


def _parse_shape(text: str) -> tuple[int, ...]:
    parts = text.lower().replace("×", "x").split("x")
    shape = tuple(int(p) for p in parts)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"shape must be slices x coils x H x W, got '{text}'")
    return shape


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    """Read a manifest CSV (see the module docstring).

    Returns:
        The entries in the file's order, with absolute paths.

    Raises:
        DataError: missing file, missing columns, or a malformed row (naming its line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such manifest", path=path)
    root = path.resolve().parent
    try:
        # utf-8-sig: a manifest saved by a spreadsheet program starts with a byte-order mark
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            # "path, sha256, ..." (spaces after the commas) names the same columns
            reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
            missing = [c for c in COLUMNS if c not in reader.fieldnames]
            if missing:
                raise DataError(
                    f"the manifest lacks the column(s) {', '.join(missing)}",
                    path=path,
                    hint=f"a manifest has the header row {','.join(COLUMNS)}",
                )
            rows = [(reader.line_num, row) for row in reader]  # line_num: blank lines counted
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read the manifest: {error}", path=path) from error
    entries = []
    listed: dict[Path, int] = {}
    for line, row in rows:
        try:
            entry = _entry(row, root)
            # the same file twice (a BART array as NAME, NAME.cfl or NAME.hdr; a link and its
            # target): in one split it doubles its slices, in two it leaks across them
            key = Path(os.path.realpath(_data_file(entry.path)))
            if key in listed:
                raise ValueError(f"{row['path']} is listed on line {listed[key]} already")
            listed[key] = line
            entries.append(entry)
        except ValueError as error:
            raise DataError(f"line {line}: {error}", path=path) from error
    return entries


def _absolute(path: str | Path) -> Path:
    """``path`` made absolute and normalised, a symbolic link kept (not resolved to its target)."""
    return Path(os.path.normpath(Path(path).absolute()))


def _data_file(path: Path) -> Path:
    """The file holding a volume's samples: the ``.cfl`` of a BART array, else the file."""
    return bart_pair(path)[1] if path.suffix.lower() in (".cfl", ".hdr") or not path.suffix else path


def _entry(row: dict[str, str | None], root: Path) -> ManifestEntry:
    """One manifest row as an entry, its path absolute (as listed: a link is not followed).

    Raises:
        ValueError: a missing or malformed value.
    """
    absent = [c for c in COLUMNS if c != "acquisition" and not (row.get(c) or "").strip()]
    if absent:
        raise ValueError(f"no value for {', '.join(absent)}")
    cells = {c: (row.get(c) or "") for c in COLUMNS}
    split = cells["split"].strip()
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")
    # the cell as written when that file exists (a name may begin or end with a space), else
    # without the spaces around it (a hand-written "a.h5, ..." row)
    file = _absolute(root / cells["path"])
    if cells["path"] != cells["path"].strip() and not file.exists():
        file = _absolute(root / cells["path"].strip())
    shape = _parse_shape(cells["shape"])
    try:
        coils = int(cells["coils"])
    except ValueError:
        raise ValueError(f"coils must be an integer, got '{cells['coils'].strip()}'") from None
    if coils != shape[1]:
        raise ValueError(
            f"coils {coils} differs from the {shape[1]} coils of the shape {cells['shape'].strip()}"
        )
    return ManifestEntry(
        file, cells["sha256"].strip().lower(), shape, coils, cells["acquisition"].strip(), split
    )


def write_manifest(path: str | Path, entries: Iterable[ManifestEntry]) -> Path:
    """Write entries as a manifest CSV (atomically), with paths relative to its folder."""
    path = Path(path)
    root = path.resolve().parent
    with (
        atomic_file(path, what="manifest") as temporary,
        open(temporary, "w", newline="", encoding="utf-8") as f,
    ):
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        for e in entries:
            relative = Path(os.path.relpath(_absolute(e.path), root)).as_posix()
            writer.writerow([relative, e.sha256, _format_shape(e.shape), e.coils, e.acquisition, e.split])
    return path


def describe_file(
    path: Path, *, split: str = "train", npy_axes: str | None = None
) -> tuple[ManifestEntry, str]:
    """The manifest entry of a file (hashing and opening it) and its patient id ("" if none).

    Raises:
        DataError: if the file cannot be read as a volume.
    """
    check_file_name(path)  # the manifest names it in a UTF-8 CSV
    with open_volume(path, npy_axes=npy_axes) as volume:
        shape = (volume.num_slices, *volume.kspace_shape)
        acquisition = volume.acquisition
        patient = str(volume.attrs.get("patient_id", "") or "")
    try:
        digest = sha256_file(path)
    except OSError as error:
        raise DataError(f"cannot read the file: {error}", path=path) from error
    entry = ManifestEntry(_absolute(path), digest, shape, shape[1], acquisition, split)
    return entry, patient


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(not math.isfinite(f) or f < 0 for f in fractions):
        raise ConfigError(
            f"split fractions must be three numbers >= 0 (train,val,test), got {list(fractions)}"
        )
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must sum to 1, got {list(fractions)} (sum {sum(fractions):g})")
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def assign_splits(groups: Sequence[str], fractions: Sequence[float], seed: int) -> dict[str, str]:
    """Assign each group (patient) to a split.

    The groups are shuffled with the seed and cut by the fractions (largest remainders); every
    split with a non-zero fraction gets at least one group when there are enough groups.

    Returns:
        group → split.
    """
    train, val, test = _check_fractions(fractions)
    unique = sorted(set(groups))
    n = len(unique)
    wanted = np.array([train, val, test]) * n
    counts = np.floor(wanted).astype(int)
    for k in np.argsort(-(wanted - counts), kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    nonzero = [k for k in range(3) if (train, val, test)[k] > 0]
    if n >= len(nonzero):
        for k in nonzero:
            if counts[k] == 0:
                counts[int(np.argmax(counts))] -= 1
                counts[k] = 1
    order = np.random.default_rng(seed).permutation(n)
    out: dict[str, str] = {}
    bounds = np.cumsum(counts)
    for position, index in enumerate(order):
        split = SPLITS[int(np.searchsorted(bounds, position, side="right"))]
        out[unique[index]] = split
    return out


def build_manifest(
    files: Sequence[Path],
    output: str | Path,
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    npy_axes: str | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> tuple[list[ManifestEntry], list[tuple[Path, str]]]:
    """Describe the given files, draw their splits per patient and write the manifest.

    Returns:
        ``(entries, bad)``: the written entries and the ``(file, reason)`` pairs left out.

    Raises:
        DataError: no file, or an unreadable one without ``skip_bad``.
        ConfigError: bad fractions.
    """
    _check_fractions(fractions)
    described: list[tuple[ManifestEntry, str]] = []
    bad: list[tuple[Path, str]] = []
    for path in tqdm(files, desc="manifest", unit="file", disable=not progress):
        try:
            described.append(describe_file(Path(path), npy_axes=npy_axes))
        except DataError as error:
            if not skip_bad:
                raise
            bad.append((Path(path), error.one_line()))
    if not described:
        raise DataError("no readable volume to list", path=output)
    groups = [patient or str(entry.path) for entry, patient in described]
    splits = assign_splits(groups, fractions, seed)
    entries = [
        ManifestEntry(e.path, e.sha256, e.shape, e.coils, e.acquisition, splits[group])
        for (e, _), group in zip(described, groups)
    ]
    write_manifest(output, entries)
    return entries, bad


def create_manifest(
    data_dir: str | Path,
    output: str | Path,
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    npy_axes: str | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> tuple[list[ManifestEntry], list[tuple[Path, str]]]:
    """Describe every supported file below ``data_dir`` and write the manifest.

    Args:
        data_dir: The folder (searched recursively).
        output: The manifest CSV to write.
        fractions: ``(train, val, test)`` fractions, summing to 1; drawn per patient.
        seed: Seed of the split.
        npy_axes: Axis order of ``.npy`` files.
        skip_bad: Leave unreadable files out (and return them) instead of failing.
        progress: Show a progress bar.

    Returns:
        ``(entries, bad)``: the written entries and the ``(file, reason)`` pairs left out.

    Raises:
        DataError: no supported file, or an unreadable one without ``skip_bad``.
        ConfigError: bad fractions.
    """
    folder = Path(data_dir)
    _check_fractions(fractions)
    if not folder.is_dir():
        raise DataError("no such folder", path=folder)
    files = list_volume_files(folder)
    if not files:
        raise DataError("no supported volume files in the folder", path=folder)
    return build_manifest(
        files, output, fractions=fractions, seed=seed, npy_axes=npy_axes, skip_bad=skip_bad, progress=progress
    )


@dataclass
class ManifestCheck:
    """What :func:`verify_manifest` found.

    Attributes:
        ok: Entries whose file is present, unchanged and readable.
        missing: Entries whose file is gone.
        changed: ``(entry, what)``: checksum or shape differs.
        unreadable: ``(entry, why)``: present but cannot be read.
    """

    ok: list[ManifestEntry] = field(default_factory=list)
    missing: list[ManifestEntry] = field(default_factory=list)
    changed: list[tuple[ManifestEntry, str]] = field(default_factory=list)
    unreadable: list[tuple[ManifestEntry, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every file is present, unchanged and readable."""
        return not (self.missing or self.changed or self.unreadable)


def verify_manifest(
    path: str | Path,
    *,
    npy_axes: str | None = None,
    progress: bool = True,
    on_problem: Callable[[str], object] | None = None,
) -> ManifestCheck:
    """Check every file of a manifest: present, same sha256, readable, same shape.

    Args:
        path: The manifest CSV.
        npy_axes: The axis order of its ``.npy`` files (as given to ``manifest create``).
        progress: Show a progress bar.
        on_problem: Called with a one-line description of each problem as it is found.

    Raises:
        DataError: if the manifest itself cannot be read.
    """
    check = ManifestCheck()
    report = on_problem or (lambda _: None)
    for entry in tqdm(read_manifest(path), desc="verify", unit="file", disable=not progress):
        if not _data_file(entry.path).exists():
            check.missing.append(entry)
            report(f"missing: {entry.path}")
            continue
        try:
            digest = sha256_file(entry.path)
        except OSError as error:
            check.unreadable.append((entry, str(error)))
            report(f"unreadable: {entry.path}: {error}")
            continue
        if digest != entry.sha256:
            check.changed.append((entry, "sha256 differs"))
            report(f"changed: {entry.path}: sha256 {digest[:12]}… ≠ {entry.sha256[:12]}…")
            continue
        try:
            with open_volume(entry.path, npy_axes=npy_axes) as volume:
                shape = (volume.num_slices, *volume.kspace_shape)
        except DataError as error:
            check.unreadable.append((entry, error.message))
            report(f"unreadable: {error.one_line()}")
            continue
        if shape != entry.shape:
            what = f"shape {_format_shape(shape)} ≠ {_format_shape(entry.shape)}"
            check.changed.append((entry, what))
            report(f"changed: {entry.path}: {what}")
            continue
        check.ok.append(entry)
    return check
