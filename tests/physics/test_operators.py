"""Adjointness of every operator and of their compositions, on odd and even shapes, 2-D and 3-D."""

from __future__ import annotations

import pytest
import torch

from mrirecon.physics import (
    FourierOperator,
    MaskOperator,
    MultiCoilOperator,
    SenseOperator,
    fft2c,
    fftnc,
    ifftnc,
    sense_expand,
    sense_reduce,
)
from tests.helpers import assert_adjoint, complex_randn, inner

SPATIAL = [(8, 6), (7, 9), (5, 4), (11, 13)]


def random_mask(shape: tuple[int, ...], generator: torch.Generator, lines: bool) -> torch.Tensor:
    b, _, *spatial = shape
    if lines:
        return (torch.rand(b, 1, *([1] * (len(spatial) - 1)), spatial[-1], generator=generator) > 0.5).float()
    return (torch.rand(b, 1, *spatial, generator=generator) > 0.5).float()


@pytest.mark.parametrize("spatial", SPATIAL)
@pytest.mark.parametrize("centered", [True, False])
@pytest.mark.parametrize("lines", [True, False])
def test_multicoil_operator_adjoint(
    spatial: tuple[int, int], centered: bool, lines: bool, device: torch.device
) -> None:
    g = torch.Generator().manual_seed(hash((spatial, centered, lines)) % 2**31)
    b, c = 2, 3
    maps = complex_randn(b, c, *spatial, generator=g, device=device)
    mask = random_mask((b, c, *spatial), g, lines).to(device)
    op = MultiCoilOperator(maps, mask, centered=centered)
    x = complex_randn(b, *spatial, generator=g, device=device)
    y = complex_randn(b, c, *spatial, generator=g, device=device)
    assert_adjoint(op, x, y)
    assert_adjoint(op.H, y, x)


@pytest.mark.parametrize("spatial", [(4, 6, 5), (3, 5, 8)])
def test_multicoil_operator_3d_adjoint(spatial: tuple[int, int, int]) -> None:
    g = torch.Generator().manual_seed(11)
    maps = complex_randn(1, 2, *spatial, generator=g)
    mask = (torch.rand(1, 1, *spatial, generator=g) > 0.3).float()
    op = MultiCoilOperator(maps, mask, ndim=3)
    assert_adjoint(op, complex_randn(1, *spatial, generator=g), complex_randn(1, 2, *spatial, generator=g))


@pytest.mark.parametrize("spatial", SPATIAL)
def test_composition_of_simple_operators_equals_multicoil(spatial: tuple[int, int]) -> None:
    """M @ F @ S built from the pieces agrees with the fused operator, and is itself adjoint."""
    g = torch.Generator().manual_seed(3)
    maps = complex_randn(2, 4, *spatial, generator=g)
    mask = random_mask((2, 4, *spatial), g, lines=True)
    composed = MaskOperator(mask) @ FourierOperator() @ SenseOperator(maps)
    fused = MultiCoilOperator(maps, mask)
    x = complex_randn(2, *spatial, generator=g)
    y = complex_randn(2, 4, *spatial, generator=g)
    assert torch.allclose(composed(x), fused(x), atol=1e-5)
    assert torch.allclose(composed.H(y), fused.H(y), atol=1e-5)
    assert torch.allclose(composed.normal(x), fused.normal(x), atol=1e-5)
    assert_adjoint(composed, x, y)
    for piece, xin, yin in (
        (FourierOperator(), y, complex_randn(2, 4, *spatial, generator=g)),
        (SenseOperator(maps), x, y),
        (MaskOperator(mask), y, complex_randn(2, 4, *spatial, generator=g)),
    ):
        assert_adjoint(piece, xin, yin)


def test_forward_is_mask_times_centred_fft_of_coil_images() -> None:
    g = torch.Generator().manual_seed(4)
    maps = complex_randn(1, 3, 9, 10, generator=g)
    mask = random_mask((1, 3, 9, 10), g, lines=True)
    x = complex_randn(1, 9, 10, generator=g)
    expected = mask * fft2c(sense_expand(x, maps))
    assert torch.allclose(MultiCoilOperator(maps, mask)(x), expected, atol=1e-5)


