"""ReplicationConv2d: equal to edge padding + an unpadded convolution on every route (NCHW,
channels-last, the tap-sum route for few outputs, channel slices), odd and even sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mrirecon.models.layers import (
    TAP_GRAD_MIN_INPUTS,
    ReplicationConv2d,
    _rows_product,
    _TapGradConv2d,
    channels_image,
    image_channels,
)
from tests.helpers import complex_randn


def reference(
    conv: ReplicationConv2d, x: torch.Tensor, start: int = 0, stop: int | None = None
) -> torch.Tensor:
    p = conv.replication
    bias = None if conv.bias is None else conv.bias[start:stop]
    return F.conv2d(
        F.pad(x, (p, p, p, p), mode="replicate"), conv.weight[start:stop], bias, dilation=conv.dilation
    )


@pytest.mark.parametrize(
    ("cin", "cout", "kernel", "dilation", "bias"),
    [(6, 2, 3, 1, False), (6, 2, 3, 1, True), (5, 3, 5, 2, True), (4, 8, 1, 1, True), (4, 8, 3, 2, True)],
)
@pytest.mark.parametrize("size", [(9, 7), (8, 10), (1, 1)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_padding_then_convolution(cin, cout, kernel, dilation, bias, size, channels_last) -> None:
    torch.manual_seed(0)
    conv = ReplicationConv2d(cin, cout, kernel, dilation=dilation, bias=bias).double()
    x = torch.randn(2, cin, *size, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = conv(x)
    assert out.shape == (2, cout, *size)
    torch.testing.assert_close(out, reference(conv, x), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(conv.project(x, 1, cout), reference(conv, x, 1, cout), atol=1e-12, rtol=1e-12)


def test_tap_sum_route_has_the_convolution_gradients() -> None:
    torch.manual_seed(1)
    conv = ReplicationConv2d(5, 2, 3, dilation=2).double()
    x = torch.randn(1, 5, 6, 7, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w: conv(x), (x, conv.weight), fast_mode=True)
    grads = torch.autograd.grad(conv(x).square().sum(), (x, conv.weight))
    expected = torch.autograd.grad(reference(conv, x).square().sum(), (x, conv.weight))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    ("cin", "cout", "kernel", "dilation", "size", "batch"),
    [
        (16, 8, 3, 2, (9, 7), 2),
        (20, 5, 5, 1, (8, 10), 1),
        (16, 16, 3, 1, (1, 1), 1),
        (16, 3, 1, 1, (4, 5), 2),
        (4, 8, 5, 1, (9, 7), 2),
        (2, 6, 3, 2, (6, 5), 1),
        (4, 8, 3, 1, (1, 1), 1),
    ],
)
def test_tap_grad_convolution_gradcheck(cin, cout, kernel, dilation, size, batch) -> None:
    """The matrix-product gradients (weight; input for few inputs) are the exact derivative
    (float64, every tap and border)."""
    torch.manual_seed(2)
    pad = dilation * (kernel // 2)
    x = torch.randn(batch, cin, size[0] + 2 * pad, size[1] + 2 * pad, dtype=torch.float64)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    weight = torch.randn(cout, cin, kernel, kernel, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(cout, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: _TapGradConv2d.apply(*a, dilation), (x, weight, bias))


@pytest.mark.parametrize(
    ("cin", "kernel", "dilation"),
    [(TAP_GRAD_MIN_INPUTS, 3, 2), (TAP_GRAD_MIN_INPUTS, 1, 1), (4, 5, 1), (2, 3, 2)],
)
def test_tap_grad_route_equals_the_convolution_in_float32(
    cin: int, kernel: int, dilation: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The route ReplicationConv2d takes on the CPU for many-input layers and for few-input k×k
    layers (the models' first): same output, same gradients as edge padding + convolution (up to
    float32 summation order)."""
    torch.manual_seed(3)
    conv = ReplicationConv2d(cin, 12, kernel, dilation=dilation)
    x = torch.randn(2, cin, 23, 17).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    calls = []
    original = _TapGradConv2d.forward

    def counted(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(_TapGradConv2d, "forward", staticmethod(counted))
    out = conv(x)
    monkeypatch.undo()
    assert calls, "the tap-gradient route was not taken"
    bias = conv.bias
    assert bias is not None
    grads = torch.autograd.grad(out.square().sum(), (x, conv.weight, bias))
    want_out = reference(conv, x)
    expected = torch.autograd.grad(want_out.square().sum(), (x, conv.weight, bias))
    torch.testing.assert_close(out, want_out)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_even_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="odd"):
        ReplicationConv2d(2, 2, 4)


def test_image_channels_round_trip() -> None:
    x, g = complex_randn(2, 5, 4), complex_randn(2, 5, 4)
    channels = image_channels(x, g)
    assert channels.shape == (2, 4, 5, 4) and channels.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(channels[:, 0], x.real)
    torch.testing.assert_close(channels[:, 3], g.imag)
    torch.testing.assert_close(channels_image(channels[:, 2:]), g)
    with pytest.raises(ValueError, match="two channels"):
        channels_image(channels)


@pytest.mark.parametrize(("cin", "cout", "kernel"), [(4, 16, 5), (16, 16, 3), (16, 8, 1)])
def test_bf16_autocast_on_the_cpu_trains_every_route(cin: int, cout: int, kernel: int) -> None:
    # trainer.precision: bf16-mixed on a CPU: the channels-last routes must give way to the
    # ordinary convolution (their matrix products would mix bfloat16 and float32)
    conv = ReplicationConv2d(cin, cout, kernel)
    x = torch.randn(2, cin, 9, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    assert y.dtype == torch.bfloat16
    y.float().square().sum().backward()
    assert x.grad is not None and conv.weight.grad is not None
    assert torch.isfinite(x.grad).all() and torch.isfinite(conv.weight.grad).all()
    # and the float32 gradients, by the ordinary route, agree to bfloat16's precision
    reference = ReplicationConv2d(cin, cout, kernel)
    reference.load_state_dict(conv.state_dict())
    x32 = x.detach().clone().requires_grad_()
    reference(x32).square().sum().backward()
    expected = reference.weight.grad
    assert expected is not None
    tolerance = 0.1 * float(expected.abs().max())
    assert torch.allclose(conv.weight.grad, expected, rtol=0.1, atol=tolerance)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_row_products_of_a_weight_gradient_split_over_threads_sum_to_the_product(threads: int) -> None:
    """Row blocks (2 × threads of them, and the rows left over) give Σ_b g[b]ᵀ·x[b]; a batch of
    two slices of padded rows as the weight gradient reads them (views, not copies)."""
    generator = torch.Generator().manual_seed(0)
    g = torch.randn(2, 25_001, 5, dtype=torch.float64, generator=generator)
    rows = torch.randn(2, 25_040, 7, dtype=torch.float64, generator=generator)
    x = rows[:, 13 : 13 + 25_001]
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = _rows_product(g, x)
    finally:
        torch.set_num_threads(saved)
    expected = torch.einsum("bno,bnc->oc", g, x)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-9)
