"""Convolution building blocks shared by the recurrent models.

- :class:`ReplicationConv2d`: a 2-D convolution whose input is padded by replicating its edge
  pixels (the padding every RIM, CIRIM and RecurrentVarNet layer uses), so the output has the
  input's height and width for any odd kernel and dilation.
- :func:`to_channels_last` / :func:`image_channels`: the complex ↔ real-channel boundary of the
  CNNs, in the channels-last memory layout the CPU convolutions run fastest in.

Shapes: feature maps are ``(B, F, H, W)`` real tensors; images ``(B, H, W)`` complex64.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mrirecon.physics import channels_to_complex, complex_to_channels

__all__ = ["ReplicationConv2d", "channels_image", "image_channels"]


#: Output channels up to which a k×k convolution on channels-last input is computed as one matrix
#: product over the k² taps followed by shifted sums (oneDNN is slow with so few outputs).
TAP_SUM_MAX_OUTPUTS = 4
#: Input channels from which a k×k convolution's weight gradient on the CPU is computed as k² matrix
#: products over shifted views (:class:`_TapGradConv2d`): oneDNN's backward-weights kernel takes
#: 3–4× its forward time for 64 → 64 3×3 layers, the matrix products about 1.4×. Below it, a k×k
#: (k > 1) convolution takes the few-input route of the same class for both gradients.
TAP_GRAD_MIN_INPUTS = 16


class ReplicationConv2d(nn.Conv2d):
    """``Conv2d`` with replication ("edge") padding that keeps the spatial size.

    Args:
        in_channels: Input features.
        out_channels: Output features.
        kernel_size: Odd kernel size.
        dilation: Dilation; the padding is ``dilation·(kernel_size − 1)/2`` on every side.
        bias: Whether the convolution has a bias.

    Shapes:
        ``(B, in_channels, H, W)`` → ``(B, out_channels, H, W)``.

    On channels-last input two cases take faster routes to the same result (up to float rounding):
    a k×k convolution with at most :data:`TAP_SUM_MAX_OUTPUTS` outputs (the RIM's last layer) is
    one matrix product to ``k²·out`` channels, replication-padded (padding commutes with a
    per-pixel linear map), then summed over the k² shifted taps; a 1×1 convolution on the CPU goes
    straight to oneDNN; on the CPU, when a gradient is wanted, a convolution with at least
    :data:`TAP_GRAD_MIN_INPUTS` inputs computes its weight gradient, and a k×k one with fewer
    inputs both its gradients, as matrix products over shifted rows (:class:`_TapGradConv2d`).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1, bias: bool = True
    ):
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias, padding=0)
        self.replication = dilation * (kernel_size - 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad by edge replication, then convolve without padding."""
        return self.project(x)

    def project(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """The output channels ``[start, stop)`` only (a fresh tensor of its own)."""
        weight, bias = self.weight, self.bias
        if start != 0 or (stop is not None and stop != self.out_channels):
            weight = weight[start:stop]
            bias = None if bias is None else bias[start:stop]
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        if channels_last:
            if self.kernel_size[0] > 1 and weight.shape[0] <= TAP_SUM_MAX_OUTPUTS:
                return self._tap_sum(x, weight, bias)
            if self.kernel_size[0] == 1 and _tap_grad_applies(x, weight):
                return _TapGradConv2d.apply(x, weight, bias, 1)  # oneDNN's backward here is its slow one
            if self.kernel_size[0] == 1 and _mkldnn_applies(x):
                # PyTorch picks oneDNN for 1×1 convolutions only with several threads; oneDNN is the
                # fastest route on channels-last input at any thread count.
                return torch.mkldnn_convolution(x, weight, bias, (0, 0), (1, 1), (1, 1), 1)
        p = self.replication
        if p:
            x = F.pad(x, (p, p, p, p), mode="replicate")
            if channels_last and not x.is_contiguous(memory_format=torch.channels_last):
                # Edge padding returns few-channel input (a 2-channel image) in NCHW; keep the
                # layout, or the convolution and everything after it would leave channels-last.
                x = x.contiguous(memory_format=torch.channels_last)
        if channels_last and _tap_grad_applies(x, weight):
            return _TapGradConv2d.apply(x, weight, bias, self.dilation[0])
        return self._conv_forward(x, weight, bias)

    def _tap_sum(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        k, d, p = self.kernel_size[0], self.dilation[0], self.replication
        out = weight.shape[0]
        # (out, in, ky, kx) → (ky·kx·out, in): tap t = ky·k + kx owns channels [t·out, (t+1)·out).
        stacked = weight.permute(2, 3, 0, 1).reshape(k * k * out, weight.shape[1])
        taps = F.linear(x.permute(0, 2, 3, 1), stacked).permute(0, 3, 1, 2)  # (B, k²·out, H, W), NHWC memory
        taps = F.pad(taps, (p, p, p, p), mode="replicate")
        result = _ShiftedTapSum.apply(taps, k, d, out)
        # the bias in the taps' dtype (bfloat16 under autocast)
        return result if bias is None else result + bias.to(taps.dtype).view(1, -1, 1, 1)


class _ShiftedTapSum(torch.autograd.Function):
    """The sum over the k² taps of tap ``t = i·k + j``'s channels ``[t·out, (t+1)·out)`` of the
    padded tap projections, shifted by ``(i·d, j·d)``.

    Backward writes each tap's gradient into one zero tensor in the taps' (channels-last) layout;
    as k² slices of the taps, it took k² zero tensors in NCHW order and their sum (6 ms for a
    64 → 2 layer at 218 × 170, against 1 ms forward).

    Shapes: ``taps (B, k²·out, H + 2p, W + 2p)`` → ``(B, out, H, W)``, ``p = d·(k − 1)/2``.
    """

    @staticmethod
    def forward(ctx: Any, taps: torch.Tensor, k: int, d: int, out: int) -> torch.Tensor:
        h, w = taps.shape[-2] - d * (k - 1), taps.shape[-1] - d * (k - 1)
        ctx.geometry = (taps.shape, taps.dtype, taps.device, k, d, out)
        first, *rest = _tap_windows(k, d, out, h, w)
        result = taps[first].clone(memory_format=torch.channels_last)
        for window in rest:
            result += taps[window]
        return result

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        shape, dtype, device, k, d, out = ctx.geometry
        taps = torch.empty(shape, dtype=dtype, device=device, memory_format=torch.channels_last).zero_()
        for window in _tap_windows(k, d, out, *grad.shape[-2:]):
            taps[window] = grad
        return taps, None, None, None


def _tap_windows(k: int, d: int, out: int, h: int, w: int) -> list[tuple[slice, ...]]:
    """Index of each tap ``t = i·k + j``'s ``h × w`` window in the padded taps of
    :class:`_ShiftedTapSum`: channels ``[t·out, (t+1)·out)``, shifted by ``(i·d, j·d)``."""
    windows: list[tuple[slice, ...]] = []
    for t in range(k * k):
        i, j = divmod(t, k)
        windows.append(
            (slice(None), slice(t * out, (t + 1) * out), slice(i * d, i * d + h), slice(j * d, j * d + w))
        )
    return windows


class _TapGradConv2d(torch.autograd.Function):
    """An unpadded, stride-1 convolution whose gradients are matrix products over shifted rows.

    Forward is PyTorch's (oneDNN's for a 1×1 kernel, whose own backward falls back on a slow
    kernel). The (padded) input ``(B, C, Hp, Wp)`` in channels-last memory is the matrix
    ``(B, Hp·Wp, C)``; the output gradient, put on the same row width ``Wp`` (zeros in the
    ``Wp − W`` extra columns, :func:`_gradient_rows`), is ``(B, n, O)``; tap ``(i, j)`` of the
    kernel reads the input rows from the flat offset ``(i·Wp + j)·d`` on, a contiguous slice. The
    weight gradient is then ``gᵀ · x[offset : offset + n]`` per tap (:func:`_tap_weight_grad`).
    The input gradient: a matrix product per pixel for a 1×1 kernel; for few inputs
    (C < :data:`TAP_GRAD_MIN_INPUTS`, the models' first layer) each tap's ``g · W_tap`` added onto
    the input at its offset (:func:`_tap_input_grad`; oneDNN's backward-data with four outputs
    takes 3× the forward); else oneDNN's.

    Shapes: ``x (B, C, Hp, Wp)``, ``weight (O, C, k, k)``, ``bias (O,)`` → ``(B, O, H, W)`` with
    ``H = Hp − d·(k − 1)``, ``W = Wp − d·(k − 1)``.
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.dilation = dilation
        ctx.has_bias = bias is not None
        if weight.shape[-1] == 1 and _mkldnn_applies(x):
            return torch.mkldnn_convolution(x, weight, bias, (0, 0), (1, 1), (1, 1), 1)
        return F.conv2d(x, weight, bias, dilation=dilation)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        d = ctx.dilation
        k, c = weight.shape[-1], weight.shape[1]
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x = grad_w = grad_b = None
        b, o, h, w = grad.shape
        rows = grad.permute(0, 2, 3, 1).reshape(b, h * w, o) if k == 1 else _gradient_rows(grad, x.shape[-1])
        if ctx.needs_input_grad[0] and k == 1:  # a matrix product per pixel
            grad_x = (rows @ weight.reshape(o, -1)).reshape(b, h, w, -1).permute(0, 3, 1, 2)
        elif ctx.needs_input_grad[0] and c < TAP_GRAD_MIN_INPUTS:
            grad_x = _tap_input_grad(rows, x.shape, weight, d)
        elif ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], [0, 0], [d, d], False, [0, 0], 1, [True, False, False]
            )[0]
        if ctx.needs_input_grad[1]:
            grad_w = _tap_weight_grad(rows, x, k, d)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


