"""What a finished DICOM series is: the size and sha256 of each file, recorded when it was written.

A batch run resumed after a crash must not take a truncated or damaged series for a finished one
(a file count would). :func:`write_record` stores, beside the series folder, a hidden
``.NAME.series.json`` with every file's size and sha256; :func:`series_intact` checks the folder
against it. A series without a record (written by an older mrirecon, or whose record was lost)
counts as unfinished and is exported again from its reconstruction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from mrirecon.atomic import atomic_file

__all__ = ["record_path", "series_intact", "write_record"]


def record_path(folder: Path) -> Path:
    """The record of the series in ``folder``: ``PARENT/.NAME.series.json``."""
    return folder.parent / f".{folder.name}.series.json"


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_record(folder: Path, files: Sequence[Path]) -> Path:
    """Record the size and sha256 of each file of a series just written (atomically)."""
    entries = {path.name: {"size": path.stat().st_size, "sha256": _digest(path)} for path in files}
    target = record_path(folder)
    with atomic_file(target, what="DICOM series record") as temporary:
        temporary.write_text(json.dumps({"files": entries}, indent=1), encoding="utf-8")
    return target


def series_intact(folder: Path, names: Sequence[str]) -> bool:
    """Whether ``folder`` holds exactly the files ``names``, each with the size and sha256 recorded
    when it was written."""
    try:
        recorded = json.loads(record_path(folder).read_text(encoding="utf-8"))["files"]
        present = {p.name for p in folder.glob("*.dcm")}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if present != set(names) or set(recorded) != set(names):
        return False
    for name in names:
        path = folder / name
        entry = recorded[name]
        try:
            if path.stat().st_size != entry["size"] or _digest(path) != entry["sha256"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True
