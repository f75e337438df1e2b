"""The recurrent cells: float64 gradcheck of each kind, the zero state, shapes, and their update rules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from mrirecon.models.cells import CELLS, ConvGRUCell, ConvMGUCell, IndRNNCell, RecurrentCell, build_cell

KINDS = [
    pytest.param(lambda: ConvGRUCell(3, 2), id="gru"),
    pytest.param(lambda: ConvGRUCell(3, 2, reset="before"), id="gru_reset_before"),
    pytest.param(lambda: ConvMGUCell(3, 2), id="mgu"),
    pytest.param(lambda: IndRNNCell(3, 2), id="indrnn"),
    pytest.param(lambda: ConvGRUCell(3, 2, kernel_size=3), id="gru_3x3"),
    pytest.param(lambda: IndRNNCell(3, 2, kernel_size=3, dilation=2), id="indrnn_3x3_dil2"),
]


@pytest.mark.parametrize("make", KINDS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_gradcheck_float64(make, channels_last: bool) -> None:
    torch.manual_seed(0)
    cell: RecurrentCell = make().double()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(1, 3, 4, 3, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    h = torch.randn(1, 2, 4, 3, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    params = tuple(cell.parameters())

    def with_state(x, h, *weights):
        return cell(x, h)

    assert gradcheck(with_state, (x, h, *params), eps=1e-6, atol=1e-5, fast_mode=True)
    assert gradcheck(with_state, (x, h, *params), eps=1e-6, atol=1e-5)
    assert gradcheck(lambda x, *weights: cell(x, None), (x, *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("make", KINDS)
def test_zero_state_equals_explicit_zeros(make) -> None:
    torch.manual_seed(1)
    cell = make()
    x = torch.randn(2, 3, 7, 5)
    zeros = torch.zeros(2, 2, 7, 5)
    torch.testing.assert_close(cell(x, None), cell(x, zeros))


def test_update_rules_match_their_equations() -> None:
    """Each cell against its equation written out with plain convolutions (the module docstring)."""
    torch.manual_seed(2)
    x, h = torch.randn(1, 3, 4, 5), torch.randn(1, 4, 4, 5)
    f = 4

    gru = ConvGRUCell(3, f)
    assert gru.hidden_conv is not None
    xi = F.conv2d(x, gru.input_conv.weight, gru.input_conv.bias)
    hh = F.conv2d(h, gru.hidden_conv.weight)
    r = torch.sigmoid(xi[:, :f] + hh[:, :f])
    z = torch.sigmoid(xi[:, f : 2 * f] + hh[:, f : 2 * f])
    n = torch.tanh(xi[:, 2 * f :] + r * hh[:, 2 * f :])
    torch.testing.assert_close(gru(x, h), (1 - z) * n + z * h)

    before = ConvGRUCell(3, f, reset="before")
    assert before.hidden_conv is not None and before.candidate_conv is not None
    xi = F.conv2d(x, before.input_conv.weight, before.input_conv.bias)
    hh = F.conv2d(h, before.hidden_conv.weight)
    r = torch.sigmoid(xi[:, :f] + hh[:, :f])
    z = torch.sigmoid(xi[:, f : 2 * f] + hh[:, f : 2 * f])
    n = torch.tanh(xi[:, 2 * f :] + F.conv2d(r * h, before.candidate_conv.weight))
    torch.testing.assert_close(before(x, h), (1 - z) * n + z * h)

    mgu = ConvMGUCell(3, f)
    assert mgu.hidden_conv is not None
    xi = F.conv2d(x, mgu.input_conv.weight, mgu.input_conv.bias)
    hh = F.conv2d(h, mgu.hidden_conv.weight)
    forget = torch.sigmoid(xi[:, :f] + hh[:, :f])
    c = torch.tanh(xi[:, f:] + forget * hh[:, f:])
    torch.testing.assert_close(mgu(x, h), (1 - forget) * c + forget * h)

    ind = IndRNNCell(3, f)
    assert ind.recurrent_weight is not None
    xi = F.conv2d(x, ind.input_conv.weight, ind.input_conv.bias)
    torch.testing.assert_close(ind(x, h), torch.relu(xi + ind.recurrent_weight * h))


def test_parameter_counts_and_structure() -> None:
    """IndRNN: one recurrent weight per channel and no recurrent convolution; GRU/MGU: 3 and 2 gates."""
    gru, mgu, ind = ConvGRUCell(64, 64), ConvMGUCell(64, 64), IndRNNCell(64, 64)
    assert sum(p.numel() for p in gru.parameters()) == 64 * 192 + 192 + 64 * 192
    assert sum(p.numel() for p in mgu.parameters()) == 64 * 128 + 128 + 64 * 128
    assert sum(p.numel() for p in ind.parameters()) == 64 * 64 + 64 + 64
    assert ind.hidden_conv is None and ind.recurrent_weight is not None
    assert ind.recurrent_weight.shape == (1, 64, 1, 1)
    # DIRECT's GRU: three gates on [x, h] with biases = 3·(2F·F + F), and its reset bias starts at −1.
    before = ConvGRUCell(64, 64, reset="before")
    assert sum(p.numel() for p in before.parameters()) == 3 * (128 * 64 + 64)
    assert before.input_conv.bias is not None
    assert torch.all(before.input_conv.bias[:64] == -1) and torch.all(before.input_conv.bias[64:] == 0)


def test_gate_weights_are_orthogonal_for_the_gru() -> None:
    cell = ConvGRUCell(16, 16, reset="before")
    assert cell.hidden_conv is not None and cell.candidate_conv is not None
    for gate in range(3):
        wx = cell.input_conv.weight[gate * 16 : (gate + 1) * 16].flatten(1)
        wh = cell.candidate_conv.weight if gate == 2 else cell.hidden_conv.weight[gate * 16 : (gate + 1) * 16]
        block = torch.cat([wx, wh.flatten(1)], dim=1)  # (16, 32): orthonormal rows
        torch.testing.assert_close(block @ block.T, torch.eye(16), atol=1e-5, rtol=0)


def test_build_cell_and_errors() -> None:
    assert set(CELLS) == {"gru", "mgu", "indrnn"}
    assert isinstance(build_cell("indrnn", 2, 3), IndRNNCell)
    with pytest.raises(ValueError, match="unknown cell 'lstm'"):
        build_cell("lstm", 2, 3)
    cell = IndRNNCell(3, 4)
    with pytest.raises(ValueError, match="expects 3 input channels"):
        cell(torch.randn(1, 2, 4, 4))
    with pytest.raises(ValueError, match="does not fit"):
        cell(torch.randn(1, 3, 4, 4), torch.randn(1, 4, 4, 5))
    with pytest.raises(ValueError, match="reset must be"):
        ConvGRUCell(3, 4, reset="middle")  # type: ignore[arg-type]