def _gradient_rows(grad: torch.Tensor, padded_width: int) -> torch.Tensor:
    """``grad (B, O, H, W)`` as the matrix ``(B, n, O)`` of its pixels on rows of the padded input's
    width ``Wp`` (zeros in the ``Wp − W`` extra columns), ``n = (H − 1)·Wp + W`` (the last row's
    extra columns would read past the input's end): output pixel ``(y, x)`` is row ``y·Wp + x``,
    and the input pixel under it at tap offset ``t`` is row ``y·Wp + x + t`` of the padded input."""
    b, o, h, w = grad.shape
    g = grad.new_zeros(b, h, padded_width, o)
    g[:, :, :w] = grad.permute(0, 2, 3, 1)
    return g.reshape(b, h * padded_width, o)[:, : (h - 1) * padded_width + w]


def _tap_offsets(k: int, d: int, padded_width: int) -> list[int]:
    """Flat row offset of each tap ``(i, j)`` of a k×k kernel of dilation ``d``, tap-major."""
    return [(i * padded_width + j) * d for i in range(k) for j in range(k)]


def _tap_weight_grad(grad: torch.Tensor, x: torch.Tensor, k: int, d: int) -> torch.Tensor:
    """``∂L/∂weight (O, C, k, k)`` of an unpadded convolution from its padded input
    ``x (B, C, Hp, Wp)`` and the output gradient as :func:`_gradient_rows` ``(B, n, O)``.

    Many inputs: one matrix product per tap over the channels-last rows. Few inputs
    (C < :data:`TAP_GRAD_MIN_INPUTS`): the k² shifted input rows stacked channels-first
    (``(B, k²·C, n)``, a few MB) and one matrix product, which reads the gradient once.
    """
    b, c, hp, wp = x.shape
    n, o = grad.shape[1:]
    offsets = _tap_offsets(k, d, wp)
    if c < TAP_GRAD_MIN_INPUTS:
        planes = x.contiguous().reshape(b, c, hp * wp)
        stacked = torch.cat([planes[:, :, t : t + n] for t in offsets], dim=1)  # (B, k²·C, n)
        return torch.bmm(stacked, grad).sum(0).reshape(k, k, c, o).permute(3, 2, 0, 1)
    rows = x.permute(0, 2, 3, 1).reshape(b, hp * wp, c)  # a view: channels-last memory
    if not rows.is_contiguous():
        rows = rows.contiguous()
    taps = [_rows_product(grad, rows[:, t : t + n]) for t in offsets]
    return torch.stack(taps, dim=-1).reshape(o, c, k, k)


