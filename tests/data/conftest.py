"""Fixtures of the data tests: one small simulated dataset shared by the module tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrirecon.data.simulate import simulate_dataset


@pytest.fixture(scope="session")
def sim_dataset(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """3 volumes × 3 slices × 4 coils × 64 × 64 with lesions (written once per session; read-only)."""
    folder = tmp_path_factory.mktemp("sim")
    return simulate_dataset(
        folder, volumes=3, slices=3, coils=4, size=(64, 64), seed=11, lesions=True, progress=False
    )
