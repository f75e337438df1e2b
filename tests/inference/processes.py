"""Running the CLI (with the test fakes) in a separate process: SIGKILL, DDP, file-size limits."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_CLI = Path(__file__).resolve().parent / "run_cli.py"


def command(*args: object) -> list[str]:
    """``python tests/inference/run_cli.py ARGS``."""
    return [sys.executable, str(RUN_CLI), *map(str, args)]


def environment() -> dict[str, str]:
    """The environment of a child run: one torch thread (the machine is shared), no colour."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    return env


def run_cli(
    *args: object,
    file_limit: int | None = None,
    prefix: list[str] | None = None,
    timeout: float = 240,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to the end; ``file_limit`` caps the size of every file it writes (EFBIG);
    ``env``: variables added to :func:`environment`."""

    def limit() -> None:
        # a shell that starts the tests in the background ignores SIGINT, and the child would
        # inherit that (a test's Ctrl-C then did nothing): restore the default, as a terminal has it
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if file_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run(
        [*(prefix or []), *command(*args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        cwd=REPO,
        env={**environment(), **(env or {})},
    )


def start_cli(*args: object, log: Path) -> subprocess.Popen[bytes]:
    """Start the CLI in its own process group (so that a test can SIGKILL all of it)."""
    handle = open(log, "wb")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen(
        command(*args),
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env=environment(),
        start_new_session=True,
        # a shell that starts the tests in the background ignores SIGINT, and the child would
        # inherit that: restore the default, so that Python turns SIGINT into KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def left_behind(group: int, seconds: float) -> list[str]:
    """The processes of the run's process ``group`` (another rank, workers, multiprocessing's
    helpers) still alive ``seconds`` after the run's main process ended, as ``"pid command"``;
    they are killed then. Zombies (dead, waiting for a parent to reap them) do not count."""
    deadline = time.monotonic() + seconds
    while True:
        alive = _group_members(group)
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for line in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    return alive


def _group_members(group: int) -> list[str]:
    """``"pid command"`` of each live (not zombie) process in process group ``group``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it ended meanwhile
            continue
        command, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == group and fields[0] != "Z":  # fields: state, parent, process group, ...
            members.append(f"{stat.parent.name} {command}")
    return members