def _rows_product(g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``Σ_b g[b]ᵀ · x[b]`` for ``g (B, n, O)`` and ``x (B, n, C)``: ``(O, C)``.

    One matrix product with a small result over many rows (64 × 64 over 37,000 at 218 × 170)
    leaves threads idle; split into 2 × threads products over consecutive row blocks it does not
    (1.25 → 0.95 ms for 64 channels, 4.3 → 3.0 ms for 128, two threads; the same at one thread).
    """
    n = g.shape[1]
    threads = torch.get_num_threads()
    blocks = 2 * threads if threads > 1 and n >= 4096 * threads else 1
    m = n // blocks * blocks
    out = None
    for gb, xb in zip(g, x, strict=True):  # per slice: the row blocks of one slice are a view
        gt = gb[:m].unflatten(0, (blocks, m // blocks)).transpose(1, 2)  # (blocks, O, m / blocks)
        part = torch.bmm(gt, xb[:m].unflatten(0, (blocks, m // blocks))).sum(0)
        if m < n:
            part += gb[m:].T @ xb[m:]
        out = part if out is None else out + part
    assert out is not None
    return out


def _tap_input_grad(grad: torch.Tensor, shape: torch.Size, weight: torch.Tensor, d: int) -> torch.Tensor:
    """``∂L/∂x (B, C, Hp, Wp)`` of an unpadded convolution with few inputs from the output gradient
    as :func:`_gradient_rows` ``(B, n, O)``: one matrix product to the k² taps' contributions
    ``(B, k²·C, n)``, each then added onto the input planes at its flat offset."""
    b, c, hp, wp = shape
    o, k = weight.shape[0], weight.shape[-1]
    n = grad.shape[1]
    stacked = weight.permute(2, 3, 1, 0).reshape(k * k * c, o)  # tap-major, as the offsets
    taps = torch.matmul(stacked, grad.transpose(1, 2))  # (B, k²·C, n)
    out = grad.new_zeros(b, c, hp * wp)
    for index, t in enumerate(_tap_offsets(k, d, wp)):
        out[:, :, t : t + n] += taps[:, index * c : (index + 1) * c]
    return out.reshape(b, c, hp, wp)


_MKLDNN_BUILT = torch.backends.mkldnn.is_available()  # asked once: dynamo does not trace the call


def _tap_grad_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :class:`_TapGradConv2d` computes this convolution's gradients: on the CPU, with a
    gradient wanted, for many inputs (weight gradient) or few inputs with a k×k kernel (both)."""
    k, c = weight.shape[-1], weight.shape[1]
    many = c >= TAP_GRAD_MIN_INPUTS and weight.requires_grad
    few = k > 1 and c < TAP_GRAD_MIN_INPUTS and (weight.requires_grad or x.requires_grad)
    return torch.is_grad_enabled() and (many or few) and _mkldnn_applies(x)


def _mkldnn_applies(x: torch.Tensor) -> bool:
    if torch.compiler.is_compiling():  # first: the compiled graph takes the ordinary convolution
        return False
    if torch.is_autocast_enabled("cpu"):  # bf16 autocast: the ordinary convolution, in bfloat16
        return False
    on_cpu = x.device.type == "cpu" and x.dtype == torch.float32
    return bool(on_cpu and _MKLDNN_BUILT and torch.backends.mkldnn.enabled)


def image_channels(*images: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """Complex images as the real input channels of a CNN.

    Args:
        images: One or more complex ``(B, H, W)`` images.
        channels_last: Return the tensor in ``torch.channels_last`` memory layout.

    Returns:
        ``(B, 2·len(images), H, W)`` real: ``[Re x₀, Im x₀, Re x₁, Im x₁, …]``.
    """
    stacked = torch.stack(images, dim=1) if len(images) > 1 else images[0].unsqueeze(1)
    x = complex_to_channels(stacked)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def channels_image(x: torch.Tensor) -> torch.Tensor:
    """The two real output channels ``(B, 2, H, W)`` of a CNN as a complex ``(B, H, W)`` image."""
    if x.shape[1] != 2:
        raise ValueError(f"expected two channels (real, imaginary), got shape {tuple(x.shape)}")
    return channels_to_complex(x)[:, 0]
