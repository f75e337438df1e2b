"""``python tests/inference/run_cli.py ARGS``: the mrirecon CLI with the test models registered.

Tests that need a separate process (SIGKILL, DDP, resource limits) run this script; Lightning's DDP
launcher re-runs the same command line for the other ranks, so they get the fakes too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.inference import fakes


def _signal_while_forking(name: str) -> None:
    """``MRIRECON_TEST_SIGNAL_AT_FORK=TERM`` (or ``INT``): the signal arrives while the run forks
    its first process (a DataLoader worker) after its handlers are in place; the handler then raises
    inside a fork handler, where Python drops the exception (printing "Exception ignored in ...")."""
    import signal

    from mrirecon import runtime

    fired: list[bool] = []

    def after_fork_in_parent() -> None:
        if not fired and signal.getsignal(signal.SIGTERM) is runtime._stop:
            fired.append(True)
            print(f"(test) SIG{name} inside a fork handler", file=sys.stderr, flush=True)
            os.kill(os.getpid(), getattr(signal, f"SIG{name}"))

    os.register_at_fork(after_in_parent=after_fork_in_parent)


if __name__ == "__main__":
    fakes.install()
    if os.environ.get("MRIRECON_TEST_SIGNAL_AT_FORK"):
        _signal_while_forking(os.environ["MRIRECON_TEST_SIGNAL_AT_FORK"])
    from mrirecon_cli.main import main

    sys.argv[0] = __file__
    main()
