"""Centred, orthonormal Fourier transforms over the last 2 or 3 axes of complex tensors.

Convention (fastMRI's): ``fft2c(x) = fftshift(fft2(ifftshift(x), norm="ortho"))`` over the last two
axes, batched over every leading axis (batch, coils, slices). The transforms are unitary, so
``ifft2c(fft2c(x)) == x`` and ``‖fft2c(x)‖ == ‖x‖``.

How the centring is done: a cyclic shift by ``s = N // 2`` before and after the transform is the
same as a phase ramp on the other side of it. With ``F`` the plain orthonormal DFT,

    fftshift(F(ifftshift(x)))[k] = φ(j) · F(x)[j],  j = (k − s) mod N,  φ(j) = exp(+2πi·j·s/N)

(and ``φ`` conjugated for the inverse). For even ``N`` the ramp is ``(−1)^j``: real and exact.
``fftnc`` therefore runs one plain FFT and then a single fused pass that multiplies by ``φ`` while
writing each block of the output to its shifted place, instead of the four copies that
``torch.fft.fftshift``/``ifftshift`` make. The operators in :mod:`mrirecon.physics.operators` go one
step further and fold the ramps into the coil maps and the mask (see :func:`centering_phases`), so
inside A and Aᴴ the centring costs nothing at all.

Data stored uncentred (Calgary-Campinas) use ``centered=False``: a plain orthonormal FFT.
"""

from __future__ import annotations

import itertools
import math
from types import EllipsisType

import torch
from torch.autograd import forward_ad

from mrirecon.shapes import check_complex

__all__ = [
    "centering_phases",
    "change_convention",
    "fft2c",
    "fft3c",
    "fftnc",
    "ifft2c",
    "ifft3c",
    "ifftnc",
    "sampled_in_convention",
]

_CacheKey = tuple[tuple[int, ...], str, str, str]
#: Process-wide cache of the small phase-ramp tensors of the centred FFT, by (shape, dtype, device,
#: kind): bounded (cleared when it reaches ``_CACHE_LIMIT`` entries), a few KB each.
_CACHE: dict[_CacheKey, torch.Tensor] = {}
_CACHE_LIMIT = 64


def _cached(key: _CacheKey, build: object) -> torch.Tensor:
    tensor = _CACHE.get(key)
    if tensor is None:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        # Built outside inference mode: a cached ramp first needed under torch.inference_mode()
        # must stay usable by autograd later (inference tensors cannot be saved for backward).
        with torch.inference_mode(False):
            tensor = build()  # type: ignore[operator]
        _CACHE[key] = tensor
    return tensor


def _ramp_1d(n: int, shift: int, sign: float, offset: int = 0) -> torch.Tensor:
    """exp(sign·2πi·(j − offset)·shift/n) for j = 0..n−1, in float64/complex128."""
    j = torch.arange(n, dtype=torch.float64) - offset
    return torch.polar(torch.ones(n, dtype=torch.float64), sign * 2.0 * math.pi * j * shift / n)


def _outer(ramps: list[torch.Tensor]) -> torch.Tensor:
    """Outer product of 1-D ramps into an N-D grid."""
    out = ramps[0]
    for r in ramps[1:]:
        out = out[..., None] * r
    return out


def _finish(grid: torch.Tensor, sizes: tuple[int, ...], device: torch.device, double: bool) -> torch.Tensor:
    """Real (float32/64) if every size is even (values ±1), complex (64/128) otherwise."""
    if all(n % 2 == 0 for n in sizes):
        return grid.real.to(device=device, dtype=torch.float64 if double else torch.float32).contiguous()
    return grid.to(device=device, dtype=torch.complex128 if double else torch.complex64).contiguous()


