"""Data sources of a run: the checksum checkpoints record, and synthetic data under several ranks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mrirecon.errors import ConfigError
from mrirecon.training.config import DataSection, SyntheticSection
from mrirecon.training.sources import _wait_for, data_checksum, ensure_synthetic, launched_rank


def test_checksum_of_a_manifest_is_its_sha256_and_of_folders_their_listing(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,sha256,shape,coils,acquisition,split\n")
    assert (
        data_checksum(DataSection(manifest=str(manifest)))
        == hashlib.sha256(manifest.read_bytes()).hexdigest()
    )
    assert data_checksum(DataSection(train=str(tmp_path / "none"), val=str(tmp_path / "none"))) is None
    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "a.h5").write_bytes(b"12")
    section = DataSection(train=str(folder), val=str(folder))
    first = data_checksum(section)
    assert first == data_checksum(section)
    (folder / "a.h5").write_bytes(b"123")
    assert data_checksum(section) != first


def test_other_ranks_wait_for_rank_zero_to_simulate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    assert launched_rank() == 1
    manifest = tmp_path / "manifest.csv"
    with pytest.raises(ConfigError, match="waited 0 s for rank 0"):
        _wait_for(manifest, timeout=0.1)
    manifest.write_text("")
    section = DataSection(manifest=str(manifest), synthetic=SyntheticSection())
    assert ensure_synthetic(section) == manifest  # present: nothing to do on any rank
    monkeypatch.delenv("RANK")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert launched_rank() == 0
