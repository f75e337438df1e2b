"""Shared fixtures: the device list (CPU always, CUDA when present), paths to real data, and a
per-test seed of the global random generators.

With ``MRIRECON_STRICT_TESTS=1`` (CI sets it) a test that would skip for a missing tool, missing
real data or a missing permission-dropping helper fails instead (:func:`skip_or_fail`); tests that
need a CUDA device keep skipping without one.
"""

from __future__ import annotations

import os
import random
import zlib
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MRIRECON_SHARED_DATA", REPO.parent / "shared" / "data"))

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"),
        ],
    ),
]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Runs the test on the CPU, and again on CUDA when a GPU is present (skipped otherwise)."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seeded_per_test(request: pytest.FixtureRequest) -> None:
    """Seeds torch's, NumPy's and ``random``'s global generators from the test's id before it runs:
    what a test draws without a seed of its own (model weights, a DataLoader's worker seeds) is the
    same in every run, whichever tests ran before it or were selected with it."""
    seed = zlib.crc32(request.node.nodeid.encode())
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the legacy global generator is the one to seed)
    torch.manual_seed(seed)


STRICT = os.environ.get("MRIRECON_STRICT_TESTS", "") not in ("", "0")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test with ``reason``, or, under ``MRIRECON_STRICT_TESTS=1``, fail it: in CI every
    tool, data folder and helper a test needs must be there."""
    if STRICT:
        pytest.fail(f"{reason} (MRIRECON_STRICT_TESTS=1: what CI needs must be installed)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip (with the reason) without it,
    and fail under ``MRIRECON_STRICT_TESTS=1``."""
    if not SHARED_DATA.is_dir():
        skip_or_fail(f"real-data folder {SHARED_DATA} is absent")
    return SHARED_DATA
