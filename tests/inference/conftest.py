"""Fixtures of the inference tests: the test models registered, and small input folders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.inference import fakes


@pytest.fixture
def installed() -> Iterator[None]:
    """The test-only models of tests/inference/fakes.py, registered for the test."""
    fakes.install()
    yield
    fakes.uninstall()


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """Three small fully sampled volumes of different slice counts, one with a smaller recon size."""
    folder = tmp_path / "inputs"
    fakes.write_input(folder / "vol_a.h5", slices=3, seed=1)
    fakes.write_input(folder / "vol_b.h5", slices=2, seed=2, crop=(28, 20))
    fakes.write_input(folder / "vol_c.h5", slices=4, seed=3)
    return folder
