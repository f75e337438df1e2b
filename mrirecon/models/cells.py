"""Convolutional recurrent cells: GRU, MGU (minimal gated unit) and IndRNN, on one base.

Every cell maps an input ``x`` ``(B, F_in, H, W)`` and its hidden state ``h`` ``(B, F, H, W)`` (or
``None`` for the zero state) to the new state ``h'`` ``(B, F, H, W)``. They share the base
:class:`RecurrentCell`: an input projection ``W_x ∗ x + b`` with ``gates·F`` outputs and a recurrent
projection of the state, either a convolution ``W_h ∗ h`` (gated cells) or one weight per channel
``w ⊙ h`` (IndRNN). A cell differs from another only in :meth:`RecurrentCell.step` (and in its
initialisation); with ``σ`` the logistic sigmoid:

- GRU: ``r = σ(x_r + h_r)``, ``z = σ(x_z + h_z)``, ``n = tanh(x_n + r ⊙ h_n)``,
  ``h' = (1 − z) ⊙ n + z ⊙ h`` (Cho et al. 2014 in PyTorch's ``GRUCell`` form; ATOMMIC's RIM).
  With ``reset="before"``: ``n = tanh(x_n + W_n ∗ (r ⊙ h))`` (DIRECT's RecurrentVarNet).
- MGU: ``f = σ(x_f + h_f)``, ``c = tanh(x_c + f ⊙ h_c)``, ``h' = (1 − f) ⊙ c + f ⊙ h`` — ATOMMIC's
  ``ConvMGUCell``, which is *not* the cell of Zhou et al. 2016 it cites. Zhou's minimal gated unit
  is ``c = tanh(x_c + W_c ∗ (f ⊙ h))``, ``h' = (1 − f) ⊙ h + f ⊙ c``. ATOMMIC's differs twice: the
  gate scales the projected state (``f ⊙ (W_c ∗ h)``, the reset-after form of a GRU) instead of the
  state before its projection, and the roles of ``f`` and ``1 − f`` in the interpolation are
  swapped, so that the gate which admits the old state into the candidate also keeps the old state
  (in Zhou's cell it replaces it). Neither difference is a reparametrisation of the other's weights
  (the same ``f`` acts in both places). mrirecon keeps ATOMMIC's cell: its checkpoints and the
  parity goldens depend on it.
- IndRNN: ``h' = ReLU(x + w ⊙ h)``, one recurrent weight per channel, no gates (Li et al. 2018).

``x_r`` etc. are the chunks of the input projection, ``h_r`` those of the recurrent one. The zero
state skips the recurrent projection (it would only add zeros) and the gates it would feed.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from mrirecon.models.layers import ReplicationConv2d

__all__ = ["CELLS", "CellKind", "ConvGRUCell", "ConvMGUCell", "IndRNNCell", "RecurrentCell", "build_cell"]

CellKind = Literal["gru", "mgu", "indrnn"]


class RecurrentCell(nn.Module):
    """Base of the convolutional recurrent cells.

    Args:
        in_channels: Input features ``F_in``.
        hidden_channels: State features ``F``.
        kernel_size: Kernel of the input and recurrent convolutions (replication padding); the
            papers use 1.
        dilation: Dilation of those convolutions.
        bias: Bias of the input projection (the recurrent projection never has one).

    Shapes:
        ``forward(x (B, F_in, H, W), h (B, F, H, W) | None) -> (B, F, H, W)``.
    """

    #: Number of ``F``-channel chunks the projections produce.
    gates: ClassVar[int]
    #: ``True``: the state is projected by a convolution; ``False``: by one weight per channel.
    convolutional_recurrence: ClassVar[bool] = True

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 1,
        dilation: int = 1,
        bias: bool = True,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.input_conv = ReplicationConv2d(
            in_channels, self.gates * hidden_channels, kernel_size, dilation=dilation, bias=bias
        )
        self.hidden_conv: ReplicationConv2d | None = None
        self.recurrent_weight: nn.Parameter | None = None
        if self.convolutional_recurrence:
            self.hidden_conv = ReplicationConv2d(
                hidden_channels, self.recurrent_outputs() * hidden_channels, kernel_size, dilation, bias=False
            )
        else:
            self.recurrent_weight = nn.Parameter(torch.empty(1, hidden_channels, 1, 1))
        self.build_extra(dilation)
        self.reset_parameters()

    def recurrent_outputs(self) -> int:
        """Chunks of ``F`` channels the recurrent convolution produces (``gates`` unless overridden)."""
        return self.gates

    def build_extra(self, dilation: int) -> None:
        """Build layers beyond the two projections (none by default)."""

    def reset_parameters(self) -> None:
        """Initialise the weights (each cell as its authors do)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """The new state from the input ``x`` and the state ``h`` (``None``: zeros)."""
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects {self.in_channels} input channels, got {tuple(x.shape)}"
            )
        if h is not None and (h.shape[1] != self.hidden_channels or h.shape[-2:] != x.shape[-2:]):
            raise ValueError(
                f"hidden state {tuple(h.shape)} does not fit input {tuple(x.shape)} "
                f"with {self.hidden_channels} state channels"
            )
        return self.step(x, h)

    def step(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        """The cell's update (what distinguishes the cells).

        Implementations compute each gate's chunk of the input projection as a tensor of its own
        (``input_conv.project``) and may update those fresh tensors in place: no tensor autograd
        saved is modified afterwards, so the in-place updates are safe under autograd too.
        """
        raise NotImplementedError


class ConvGRUCell(RecurrentCell):
    """Convolutional GRU cell (see the module docstring).

    Args:
        reset: ``"after"``: the reset gate scales the projected state (``r ⊙ (W_n ∗ h)``, ATOMMIC's
            RIM, PyTorch's GRUCell); ``"before"``: it scales the state before its projection
            (``W_n ∗ (r ⊙ h)``, Cho et al. 2014, DIRECT's Conv2dGRU). Same parameter count.
        Others as :class:`RecurrentCell`.
    """

    gates = 3

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 1,
        dilation: int = 1,
        bias: bool = True,
        reset: Literal["after", "before"] = "after",
    ):
        if reset not in ("after", "before"):
            raise ValueError(f"reset must be 'after' or 'before', got {reset!r}")
        self.reset = reset  # read by the base's constructor through recurrent_outputs/build_extra
        super().__init__(in_channels, hidden_channels, kernel_size, dilation, bias)

    def recurrent_outputs(self) -> int:
        """Three chunks (r, z, n), or two (r, z) when the reset gate acts before the projection."""
        return 2 if self.reset == "before" else 3

    def build_extra(self, dilation: int) -> None:
        """The candidate's own state projection ``W_n`` when the reset gate acts before it."""
        self.candidate_conv: ReplicationConv2d | None = None
        if self.reset == "before":
            self.candidate_conv = ReplicationConv2d(
                self.hidden_channels, self.hidden_channels, self.kernel_size, dilation=dilation, bias=False
            )

    def reset_parameters(self) -> None:
        """Orthogonal weights and zero biases (ATOMMIC); the reset-before variant as DIRECT (below)."""
        assert self.hidden_conv is not None
        if self.candidate_conv is not None:
            self._orthogonal_gate_init()
            return
        nn.init.orthogonal_(self.input_conv.weight)
        nn.init.orthogonal_(self.hidden_conv.weight)
        if self.input_conv.bias is not None:
            nn.init.zeros_(self.input_conv.bias)

    def _orthogonal_gate_init(self) -> None:
        """DIRECT's init: each gate's ``[W_x | W_h]`` orthogonal; biases: reset −1, update 0, candidate 0."""
        assert self.hidden_conv is not None and self.candidate_conv is not None
        f = self.hidden_channels
        k = self.kernel_size
        with torch.no_grad():
            for gate in range(3):
                block = torch.empty(f, (self.in_channels + f) * k * k)
                nn.init.orthogonal_(block)
                wx = block[:, : self.in_channels * k * k].reshape(f, self.in_channels, k, k)
                wh = block[:, self.in_channels * k * k :].reshape(f, f, k, k)
                self.input_conv.weight[gate * f : (gate + 1) * f].copy_(wx)
                target = (
                    self.candidate_conv.weight
                    if gate == 2
                    else self.hidden_conv.weight[gate * f : (gate + 1) * f]
                )
                target.copy_(wh)
            if self.input_conv.bias is not None:
                self.input_conv.bias.zero_()
                self.input_conv.bias[:f].fill_(-1.0)

    def step(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        """GRU update; ``h = None`` is the zero state (no reset gate needed)."""
        f = self.hidden_channels
        if h is None:
            z = self.input_conv.project(x, f, 2 * f).sigmoid_()
            n = self.input_conv.project(x, 2 * f, 3 * f).tanh_()
            return torch.addcmul(n, n, z, value=-1.0)  # (1 − z)·n
        assert self.hidden_conv is not None
        # The state's projections are separate tensors so that the (r, z) part, which backward
        # does not need, is freed at once.
        rz = self.input_conv.project(x, 0, 2 * f).add_(self.hidden_conv.project(h, 0, 2 * f)).sigmoid_()
        # split, not two slices: a slice's backward writes its gradient into zeros in NCHW order, and
        # the sigmoid's backward over that and its channels-last output took 10 ms a step at
        # 218 × 170 (a ninth of a RIM training step); split's backward concatenates channels-last.
        r, z = rz.split(f, dim=1)
        n = self.input_conv.project(x, 2 * f, 3 * f)
        if self.candidate_conv is None:
            n = n.addcmul_(r, self.hidden_conv.project(h, 2 * f, 3 * f))
        else:
            n = n.add_(self.candidate_conv(r * h))
        return torch.lerp(n.tanh_(), h, z)


class ConvMGUCell(RecurrentCell):
    """Convolutional minimal gated unit as ATOMMIC builds it: one gate instead of the GRU's two.

    ``h' = (1 − f) ⊙ tanh(x_c + f ⊙ h_c) + f ⊙ h``: not Zhou et al. 2016's update (see the module
    docstring for the two differences).
    """

    gates = 2

    def reset_parameters(self) -> None:
        """Xavier-uniform weights (ReLU gain on the input projection) and zero biases, as ATOMMIC."""
        assert self.hidden_conv is not None
        nn.init.xavier_uniform_(self.input_conv.weight, gain=nn.init.calculate_gain("relu"))
        nn.init.xavier_uniform_(self.hidden_conv.weight)
        if self.input_conv.bias is not None:
            nn.init.zeros_(self.input_conv.bias)

    def step(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        """MGU update; ``h = None`` is the zero state."""
        f = self.hidden_channels
        forget = self.input_conv.project(x, 0, f)
        c = self.input_conv.project(x, f, 2 * f)
        if h is None:
            forget, c = forget.sigmoid_(), c.tanh_()
            return torch.addcmul(c, c, forget, value=-1.0)  # (1 − f)·c
        assert self.hidden_conv is not None
        forget = forget.add_(self.hidden_conv.project(h, 0, f)).sigmoid_()
        return torch.lerp(c.addcmul_(forget, self.hidden_conv.project(h, f, 2 * f)).tanh_(), h, forget)


class IndRNNCell(RecurrentCell):
    """Independently recurrent cell (Li et al. 2018): ``h' = ReLU(W_x ∗ x + b + w ⊙ h)``."""

    gates = 1
    convolutional_recurrence = False

    def reset_parameters(self) -> None:
        """Normal weights with std ``1/(F·(1 + k²))`` for both projections, zero bias (ATOMMIC)."""
        assert self.recurrent_weight is not None
        std = 1.0 / (self.hidden_channels * (1 + self.kernel_size**2))
        nn.init.normal_(self.input_conv.weight, std=std)
        nn.init.normal_(self.recurrent_weight, std=std)
        if self.input_conv.bias is not None:
            nn.init.zeros_(self.input_conv.bias)

    def step(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        """IndRNN update; ``h = None`` is the zero state."""
        xi = self.input_conv(x)
        if h is None:
            return xi.relu_()
        assert self.recurrent_weight is not None
        # The weight in the projection's dtype: under CPU autocast a float32 weight sent this in-place
        # bfloat16 update down a type-converting path 30× slower than the convolutions it follows.
        return xi.addcmul_(self.recurrent_weight.to(xi.dtype), h).relu_()


#: Cell kind (the configs' ``cell`` field) → class.
CELLS: dict[str, type[RecurrentCell]] = {"gru": ConvGRUCell, "mgu": ConvMGUCell, "indrnn": IndRNNCell}


def build_cell(kind: str, in_channels: int, hidden_channels: int, kernel_size: int = 1) -> RecurrentCell:
    """A cell of the given kind (``"gru"``, ``"mgu"``, ``"indrnn"``)."""
    if kind not in CELLS:
        raise ValueError(f"unknown cell '{kind}'; known: {', '.join(CELLS)}")
    return CELLS[kind](in_channels, hidden_channels, kernel_size)