def _shift_phase(sizes: tuple[int, ...], device: torch.device, inverse: bool, double: bool) -> torch.Tensor:
    """φ(j) of the module docstring on the grid ``sizes``, indexed by the *source* position."""
    sign = -1.0 if inverse else 1.0

    def build() -> torch.Tensor:
        return _finish(_outer([_ramp_1d(n, n // 2, sign) for n in sizes]), sizes, device, double)

    precision = "f64" if double else "f32"
    return _cached((sizes, str(device), "shift", ("inv" if inverse else "fwd") + precision), build)


def centering_phases(
    sizes: tuple[int, ...], device: torch.device, *, double: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Phase ramps ``(p_in, p_out)`` with ``fftnc(x) == p_out * F(p_in * x)`` for the plain ortho DFT ``F``.

    Both have shape ``sizes`` and unit modulus, so ``ifftnc(y) == conj(p_in) * Fᴴ(conj(p_out) * y)``.
    They are real (±1) when every size is even. Operators fold ``p_in`` into the coil maps and
    ``p_out`` into the mask so that the centring costs no extra pass over the data.

    Args:
        sizes: The spatial sizes, e.g. ``(H, W)``.
        device: Where the ramps live.
        double: Double precision (for complex128 data).

    Returns:
        ``(p_in, p_out)``, real or complex tensors of shape ``sizes``.
    """

    def build_in() -> torch.Tensor:
        return _finish(_outer([_ramp_1d(n, n // 2, 1.0) for n in sizes]), sizes, device, double)

    def build_out() -> torch.Tensor:
        return _finish(
            _outer([_ramp_1d(n, n // 2, 1.0, offset=n // 2) for n in sizes]), sizes, device, double
        )

    key = (sizes, str(device))
    precision = "f64" if double else "f32"
    return _cached((*key, "pin", precision), build_in), _cached((*key, "pout", precision), build_out)


def _roll_blocks(n: int) -> list[tuple[slice, slice]]:
    """(destination, source) slices of a cyclic shift by ``n // 2`` along one axis."""
    s = n // 2
    if s == 0:
        return [(slice(0, n), slice(0, n))]
    return [(slice(s, n), slice(0, n - s)), (slice(0, s), slice(n - s, n))]


def _plain(y: torch.Tensor) -> bool:
    """Whether ``y`` may take the fused ``out=`` path: no autograd, compiler, functorch transform
    (``vmap``, ``jvp``, ``grad``) or forward-mode dual tensor, none of which has ``out=`` kernels."""
    if (torch.is_grad_enabled() and y.requires_grad) or torch.compiler.is_compiling():
        return False
    if torch._C._functorch.is_functorch_wrapped_tensor(y):
        return False
    return forward_ad.unpack_dual(y).tangent is None


def _centered(x: torch.Tensor, ndim: int, inverse: bool) -> torch.Tensor:
    dims = tuple(range(-ndim, 0))
    transform = torch.fft.ifftn if inverse else torch.fft.fftn
    y = transform(x, dim=dims, norm="ortho")
    sizes = tuple(int(n) for n in y.shape[-ndim:])
    phase = _shift_phase(sizes, y.device, inverse, double=y.dtype == torch.complex128)
    if not _plain(y):
        # Differentiable and traceable path: one multiply and a roll.
        return torch.roll(y * phase, shifts=[n // 2 for n in sizes], dims=dims)
    out = torch.empty_like(y)
    for blocks in itertools.product(*(_roll_blocks(n) for n in sizes)):
        dst: tuple[EllipsisType | slice, ...] = (Ellipsis, *(b[0] for b in blocks))
        src: tuple[slice, ...] = tuple(b[1] for b in blocks)
        torch.mul(y[(Ellipsis, *src)], phase[src], out=out[dst])
    return out


def _prepare(x: torch.Tensor, ndim: int) -> torch.Tensor:
    check_complex(x, name="input of the Fourier transform")
    if x.ndim < ndim:
        raise ValueError(
            f"a {ndim}-D Fourier transform needs at least {ndim} axes, got shape {tuple(x.shape)}"
        )
    if x.dtype == torch.complex32:
        x = x.to(torch.complex64)
    return x


def fftnc(x: torch.Tensor, ndim: int = 2, *, centered: bool = True) -> torch.Tensor:
    """Orthonormal FFT over the last ``ndim`` axes (image → k-space).

    Args:
        x: Complex tensor ``(..., [S,] H, W)``; any leading axes are batched.
        ndim: 2 or 3 spatial axes.
        centered: ``True`` for the centred convention (zero frequency in the middle of the array);
            ``False`` for data stored uncentred.

    Returns:
        Complex tensor of the same shape and dtype.
    """
    x = _prepare(x, ndim)
    if not centered:
        return torch.fft.fftn(x, dim=tuple(range(-ndim, 0)), norm="ortho")
    return _centered(x, ndim, inverse=False)


def ifftnc(x: torch.Tensor, ndim: int = 2, *, centered: bool = True) -> torch.Tensor:
    """Orthonormal inverse FFT over the last ``ndim`` axes (k-space → image); see :func:`fftnc`."""
    x = _prepare(x, ndim)
    if not centered:
        return torch.fft.ifftn(x, dim=tuple(range(-ndim, 0)), norm="ortho")
    return _centered(x, ndim, inverse=True)


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two axes of a complex tensor ``(..., H, W)``."""
    return fftnc(x, 2)


def ifft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal inverse 2-D FFT over the last two axes of a complex tensor ``(..., H, W)``."""
    return ifftnc(x, 2)


def fft3c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 3-D FFT over the last three axes of a complex tensor ``(..., S, H, W)``."""
    return fftnc(x, 3)


def ifft3c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal inverse 3-D FFT over the last three axes ``(..., S, H, W)``."""
    return ifftnc(x, 3)


def change_convention(
    kspace: torch.Tensor, *, to_centered: bool, ndim: int = 2, phase: bool = True
) -> torch.Tensor:
    """The same k-space in the other FFT convention (exact, any size; the image stays the same).

    From the module docstring, the centred k-space of an image is its uncentred k-space times
    ``φ`` and cyclically shifted by ``s = N // 2``: ``Kc = roll(φ · Ku, s)``, and back
    ``Ku = conj(φ) · roll(Kc, −s)``. So ``ifftnc(change_convention(fftnc(x, centered=False),
    to_centered=True)) == x``.

    Args:
        kspace: ``(..., H, W)`` complex k-space (or a real mask with ``phase=False``) stored
            uncentred (``to_centered=True``) or centred (``to_centered=False``); axes of size 1
            (a line mask's H) are left as they are.
        to_centered: The convention to return.
        ndim: Spatial axes (the last ``ndim``).
        phase: Apply the phase ramp (k-space); False only shifts (a sampling mask).

    Returns:
        A new tensor of the same shape and dtype.
    """
    dims = tuple(range(-ndim, 0))
    sizes = tuple(int(n) for n in kspace.shape[-ndim:])
    shifts = [n // 2 for n in sizes]
    if not phase:
        return torch.roll(kspace, shifts=shifts if to_centered else [-s for s in shifts], dims=dims)
    kspace = _prepare(kspace, ndim)
    ramp = _shift_phase(sizes, kspace.device, inverse=False, double=kspace.dtype == torch.complex128)
    if to_centered:
        return torch.roll(kspace * ramp, shifts=shifts, dims=dims)
    return torch.roll(kspace, shifts=[-s for s in shifts], dims=dims) * ramp.conj()


def sampled_in_convention(
    kspace: torch.Tensor, mask: torch.Tensor, *, centered: bool, to_centered: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Measured k-space and its mask, stored in convention ``centered``, in ``to_centered``'s.

    Args:
        kspace: ``(B, C, H, W)`` complex measured k-space.
        mask: Its sampling mask, broadcasting against it (``(B|1, 1, 1|H, W)``).
        centered: The convention they are stored in.
        to_centered: The convention to return them in (the same tensors when equal).
    """
    if centered == to_centered:
        return kspace, mask
    return change_convention(kspace, to_centered=to_centered), change_convention(
        mask, to_centered=to_centered, phase=False
    )
