"""The convolution → recurrent-cell stack that both RIM and RecurrentVarNet are built from.

Layer ``i`` is ``conv_i`` (replication padding) → ReLU → ``cell_i``; the state of ``cell_i`` is
both its memory for the next time step and the input of layer ``i + 1`` (passed through a ReLU
first when ``relu_states`` is set, as DIRECT's Conv2dGRU does). A last convolution maps the top
state to the output channels.

==================  ===================================  =====================================
                    RIM / CIRIM (ATOMMIC)                RecurrentVarNet regulariser (DIRECT)
==================  ===================================  =====================================
convs (k, dil)      5×5, 3×3 dil 2                       5×5, 3×3 dil 2, 3×3, 3×3
cells               GRU / MGU / IndRNN, 1×1              GRU (reset before), 1×1
between layers      the state as is                      ReLU(state)
output conv         3×3, no bias                         3×3 with bias
init                Kaiming normal (ReLU), zero bias     PyTorch default
==================  ===================================  =====================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mrirecon.models.cells import RecurrentCell
from mrirecon.models.checkpointing import run_step
from mrirecon.models.layers import ReplicationConv2d

__all__ = ["RecurrentConvStack"]


class RecurrentConvStack(nn.Module):
    """``len(kernels)`` layers of conv → ReLU → recurrent cell, then an output convolution.

    Args:
        in_channels: Input features (4 for the RIM: image and gradient; 2 for RecurrentVarNet).
        hidden_channels: Features of every convolution and cell state.
        out_channels: Output features (2: a complex image).
        make_cell: ``make_cell(in_channels, hidden_channels) -> RecurrentCell``.
        kernels: Kernel size of each layer's convolution.
        dilations: Dilation of each layer's convolution.
        output_kernel: Kernel of the output convolution.
        output_dilation: Dilation of the output convolution (DIRECT's one-layer Conv2dGRU: 2).
        output_bias: Whether the output convolution has a bias.
        relu_states: Pass each state through a ReLU before the next layer.
        kaiming_init: Kaiming-normal (ReLU gain) weights and zero biases for the convolutions
            (ATOMMIC); otherwise PyTorch's default initialisation (DIRECT).

    Shapes:
        ``forward(x (B, in_channels, H, W), states [(B, hidden, H, W) | None] * layers)``
        → ``(out (B, out_channels, H, W), new states [(B, hidden, H, W)] * layers)``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        make_cell: Callable[[int, int], RecurrentCell],
        *,
        kernels: Sequence[int] = (5, 3),
        dilations: Sequence[int] = (1, 2),
        output_kernel: int = 3,
        output_dilation: int = 1,
        output_bias: bool = False,
        relu_states: bool = False,
        kaiming_init: bool = True,
    ):
        super().__init__()
        if len(kernels) != len(dilations) or not kernels:
            raise ValueError(f"need one dilation per kernel, got kernels {kernels} and dilations {dilations}")
        self.hidden_channels = hidden_channels
        self.relu_states = relu_states
        self.convs = nn.ModuleList()
        self.cells = nn.ModuleList()
        features = in_channels
        for kernel, dilation in zip(kernels, dilations):
            self.convs.append(ReplicationConv2d(features, hidden_channels, kernel, dilation=dilation))
            self.cells.append(make_cell(hidden_channels, hidden_channels))
            features = hidden_channels
        self.output_conv = ReplicationConv2d(
            hidden_channels, out_channels, output_kernel, dilation=output_dilation, bias=output_bias
        )
        if kaiming_init:
            for conv in [*self.convs, self.output_conv]:
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)

    @property
    def layers(self) -> int:
        """Number of conv → cell layers (and hidden states)."""
        return len(self.cells)

    def forward(
        self, x: torch.Tensor, states: Sequence[torch.Tensor | None], *, checkpointed: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One time step: the output and the new hidden states.

        With ``checkpointed``, each layer is a checkpoint: backward keeps only the layers' inputs
        (the previous layer's state, which is kept anyway as that layer's memory) and recomputes
        one layer at a time.
        """
        if len(states) != self.layers:
            raise ValueError(f"expected {self.layers} hidden states, got {len(states)}")
        new_states: list[torch.Tensor] = []
        for index, state in enumerate(states):
            x = run_step(self._layer, index, x, state, checkpointed=checkpointed)
            new_states.append(x)
        return run_step(self._output, x, checkpointed=checkpointed), new_states

    def _output(self, x: torch.Tensor) -> torch.Tensor:
        """The output convolution on the top state (after a ReLU with ``relu_states``)."""
        out: torch.Tensor = self.output_conv(F.relu(x) if self.relu_states else x)
        return out

    def _layer(self, index: int, x: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        """Layer ``index``: (ReLU of the previous state) → conv → ReLU → cell."""
        if self.relu_states and index > 0:
            x = F.relu(x)
        x = F.relu(self.convs[index](x), inplace=True)
        h: torch.Tensor = self.cells[index](x, state)
        return h
