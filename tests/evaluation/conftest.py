"""A small synthetic lesion dataset shared by the evaluation tests (built once per session)."""

from __future__ import annotations

import pytest

from tests.evaluation.synthetic import Dataset, make_dataset


@pytest.fixture(scope="session")
def lesion_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Two target volumes with three lesions each and the good / blurred / zero-filled folders."""
    return make_dataset(tmp_path_factory.mktemp("lesion_dataset"), volumes=2)
