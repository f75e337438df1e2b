"""Atomic files and folders; I/O failures become ExportError naming the file and the fix."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from mrirecon.atomic import atomic_directory, atomic_file, export_error, io_errno, partial_name
from mrirecon.errors import ExportError


def test_partial_name_is_a_hidden_sibling(tmp_path: Path) -> None:
    assert partial_name(tmp_path / "a.h5") == tmp_path / ".a.h5.partial"


def test_success_renames_and_leaves_no_temporary(tmp_path: Path) -> None:
    final = tmp_path / "sub" / "out.bin"
    with atomic_file(final, what="test file") as temporary:
        assert temporary == partial_name(final) and not final.exists()
        temporary.write_bytes(b"new")
    assert final.read_bytes() == b"new"
    assert sorted(p.name for p in final.parent.iterdir()) == ["out.bin"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    final.write_bytes(b"old and complete")
    with pytest.raises(ExportError) as info, atomic_file(final, what="test file") as temporary:
        temporary.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert final.read_bytes() == b"old and complete"
    assert not temporary.exists()
    message = str(info.value)
    assert message.startswith(f"{final}: could not write the test file: no space left on the device")
    assert "free disk space" in message and "nothing already written was changed" in message


def test_other_exceptions_pass_through_and_clean_up(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    with pytest.raises(KeyError), atomic_file(final, what="test file") as temporary:
        temporary.write_bytes(b"x")
        raise KeyError("bug")
    assert not temporary.exists() and not final.exists()


def test_stale_partial_of_a_killed_run_is_replaced(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    partial_name(final).write_bytes(b"left over by SIGKILL")
    with atomic_file(final, what="test file") as temporary:
        temporary.write_bytes(b"complete")
    assert final.read_bytes() == b"complete" and not partial_name(final).exists()


def test_atomic_directory(tmp_path: Path) -> None:
    final = tmp_path / "series"
    with atomic_directory(final, what="series") as temporary:
        (temporary / "a").write_text("1")
        assert not final.exists()
    assert (final / "a").read_text() == "1" and not partial_name(final).exists()
    with (
        pytest.raises(ExportError, match="permission denied"),
        atomic_directory(tmp_path / "s2", what="series") as t,
    ):
        (t / "a").write_text("1")
        raise PermissionError(errno.EACCES, "Permission denied")
    assert not (tmp_path / "s2").exists() and not partial_name(tmp_path / "s2").exists()


def test_errno_from_hdf5_messages() -> None:
    text = "Can't decrement id ref count (unable to extend file properly, errno = 28, error message = 'x')"
    assert io_errno(RuntimeError(text)) == 28
    assert io_errno(OSError(errno.EACCES, "denied")) == errno.EACCES
    assert io_errno(RuntimeError("no number here")) is None
    assert io_errno(ValueError("errno = 5")) is None
    # pydicom re-raises a failed write as an OSError without a number, raised while handling it
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise OSError(f"{inner}\nfor data_element:\n(7FE0,0010) Pixel Data")  # noqa: B904 (as pydicom)
    except OSError as outer:
        assert outer.errno is None and io_errno(outer) == errno.ENOSPC
    try:  # a bug while handling an I/O error stays a bug
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise TypeError("a bug")  # noqa: B904 (a bug in a handler)
    except TypeError as bug:
        assert io_errno(bug) is None


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (errno.ENOSPC, "no space left"),
        (errno.EDQUOT, "no space left"),
        (errno.EFBIG, "too large"),
        (errno.EACCES, "permission denied"),
        (errno.EPERM, "permission denied"),
        (errno.EROFS, "read-only"),
        (errno.EIO, "Input/output error"),
    ],
)
def test_messages(number: int, words: str, tmp_path: Path) -> None:
    error = export_error(OSError(number, "x"), tmp_path / "f.h5", "reconstruction HDF5")
    assert isinstance(error, ExportError) and error.path == tmp_path / "f.h5"
    assert words in error.message and error.hint


def test_output_folder_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(ExportError, match="is a file"), atomic_file(blocker / "x.h5", what="test file"):
        pass


def test_a_read_only_file_system_is_called_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os as _os

    from mrirecon.atomic import prepare_output_folder
    from mrirecon.errors import ExportError

    class ReadOnly:
        f_flag = _os.ST_RDONLY

    monkeypatch.setattr(_os, "access", lambda *args, **kwargs: False)
    monkeypatch.setattr(_os, "statvfs", lambda *args: ReadOnly())
    with pytest.raises(ExportError, match="the file system is read-only") as caught:
        prepare_output_folder(tmp_path, "reconstructions")
    assert "permission denied" not in str(caught.value)


def test_a_full_disk_leaves_the_lock_unsigned_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restarting after a disk-full abort: writing who holds the lock fails with ENOSPC, which was an
    OSError traceback (exit 3); the lock holds without the text, other errors are ExportErrors."""
    import os

    from mrirecon.atomic import exclusive_folder

    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with exclusive_folder(tmp_path, what="reconstructions") as lock:
        assert lock.exists()

    def broken(*args: object) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "pwrite", broken)
    with pytest.raises(ExportError), exclusive_folder(tmp_path, what="reconstructions"):
        pass


def test_a_killed_run_leaves_no_lock_behind_in_its_forked_workers(tmp_path: Path) -> None:
    """The lock is a flock on the open file, which forked DataLoader workers shared: for seconds after a
    kill -9 they held it, and the restart was refused in the name of the dead process."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    from mrirecon.atomic import exclusive_folder

    script = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from mrirecon.atomic import exclusive_folder
        with exclusive_folder(Path({str(tmp_path)!r}), what="reconstructions"):
            if os.fork() == 0:  # a worker that outlives its run
                # says it runs once its fork handlers have (a worker forked long before the kill)
                print(os.getpid(), flush=True)
                time.sleep(60)
                os._exit(0)
            time.sleep(60)
        """
    )
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    worker = int(run.stdout.readline())
    try:
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        with exclusive_folder(tmp_path, what="reconstructions"):  # at once, the worker still alive
            os.kill(worker, 0)
    finally:
        os.kill(worker, signal.SIGKILL)


def test_final_name_undoes_partial_name() -> None:
    from mrirecon.atomic import final_name, partial_name

    final = Path("out") / "sim_AXT2_s3_v001.h5"
    assert final_name(partial_name(final)) == final and final_name(final) == final
    assert final_name(Path(".hidden.h5")) == Path(".hidden.h5")  # a dot file is not a partial one


def test_volume_names_are_recognised_by_their_seed() -> None:
    from mrirecon.data.simulate import is_volume_name, volume_name

    assert is_volume_name(volume_name("AXFLAIR", 3, 12), 3)
    assert not is_volume_name(volume_name("AXFLAIR", 3, 12), 4) and not is_volume_name("scan.h5", 3)
