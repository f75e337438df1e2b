"""``python tests/inference/run_cli.py ARGS``: the mrirecon CLI with the test models registered.

Tests that need a separate process (SIGKILL, DDP, resource limits) run this script; Lightning's DDP
launcher re-runs the same command line for the other ranks, so they get the fakes too.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.inference import fakes

if __name__ == "__main__":
    fakes.install()
    from mrirecon_cli.main import main

    sys.argv[0] = __file__
    main()
