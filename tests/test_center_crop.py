"""The one centre crop: fastMRI's offsets, arrays and tensors alike, and a larger crop is an error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrirecon.shapes import center_crop, crop_offsets


def test_fastmri_offsets_on_arrays_and_tensors() -> None:
    array = np.arange(7 * 6).reshape(7, 6)
    assert crop_offsets((7, 6), (4, 3)) == (1, 1)
    np.testing.assert_array_equal(center_crop(array, (4, 3)), array[1:5, 1:4])
    tensor = torch.arange(2 * 7 * 6).reshape(2, 7, 6)
    assert torch.equal(center_crop(tensor, (4, 3)), tensor[:, 1:5, 1:4])
    assert center_crop(array, (7, 6)) is not array and np.shares_memory(center_crop(array, (7, 6)), array)


def test_a_crop_larger_than_the_array_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot crop 7×6 to 8×6"):
        center_crop(np.zeros((7, 6)), (8, 6))