def test_normal_equals_adjoint_of_forward() -> None:
    g = torch.Generator().manual_seed(5)
    maps = complex_randn(2, 3, 7, 9, generator=g)
    mask = random_mask((2, 3, 7, 9), g, lines=False)
    op = MultiCoilOperator(maps, mask)
    x = complex_randn(2, 7, 9, generator=g)
    assert torch.allclose(op.normal(x), op.adjoint(op.forward(x)), atol=1e-5)
    # AᴴA is Hermitian positive semi-definite.
    assert inner(x, op.normal(x)).real >= 0
    # in double precision to double precision, also with a weighted mask (it was rounded to float32)
    weights = torch.rand((2, 1, 7, 9), generator=g, dtype=torch.float64)
    double = MultiCoilOperator(maps.to(torch.complex128), weights)
    x2 = x.to(torch.complex128)
    difference = (double.normal(x2) - double.adjoint(double.forward(x2))).abs().max()
    assert float(difference) < 1e-12 * float(double.normal(x2).abs().max())


def test_expand_reduce_are_adjoint_and_unmasked() -> None:
    g = torch.Generator().manual_seed(6)
    maps = complex_randn(1, 2, 6, 5, generator=g)
    x = complex_randn(1, 6, 5, generator=g)
    y = complex_randn(1, 2, 6, 5, generator=g)
    op = MultiCoilOperator(maps, torch.zeros(1, 1, 1, 5))
    assert torch.allclose(op.expand(x), fftnc(sense_expand(x, maps)), atol=1e-6)
    assert torch.allclose(op.reduce(y), sense_reduce(ifftnc(y), maps), atol=1e-6)
    assert abs(inner(op.expand(x), y) - inner(x, op.reduce(y))) < 1e-4 * abs(inner(op.expand(x), y))


def test_shape_checks() -> None:
    maps = torch.zeros(1, 2, 4, 4, dtype=torch.complex64)
    with pytest.raises(ValueError, match="broadcast"):
        MultiCoilOperator(maps, torch.ones(1, 1, 1, 5))
    with pytest.raises(ValueError, match="rank"):
        MultiCoilOperator(maps, torch.ones(4))
    with pytest.raises(TypeError, match="complex"):
        MultiCoilOperator(maps.real, torch.ones(1, 1, 1, 4))
    with pytest.raises(ValueError, match="one axis more"):
        sense_expand(torch.zeros(4, 4, dtype=torch.complex64), maps)


def test_operator_inputs_that_would_broadcast_silently_are_refused() -> None:
    """Coil images where an image belongs (``normal`` would return their shape: a CG solve on it
    runs to the end), unbatched k-space, another batch, a real image."""
    maps = torch.ones(2, 4, 6, 6, dtype=torch.complex64)
    operator = MultiCoilOperator(maps, torch.ones(2, 1, 1, 6))
    image, kspace = torch.ones(2, 6, 6, dtype=torch.complex64), torch.ones(2, 4, 6, 6, dtype=torch.complex64)
    assert operator.normal(image).shape == (2, 6, 6) and operator.adjoint(kspace).shape == (2, 6, 6)
    for bad in (kspace, image[:1], image.real):
        for method in (operator.forward, operator.normal):
            with pytest.raises(ValueError, match=r"takes complex an image \(B, \[S,\] H, W\)"):
                method(bad)
    for bad in (kspace[0], kspace[:1], image):
        with pytest.raises(ValueError, match="takes complex k-space"):
            operator.adjoint(bad)
    # maps shared by a batch (batch 1) still serve any batch
    shared = MultiCoilOperator(maps[:1], torch.ones(1, 1, 1, 6))
    assert shared.forward(image).shape == (2, 4, 6, 6)
