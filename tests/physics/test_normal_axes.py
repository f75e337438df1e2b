"""AᴴA transforms only the axes along which the mask varies: same result as Aᴴ(A·x) for every mask
layout (line masks, row masks, 2-D masks, constant masks), centred or not, 2-D and 3-D, odd and even."""

from __future__ import annotations

import pytest
import torch

from mrirecon.physics import MultiCoilOperator
from tests.helpers import complex_randn


@pytest.mark.parametrize("centered", [True, False])
@pytest.mark.parametrize("spatial", [(8, 6), (7, 9), (5, 1, 4), (3, 5, 6)])
@pytest.mark.parametrize("layout", ["last", "first", "all", "none", "constant_zero", "weights", "weights_2d"])
def test_normal_matches_adjoint_of_forward(layout: str, spatial: tuple[int, ...], centered: bool) -> None:
    g = torch.Generator().manual_seed(len(spatial) * 10 + sum(spatial))
    b, c = 2, 3
    ndim = len(spatial)
    shape = [b, 1, *([1] * ndim)]
    if layout == "last":
        shape[-1] = spatial[-1]
    elif layout == "first":
        shape[2] = spatial[0]
    elif layout == "all":
        shape[2:] = spatial
    mask = (torch.rand(*shape, generator=g) > 0.4).float()
    if layout == "none":
        mask = torch.ones(*shape)
    if layout == "constant_zero":
        mask = torch.zeros(*shape)
    if layout.startswith("weights"):  # a weighted (soft) mask: AᴴA applies it twice
        shape[2:] = spatial if layout == "weights_2d" else shape[2:]
        shape[-1] = spatial[-1]
        mask = torch.rand(*shape, generator=g)
    maps = complex_randn(b, c, *spatial, generator=g)
    x = complex_randn(b, *spatial, generator=g)
    op = MultiCoilOperator(maps, mask, ndim=ndim, centered=centered)
    expected = op.adjoint(op.forward(x))
    assert torch.allclose(op.normal(x), expected, atol=1e-5, rtol=1e-5)


def test_line_mask_normal_uses_one_dimensional_transforms() -> None:
    maps = complex_randn(1, 2, 6, 8)
    op = MultiCoilOperator(maps, torch.ones(1, 1, 1, 8))
    assert op._normal_dims == (-1,)
    assert MultiCoilOperator(maps, torch.ones(1, 1, 6, 8))._normal_dims == (-2, -1)
