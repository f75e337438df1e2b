"""Mask summaries (acceleration, ACS) and mask recovery from prospectively undersampled k-space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrirecon.errors import DataError
from mrirecon.masks import acs_mask, describe_mask, mask_from_kspace


def test_describe_line_mask() -> None:
    mask = torch.zeros(1, 1, 20)
    mask[..., 8:13] = 1
    mask[..., [0, 4, 16]] = 1
    info = describe_mask(mask)
    assert info.kind == "1d"
    assert info.acs_shape == (5,) and info.acs_slices == (slice(8, 13),)
    assert info.acceleration == pytest.approx(20 / 8)
    assert torch.equal(acs_mask(mask).reshape(-1)[8:13], torch.ones(5))
    assert acs_mask(mask).sum() == 5


def test_a_batch_of_different_masks_is_refused_for_lines_as_for_planes() -> None:
    """Described as one, the first line mask's centre would be taken for the others' (ACS maps
    from columns another mask never sampled)."""
    first, second = torch.zeros(1, 1, 20), torch.zeros(1, 1, 20)
    first[..., 7:13], second[..., 8:12] = 1, 1
    with pytest.raises(ValueError, match="a batch of different masks"):
        describe_mask(torch.stack([first, second]))
    assert describe_mask(torch.stack([first, first])).acs_shape == (6,)  # one mask repeated: fine
    with pytest.raises(ValueError, match="a batch of different masks"):
        describe_mask(torch.stack([first.expand(1, 20, 20), second.expand(1, 20, 20)]))


def test_describe_plane_mask_finds_the_centre_block() -> None:
    mask = torch.zeros(1, 1, 12, 10)
    mask[..., 4:9, 3:7] = 1
    mask[..., 0, 0] = 1
    info = describe_mask(mask)
    assert info.kind == "2d" and info.acs_shape == (5, 4)
    assert info.acceleration == pytest.approx(120 / 21)


def test_recover_line_mask() -> None:
    g = torch.Generator().manual_seed(0)
    kspace = torch.randn(4, 16, 12, generator=g, dtype=torch.complex64)
    cols = torch.tensor([0, 3, 5, 6, 7, 11])
    mask = torch.zeros(12)
    mask[cols] = 1
    recovered = mask_from_kspace(kspace * mask)
    assert recovered.shape == (1, 12)
    assert torch.equal(recovered[0], mask)


def test_recover_plane_mask() -> None:
    g = torch.Generator().manual_seed(1)
    mask = (torch.rand(16, 12, generator=g) > 0.6).float()
    kspace = torch.randn(3, 16, 12, generator=g, dtype=torch.complex64) * mask
    assert torch.equal(mask_from_kspace(kspace), mask)


def test_recover_from_empty_kspace_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no non-zero"):
        mask_from_kspace(torch.zeros(2, 4, 4, dtype=torch.complex64))


def test_real_poisson_brain(shared_data) -> None:
    kspace = torch.from_numpy(np.load(shared_data / "sigpy_tutorial_brain_poisson" / "cartesian_ksp.npy"))
    mask = mask_from_kspace(kspace)
    info = describe_mask(mask)
    assert mask.shape == (230, 180) and info.kind == "2d"
    assert info.sampled_fraction == pytest.approx(0.124, abs=0.002)  # the README's 12.4 %
    assert min(info.acs_shape) >= 18  # "about 20 × 20 fully sampled centre"


def test_reduce_mask_is_the_one_rule_of_what_a_reader_serves() -> None:
    from mrirecon.masks import reduce_mask, sampled_locations

    full = np.ones((8, 10), dtype=bool)
    assert reduce_mask(full) == (None, (0, 10))
    padded = full.copy()
    padded[:, :2] = padded[:, 8:] = False  # zero-padded columns around a fully sampled block
    assert reduce_mask(padded) == (None, (2, 8))
    lines = full.copy()
    lines[:, 1::3] = False
    mask, columns = reduce_mask(lines)
    assert mask is not None and mask.shape == (10,) and columns == (0, 10)
    points = full.copy()
    points[3, 4] = False
    mask, _ = reduce_mask(points)
    assert mask is not None and mask.shape == (8, 10) and not mask[3, 4]
    kspace = np.ones((2, 3, 8, 10), dtype=np.complex64) * lines
    assert np.array_equal(sampled_locations(kspace), lines)
