"""The centred orthonormal FFT: NumPy oracle, unitarity, inverse, 3-D, uncentred, autograd, CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrirecon.physics import (
    MultiCoilOperator,
    centering_phases,
    change_convention,
    fft2c,
    fft3c,
    fftnc,
    ifft2c,
    ifft3c,
    ifftnc,
)
from tests.helpers import complex_randn

SHAPES_2D = [(4, 6), (5, 7), (3, 2, 9, 8), (2, 15, 33, 20), (1, 1), (1, 2, 3, 1)]


def numpy_centred(x: np.ndarray, axes: tuple[int, ...], inverse: bool = False) -> np.ndarray:
    transform = np.fft.ifftn if inverse else np.fft.fftn
    return np.fft.fftshift(transform(np.fft.ifftshift(x, axes=axes), axes=axes, norm="ortho"), axes=axes)


@pytest.mark.parametrize("shape", SHAPES_2D)
def test_fft2c_matches_numpy(shape: tuple[int, ...], device: torch.device) -> None:
    x = complex_randn(*shape, generator=torch.Generator().manual_seed(0), device=device)
    ref = numpy_centred(x.cpu().numpy(), (-2, -1))
    np.testing.assert_allclose(fft2c(x).cpu().numpy(), ref, atol=2e-6, rtol=0)
    ref_inv = numpy_centred(x.cpu().numpy(), (-2, -1), inverse=True)
    np.testing.assert_allclose(ifft2c(x).cpu().numpy(), ref_inv, atol=2e-6, rtol=0)


@pytest.mark.parametrize("shape", [(4, 5, 6), (2, 3, 7, 8, 9)])
def test_fft3c_matches_numpy(shape: tuple[int, ...]) -> None:
    x = complex_randn(*shape, generator=torch.Generator().manual_seed(1))
    ref = numpy_centred(x.numpy(), (-3, -2, -1))
    np.testing.assert_allclose(fft3c(x).numpy(), ref, atol=2e-6, rtol=0)
    np.testing.assert_allclose(ifft3c(fft3c(x)).numpy(), x.numpy(), atol=2e-6, rtol=0)


@pytest.mark.parametrize("shape", SHAPES_2D)
def test_unitary_and_inverse(shape: tuple[int, ...], device: torch.device) -> None:
    x = complex_randn(*shape, generator=torch.Generator().manual_seed(2), device=device).to(torch.complex128)
    y = fft2c(x)
    assert torch.allclose(torch.linalg.vector_norm(y), torch.linalg.vector_norm(x), rtol=1e-12)
    assert torch.allclose(ifft2c(y), x, atol=1e-12)
    assert torch.allclose(fft2c(ifft2c(x)), x, atol=1e-12)


def test_even_sizes_are_exact_against_roll() -> None:
    """For even sizes the ramps are ±1: our result equals the roll-based definition bit for bit."""
    x = complex_randn(3, 64, 48, generator=torch.Generator().manual_seed(3))
    dims = (-2, -1)
    ref = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=dims), norm="ortho"), dim=dims)
    assert torch.equal(fft2c(x), ref)


def test_uncentred_is_plain_orthonormal_fft() -> None:
    x = complex_randn(2, 9, 10, generator=torch.Generator().manual_seed(4))
    np.testing.assert_allclose(
        fftnc(x, 2, centered=False).numpy(), np.fft.fft2(x.numpy(), norm="ortho"), atol=2e-6
    )
    assert torch.allclose(ifftnc(fftnc(x, centered=False), centered=False), x, atol=1e-6)


def test_autograd_path_matches_and_differentiates() -> None:
    x = (
        complex_randn(2, 7, 6, generator=torch.Generator().manual_seed(5))
        .to(torch.complex128)
        .requires_grad_()
    )
    y = fft2c(x)
    assert torch.allclose(y, fft2c(x.detach()), atol=1e-12)
    assert torch.autograd.gradcheck(lambda t: fft2c(t).abs().sum(), (x,))


@pytest.mark.parametrize("size", [(6, 8), (5, 9), (7, 4)])
def test_centering_phases_fold_the_shifts(size: tuple[int, int]) -> None:
    x = complex_randn(3, *size, generator=torch.Generator().manual_seed(6)).to(torch.complex128)
    p_in, p_out = centering_phases(size, x.device)
    folded = p_out * torch.fft.fft2(p_in * x, norm="ortho")
    assert torch.allclose(folded.to(torch.complex128), fft2c(x), atol=1e-6)
    inverse = p_in.conj() * torch.fft.ifft2(p_out.conj() * x, norm="ortho")
    assert torch.allclose(inverse.to(torch.complex128), ifft2c(x), atol=1e-6)
    if all(n % 2 == 0 for n in size):
        assert not p_in.is_complex() and set(p_in.unique().tolist()) <= {-1.0, 1.0}


def test_rejects_real_input_and_too_few_axes() -> None:
    with pytest.raises(TypeError, match="complex"):
        fft2c(torch.ones(4, 4))
    with pytest.raises(ValueError, match="at least 3 axes"):
        fft3c(torch.ones(4, 4, dtype=torch.complex64))


def test_under_torch_compile() -> None:
    x = complex_randn(2, 6, 5, generator=torch.Generator().manual_seed(7))
    compiled = torch.compile(lambda t: fft2c(t), backend="eager")
    assert torch.allclose(compiled(x), fft2c(x), atol=1e-6)


def test_cache_filled_under_inference_mode_still_serves_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    # Lightning's validate/test run under torch.inference_mode; training afterwards must still work
    monkeypatch.setattr("mrirecon.physics.fft._CACHE", {})  # this test fills the cache, whatever ran
    size = (13, 11)
    maps = torch.randn(1, 2, *size, dtype=torch.complex64)
    with torch.inference_mode():
        MultiCoilOperator(maps, torch.ones(1, 1, 1, size[1])).forward(
            torch.randn(1, *size, dtype=torch.complex64)
        )
    x = torch.randn(1, *size, dtype=torch.complex64, requires_grad=True)
    learned_maps = maps.clone().requires_grad_(True)  # e.g. E2E-VarNet's learned coil maps
    op = MultiCoilOperator(learned_maps, torch.ones(1, 1, 1, size[1]))
    op.adjoint(op.forward(x)).abs().sum().backward()
    assert x.grad is not None and learned_maps.grad is not None
    fft2c(x).abs().sum().backward()


@pytest.mark.parametrize("size", [(8, 6), (7, 5), (9, 10), (1, 6)])
def test_change_convention_is_the_same_image_in_the_other_convention(size: tuple[int, int]) -> None:
    """NumPy oracle: centred k-space is fftshift(fft2(ifftshift(x))), uncentred fft2(x)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, *size)) + 1j * rng.standard_normal((3, *size))
    centred = numpy_centred(x, (-2, -1))
    uncentred = np.fft.fft2(x, norm="ortho")
    to_centred = change_convention(torch.from_numpy(uncentred), to_centered=True).numpy()
    to_uncentred = change_convention(torch.from_numpy(centred), to_centered=False).numpy()
    np.testing.assert_allclose(to_centred, centred, atol=1e-12)
    np.testing.assert_allclose(to_uncentred, uncentred, atol=1e-12)
    mask = (np.random.default_rng(2).random(size) < 0.4).astype(np.float32)
    moved = change_convention(torch.from_numpy(mask), to_centered=True, phase=False).numpy()
    np.testing.assert_array_equal(moved, np.fft.fftshift(mask))
    back = change_convention(torch.from_numpy(moved), to_centered=False, phase=False).numpy()
    np.testing.assert_array_equal(back, mask)


def test_functorch_transforms_and_forward_mode_ad() -> None:
    """vmap, jvp and forward-mode dual tensors (SURE, divergence estimates) take the roll path:
    the fused path's ``out=`` kernels have no batching or forward-derivative rules."""
    import torch.autograd.forward_ad as fwAD

    g = torch.Generator().manual_seed(0)
    x, v = complex_randn(2, 5, 7, generator=g), complex_randn(2, 5, 7, generator=g)
    expected = torch.from_numpy(numpy_centred(x.numpy(), (-2, -1)))
    tangent = torch.from_numpy(numpy_centred(v.numpy(), (-2, -1)))  # the FFT is linear
    torch.testing.assert_close(torch.func.vmap(fft2c)(x), expected, atol=1e-5, rtol=1e-5)
    out, derivative = torch.func.jvp(fft2c, (x,), (v,))[:2]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(derivative, tangent, atol=1e-5, rtol=1e-5)
    with fwAD.dual_level():
        dual = fwAD.unpack_dual(fft2c(fwAD.make_dual(x, v)))
    assert dual.tangent is not None
    torch.testing.assert_close(dual.tangent, tangent, atol=1e-5, rtol=1e-5)
