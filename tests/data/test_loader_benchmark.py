"""The data-loader benchmark's denominator: raw reads of the same slices through the loader's reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.data import RawReads, write_files
from mrirecon.data.dataset import SliceDataset
from mrirecon.data.transforms import ReconTransform
from mrirecon.data.volume import open_volume
from mrirecon.masks import create_mask_func


@pytest.mark.parametrize("mmap", [True, False])
def test_raw_reads_use_the_loaders_reader(
    tmp_path: Path, mmap: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raw reads go through the same memory map as the loader (or h5py where it uses h5py), return a
    private copy of the k-space and the stored reference."""
    if not mmap:
        monkeypatch.setenv("MRIRECON_NO_MMAP", "1")
    write_files(tmp_path, 1, 3, 2, 8, 6, (8, 6))
    transform = ReconTransform(mask_func=create_mask_func("random", [0.25], [2]), coil_maps="none")
    dataset = SliceDataset(tmp_path, transform)
    raw = RawReads(dataset.index)
    path, index = dataset.index[2]
    with open_volume(path) as volume:
        served = volume.kspace_slice(index)
        assert isinstance(served.base, np.memmap) == mmap
        expected_k, expected_target = np.array(served), volume.read_target(index)
    kspace, target = raw[2]
    np.testing.assert_array_equal(kspace, expected_k)
    np.testing.assert_array_equal(target, expected_target)
    assert kspace.flags.writeable and kspace.flags.owndata
    assert isinstance(raw._volumes[path].kspace_slice(index).base, np.memmap) == mmap
