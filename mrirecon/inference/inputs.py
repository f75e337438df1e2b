"""Which files a run reconstructs, and where each one's outputs go.

Inputs are one file, a folder (its supported files, sorted by name; dot files are skipped, so a
``.NAME.partial`` left by a killed run is never taken for an input) or a manifest CSV (in the
manifest's order, optionally one split). Each input ``NAME.EXT`` gets

- ``OUTPUT_DIR/NAME.h5``: the reconstruction HDF5 (docs/interfaces.md §5; fastMRI keeps the input's
  name);
- ``OUTPUT_DIR/dicom/NAME/IM_0001.dcm …``: its DICOM series, with ``--dicom``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mrirecon.atomic import partial_name
from mrirecon.data.bart import bart_pair
from mrirecon.data.volume import SUPPORTED_SUFFIXES, is_supported
from mrirecon.errors import ConfigError, DataError
from mrirecon.export.deidentify import file_pseudonym
from mrirecon.export.series_record import record_path

__all__ = ["INPUT_SUFFIXES", "OutputPaths", "list_inputs", "output_paths"]

#: File types ``mrirecon convert`` reads (fastMRI/ISMRMRD HDF5, BART cfl, NumPy).
INPUT_SUFFIXES = SUPPORTED_SUFFIXES
DICOM_FOLDER = "dicom"


def list_inputs(source: str | os.PathLike[str], *, split: str | None = None) -> list[Path]:
    """The input files of ``source``: a file, a folder, or a manifest CSV.

    Args:
        source: One input file, a folder of inputs, or a manifest ``.csv``.
        split: With a manifest, keep only its entries of this split (``train``, ``val``, ``test``).

    Raises:
        DataError: if ``source`` does not exist, is of an unsupported type or lists no input.
    """
    path = Path(source)
    if split is not None and not (path.is_file() and path.suffix.lower() == ".csv"):
        raise DataError(
            "a split can only be chosen from a manifest CSV",
            path=path,
            hint="pass the manifest (mrirecon manifest create) instead of the folder, or leave --split out",
        )
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.is_file() and is_supported(p)), key=lambda p: p.name)
    elif path.is_file() and path.suffix.lower() == ".csv":
        from mrirecon.data.manifest import read_manifest

        entries = read_manifest(path)
        files = [Path(e.path) for e in entries if split is None or e.split == split]
        if entries and not files:
            splits = ", ".join(sorted({e.split for e in entries}))
            raise DataError(
                f"the manifest has no entry of split '{split}'", path=path, hint=f"its splits: {splits}"
            )
    elif path.is_file() and path.suffix.lower() == ".hdr":  # a BART array named by its header
        files = [bart_pair(path)[1]]
    elif path.is_file():
        if path.name.startswith("."):
            raise DataError(
                "names starting with a dot are hidden files, which mrirecon does not read "
                "(a folder's dot files are skipped too)",
                path=path,
                hint=f"rename it to {path.name.lstrip('.') or 'volume'}",
            )
        if not is_supported(path):
            raise DataError(
                f"unsupported input type '{path.suffix}'",
                path=path,
                hint=f"inputs are {', '.join(INPUT_SUFFIXES)} files, a folder of them or a manifest .csv",
            )
        files = [path]
    else:
        raise DataError("no such input file, folder or manifest", path=path, hint="check the path")
    if not files:
        nested = path.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())
        raise DataError(
            "no input volumes found" + (f" in split '{split}'" if split else ""),
            path=path,
            hint=f"inputs are {', '.join(INPUT_SUFFIXES)} files"
            + (" directly in the folder: its subfolders are not searched" if nested else ""),
        )
    return files


@dataclass(frozen=True)
class OutputPaths:
    """Where one input's outputs go."""

    recon: Path
    dicom: Path


#: The longest file name most file systems take, in bytes (ext4, XFS, btrfs, NTFS, APFS).
NAME_MAX = 255


def check_output_name_length(path: Path) -> None:
    """Refuse an input whose outputs' names would pass :data:`NAME_MAX` bytes: the longest is its
    DICOM series record while it is written (``..STEM.series.json.partial``).

    Raises:
        DataError: naming the input, the length and the limit.
    """
    stem = len(path.stem.encode("utf-8", "surrogateescape"))
    suffixes = len(partial_name(record_path(Path("x"))).name) - 1  # the record's name, less its stem
    longest = stem + suffixes
    if longest > NAME_MAX:
        raise DataError(
            f"the file name is too long for its outputs' names ({longest} bytes with their suffixes; "
            f"file systems take {NAME_MAX})",
            path=path,
            hint=f"rename it to a name of at most {NAME_MAX - longest + stem} bytes before its suffix",
        )


def output_paths(
    inputs: list[Path], output_dir: str | os.PathLike[str], *, pseudonym_salt: str | None = None
) -> list[OutputPaths]:
    """The output paths of every input, in the same order.

    With ``pseudonym_salt`` (a de-identified run) an output is named after the input's pseudonym
    (:func:`mrirecon.export.deidentify.file_pseudonym`), not its name.

    Raises:
        ConfigError: if two inputs would write the same output (same name in different folders of
            a manifest, ``a.h5`` beside ``a.npy``, or names that differ only in case, one file on
            a case-insensitive share), or the output folder is an input's folder (a reconstruction
            would replace its raw data, or be read as an input next time).
        DataError: an input named so that its outputs would be hidden or leave their folder
            (``...npy`` has the stem ``..``; a name starting with a dot).
    """
    root = Path(output_dir)
    folders = {p.resolve().parent for p in inputs}
    if root.resolve() in folders:
        raise ConfigError(
            "the output folder is the folder of the inputs",
            path=root,
            hint="choose another output folder: reconstructions would replace or mix with the raw files",
        )
    seen: dict[str, Path] = {}
    out = []
    for path in inputs:
        if not path.stem or path.stem.startswith("."):
            raise DataError(
                "an input whose name starts with a dot would write hidden outputs (or, named '...npy', "
                "outside their folder)",
                path=path,
                hint="rename the file",
            )
        stem = path.stem if pseudonym_salt is None else file_pseudonym(path.name, pseudonym_salt)
        key = stem.casefold()
        if key in seen:
            raise ConfigError(
                f"two inputs would write the same output '{stem}.h5' (names compared regardless of "
                f"case): {seen[key]} and {path}",
                hint="rename one of them, or reconstruct them into different output folders",
            )
        seen[key] = path
        out.append(OutputPaths(recon=root / f"{stem}.h5", dicom=root / DICOM_FOLDER / stem))
    return out
