"""The package-wide exception hierarchy.

Every error a user can cause (a bad file, a bad option, a bad config) is raised as one of these
types, with a message that names the file or option and says how to fix it. The CLI prints such an
error on one line and exits with code 2; ``--debug`` shows the traceback. Programming errors (bugs)
stay ordinary Python exceptions.

    MriReconError
    ├── DataError        unreadable or inconsistent input data (files, shapes, masks)
    ├── ConfigError      bad configuration values, unknown keys or names, bad CLI options
    ├── ModelError       a model that cannot take the given input
    ├── CheckpointError  unreadable checkpoints, or a checkpoint for another model
    └── ExportError      failures while writing outputs (HDF5, DICOM)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "ExportError",
    "ModelError",
    "MriReconError",
    "Notice",
    "path_text",
]


def path_text(path: str | os.PathLike[str]) -> str:
    """``path`` as text that can be printed and written anywhere (UTF-8): the bytes of a name the
    file system holds in another encoding (Latin-1 from an SMB share) are shown as ``\\xNN``
    instead of the surrogates Python decodes them to, which no UTF-8 writer accepts."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class MriReconError(Exception):
    """Base class of every error a user of mrirecon can cause.

    Args:
        message: What is wrong, in one sentence.
        path: The file or folder concerned, if any; it is put in front of the message.
        hint: How to fix it, if that is not obvious from the message.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None, hint: str | None = None):
        self.message = _worker_error_line(message)
        self.path = Path(path) if path is not None else None
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self, *, hint: bool = True) -> str:
        """The error as one line: ``path: message (hint)``; ``hint=False`` leaves the hint out (for
        an error that wraps this one and carries the hint itself)."""
        text = self.message.strip().replace("\n", " ")
        if self.path is not None:
            text = f"{path_text(self.path)}: {text}"
        if hint and self.hint:
            text = f"{text} ({self.hint.strip()})"
        return text


def _worker_error_line(message: str) -> str:
    """The error's own line when ``message`` is a DataLoader worker's report of it.

    PyTorch raises an error of a worker process again in the main process as the same type, made
    from one text: "Caught DataError in DataLoader worker process 0. Original Traceback (most
    recent call last): ...". Its last line is the error as it was raised (path and hint
    included); that line is the message, not a 2,000-character traceback.
    """
    if not (message.startswith("Caught ") and "Original Traceback" in message):
        return message
    last = message.rstrip().rsplit("\n", 1)[-1]
    name, separator, text = last.partition(": ")
    return text if separator and name.rsplit(".", 1)[-1].endswith("Error") else message


class DataError(MriReconError):
    """Input data that cannot be read or does not make sense (missing file, corrupt HDF5, bad shape...)."""


class ConfigError(MriReconError):
    """A configuration value, key, name or command-line option that is not valid."""


class ModelError(MriReconError):
    """A model that cannot take the input it was given (coil count, size, dimensionality)."""


class CheckpointError(MriReconError):
    """A checkpoint that cannot be read, or that belongs to another model or version."""


class ExportError(MriReconError):
    """A failure while writing outputs (reconstruction HDF5, DICOM): disk full, no permission..."""


class Notice(UserWarning):
    """Something the user should know that is not an error (a recovered mask, an option that does
    not apply). The CLI prints each as one line, ``Note: ...``."""
