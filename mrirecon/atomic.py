"""Atomic output files and folders, and clear errors when the disk or the permissions say no.

Every output of mrirecon is written under a temporary name beside its final name
(``.NAME.partial``, a dot file in the same folder so that the rename never crosses a file system),
flushed to the disk with ``fsync`` and renamed when complete. So:

- a file under its final name is always complete: a run killed half-way (even with SIGKILL)
  leaves at most a ``.NAME.partial`` behind, which the next write of the same output replaces;
- an existing complete file is never damaged by a failed rewrite: it is replaced only by the
  final rename, which POSIX makes atomic;
- a failure while writing (disk full, quota, file too large, no permission, read-only file
  system) becomes an :class:`~mrirecon.errors.ExportError` naming the output and the fix, and the
  temporary is removed.

HDF5 reports operating-system errors as ``RuntimeError`` or ``OSError`` with the errno only in the
message text (``errno = 28, error message = 'No space left on device'``); :func:`io_errno` reads
it from either place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from mrirecon.errors import ExportError

__all__ = [
    "atomic_directory",
    "atomic_file",
    "export_error",
    "final_name",
    "fsync_directory",
    "fsync_file",
    "io_errno",
    "is_io_failure",
    "partial_name",
    "prepare_output_folder",
]

PARTIAL_SUFFIX = ".partial"

_ERRNO_IN_TEXT = re.compile(r"errno\s*=\s*(\d+)")
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NO_PERMISSION = {errno.EACCES, errno.EPERM}


def partial_name(final: Path) -> Path:
    """The temporary name of ``final`` while it is being written: ``FOLDER/.NAME.partial``."""
    return final.parent / f".{final.name}{PARTIAL_SUFFIX}"


def final_name(path: Path) -> Path:
    """The file ``path`` stands for: the final file of a :func:`partial_name`, else ``path``."""
    if path.name.startswith(".") and path.name.endswith(PARTIAL_SUFFIX):
        return path.parent / path.name[1 : -len(PARTIAL_SUFFIX)]
    return path


def io_errno(error: BaseException) -> int | None:
    """The operating-system error number behind ``error``, or None if it is not an I/O error.

    ``OSError`` carries it as ``.errno``; HDF5 (through h5py) often raises ``RuntimeError`` or an
    ``OSError`` without ``.errno`` and puts ``errno = N`` in the message; pydicom re-raises a failed
    write as an ``OSError`` without one, the original as its cause.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | RuntimeError):
            number = getattr(current, "errno", None)
            if isinstance(number, int):
                return number
            match = _ERRNO_IN_TEXT.search(str(current))
            if match:
                return int(match.group(1))
        # an explicit cause; or, for an OSError without a number (pydicom's re-raise), what it was
        # raised while handling: never the context of another kind of error (that may be a bug)
        current = current.__cause__ or (current.__context__ if isinstance(current, OSError) else None)
    return None


def export_error(error: BaseException, path: Path, what: str) -> ExportError:
    """An :class:`ExportError` for an I/O failure while writing ``what`` to ``path``.

    The message says what failed in words a user acts on; the hint says how to fix it and that
    nothing complete was overwritten.
    """
    number = io_errno(error)
    kept = "nothing already written was changed"
    if number in _NO_SPACE:
        reason = "no space left on the device" if number != errno.EFBIG else "the file grew too large"
        return ExportError(
            f"could not write the {what}: {reason} ({os.strerror(number or 0)})",
            path=path,
            hint=f"free disk space or raise the quota, or choose another output folder; {kept}",
        )
    if number in _NO_PERMISSION:
        return ExportError(
            f"could not write the {what}: permission denied",
            path=path,
            hint=f"make the output folder writable for this user, or choose another output folder; {kept}",
        )
    if number == errno.EROFS:
        return ExportError(
            f"could not write the {what}: the file system is read-only",
            path=path,
            hint=f"choose an output folder on a writable file system; {kept}",
        )
    detail = os.strerror(number) if number is not None else str(error)
    return ExportError(f"could not write the {what}: {detail}", path=path, hint=kept)


def is_io_failure(error: BaseException) -> bool:
    """Whether ``error`` is a failure of the operating system's I/O (any ``OSError``, or HDF5's errno)."""
    return isinstance(error, OSError) or io_errno(error) is not None


def prepare_output_folder(folder: Path, what: str) -> None:
    """Create ``folder`` (and its parents) if needed and check that this user may write in it.

    Raises:
        ExportError: if it cannot be created, is not a folder, or is not writable.
    """
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"the output folder for the {what} is a file", path=folder, hint="choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise export_error(error, folder, what) from error
    if not os.access(folder, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        raise export_error(OSError(errno.EROFS if read_only else errno.EACCES, "not writable"), folder, what)


def fsync_file(path: Path) -> None:
    """Flush ``path``'s data to the disk (it may have been written and closed by a library)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


@contextlib.contextmanager
def atomic_file(final: Path, *, what: str) -> Iterator[Path]:
    """Write ``final`` atomically: yields the temporary path to write to.

    On normal exit the temporary is fsynced and renamed to ``final`` (replacing an older complete
    file in one step). On any exception the temporary is removed and ``final`` is left as it was;
    I/O errors become an :class:`ExportError` naming ``final``.

    Args:
        final: The output's final path. Its folder is created if needed.
        what: What is written, for messages ("reconstruction HDF5", "DICOM file").
    """
    final = Path(final)
    prepare_output_folder(final.parent, what)
    temporary = partial_name(final)
    _remove(temporary)  # a leftover of a killed run
    try:
        yield temporary
        fsync_file(temporary)
        temporary.replace(final)
    except BaseException as error:
        _remove(temporary)
        if is_io_failure(error):
            raise export_error(error, final, what) from error
        raise
    fsync_directory(final.parent)


@contextlib.contextmanager
def atomic_directory(final: Path, *, what: str) -> Iterator[Path]:
    """Fill a new folder atomically: yields ``PARENT/.NAME.partial``, renamed to ``final`` at the end.

    Only for a folder that does not exist yet (the caller checks); the files inside are written
    by the caller, who fsyncs them. On any exception the partial folder is removed.
    """
    final = Path(final)
    prepare_output_folder(final.parent, what)
    temporary = partial_name(final)
    _remove(temporary)
    try:
        temporary.mkdir()
        yield temporary
        fsync_directory(temporary)
        temporary.rename(final)
    except BaseException as error:
        _remove(temporary)
        if is_io_failure(error):
            raise export_error(error, final, what) from error
        raise
    fsync_directory(final.parent)


LOCK_NAME = ".mrirecon.lock"


#: Descriptors of the folder locks this process holds (see :func:`exclusive_folder`).
_HELD_LOCKS: set[int] = set()


def _drop_inherited_locks() -> None:
    """In a forked child (a DataLoader worker): close the inherited lock descriptors. A ``flock``
    belongs to the open file, which a fork shares: a worker outliving a killed run would otherwise
    hold the folder for seconds, refusing the restart in the name of a dead process."""
    for fd in _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)


@contextlib.contextmanager
def exclusive_folder(folder: Path, *, what: str) -> Iterator[Path]:
    """Hold an exclusive lock on an output folder for the block (one writer per folder).

    The lock is ``FOLDER/.mrirecon.lock``, taken with ``flock`` (released by the kernel when the
    process ends, killed or not, so a crashed run never blocks the next one; processes forked
    while it is held close their copy at once); the file records
    who holds it (process id, host, start time), which a refused second writer quotes, and is
    removed when the block ends.

    Raises:
        ConfigError: another process holds the lock.
        ExportError: the folder cannot be created or written.
    """
    import datetime
    import fcntl
    import socket

    from mrirecon.errors import ConfigError

    prepare_output_folder(folder, what)
    lock = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise export_error(error, lock, what) from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(
                f"another mrirecon run is writing {what} into this folder ({holder})",
                path=folder,
                hint="wait for it to finish, or give another --output-dir",
            ) from None
        try:  # the holder before us may have removed the file between our open and our lock
            if lock.stat().st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    _HELD_LOCKS.add(fd)
    try:
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        text = f"process {os.getpid()} on {socket.gethostname()}, since {stamp}"
        try:  # who holds the lock, for a run that finds it taken (a full disk leaves it empty)
            os.ftruncate(fd, 0)
            os.pwrite(fd, text.encode(), 0)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise export_error(error, lock, what) from error
        yield lock
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        _HELD_LOCKS.discard(fd)
        os.close(fd)  # closing the descriptor releases the lock
