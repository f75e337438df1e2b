"""The options that reproduce the papers where mrirecon's defaults follow the authors' maintained code.

Each is checked against the authors' equations written out here with plain ``torch.fft`` (no
mrirecon physics), so that a wrong sign, a missing term or a wrong order fails:

- CIRIM ``data_consistency="soft_per_step"``: mridc 0.0.1's explicit data consistency at every time
  step, ``k_t = y − λ·M⊙(k_in − y) − F S η_t``, under every cascade coupling;
- RecurrentVarNet ``initializer_input="zero_filled"`` (DIRECT: ``Σ_c F(F⁻¹ y_c)``), ``normalized``
  (DIRECT's NormConv2dGRU) and the one-layer regulariser's dilated output convolution;
- the MGU cell is ATOMMIC's, not Zhou et al.'s (the docstring says how they differ);
- ``mrirecon models`` says which RecurrentVarNet the default is.
"""

from __future__ import annotations

from typing import Literal, cast

import pytest
import torch
import torch.nn.functional as F

from mrirecon.models.cells import ConvMGUCell
from mrirecon.models.recurrentvarnet import RecurrentVarNet, RecurrentVarNetBlock, RecurrentVarNetConfig
from mrirecon.models.registry import get_entry, parameter_count
from mrirecon.models.rim import CIRIM, CIRIMConfig, RIMBlock
from mrirecon.physics import LogLikelihoodGradient, MultiCoilOperator
from mrirecon.physics.consistency import SoftDataConsistency
from tests.models.synthetic import acquisition


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two axes (written out, not mrirecon's)."""
    return torch.fft.fftshift(
        torch.fft.fft2(torch.fft.ifftshift(x, dim=(-2, -1)), norm="ortho"), dim=(-2, -1)
    )


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    return torch.fft.fftshift(
        torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1)), norm="ortho"), dim=(-2, -1)
    )


def perturb(model: torch.nn.Module, seed: int = 1) -> None:
    """Move every parameter away from its initialisation (λ = 1 and zero biases are special)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))


# ----------------------------------------------------------------------------------------------
# CIRIM: explicit data consistency at every time step (mridc 0.0.1, the CIRIM paper)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cascade_gradients", "carry_hidden_state"), [(True, True), (False, True), (False, False)]
)
def test_cirim_soft_per_step_is_mridcs_explicit_data_consistency(
    cascade_gradients: bool, carry_hidden_state: bool
) -> None:
    data = acquisition(batch=1, coils=3, height=13, width=10, acceleration=3, seed=4)
    config = CIRIMConfig(
        cascades=3,
        time_steps=2,
        channels=4,
        data_consistency="soft_per_step",
        cascade_gradients=cascade_gradients,
        carry_hidden_state=carry_hidden_state,
    )
    torch.manual_seed(0)
    model = CIRIM(config)
    perturb(model)
    out = model(*data.inputs)

    y, mask, maps = data.inputs
    gradient = LogLikelihoodGradient(MultiCoilOperator(maps, mask), y)
    k_in = y
    eta = (ifft2c(y) * maps.conj()).sum(1)  # η₀ = Sᴴ F⁻¹ y
    states: list[torch.Tensor | None] = [None, None]
    for c in range(config.cascades):
        if c > 0 and not carry_hidden_state:
            states = [None, None]
        etas, states = cast(RIMBlock, model.cascades[c])(eta, gradient, states)
        assert model.data_consistency is not None
        lam = cast(SoftDataConsistency, model.data_consistency[c]).weight
        soft_dc = lam * mask * (k_in - y)  # the same for every step of the cascade
        kspaces = [y - soft_dc - fft2c(e.unsqueeze(1) * maps) for e in etas]
        images = [(ifft2c(k) * maps.conj()).sum(1) for k in kspaces]
        assert len(out.steps[c]) == config.time_steps
        for got, expected in zip(out.steps[c], images):
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        k_in = kspaces[-1]
        eta = images[-1]  # the next cascade starts from Sᴴ F⁻¹ k_T (not from η_T)
    torch.testing.assert_close(out.image, eta, rtol=1e-5, atol=1e-5)


def test_cirim_soft_per_step_learns_one_lambda_per_cascade_and_trains_it() -> None:
    data = acquisition(batch=1, coils=2, height=9, width=8)
    soft = CIRIM(CIRIMConfig(cascades=2, time_steps=2, channels=4, data_consistency="soft"))
    per_step = CIRIM(CIRIMConfig(cascades=2, time_steps=2, channels=4, data_consistency="soft_per_step"))
    assert parameter_count(per_step) == parameter_count(soft)  # the same λ per cascade
    out = per_step(*data.inputs)
    sum(s.abs().mean() for steps in out.steps for s in steps).backward()
    assert per_step.data_consistency is not None
    # the first cascade starts from k_in = y: its residual is zero, so its λ gets no gradient
    grads = [cast(SoftDataConsistency, dc).weight.grad for dc in per_step.data_consistency]
    assert grads[0] is not None and float(grads[0].abs()) == 0.0
    assert grads[1] is not None and float(grads[1].abs()) > 0.0


def test_cirim_default_is_still_implicit() -> None:
    assert CIRIMConfig().data_consistency == "implicit"
    assert CIRIM(CIRIMConfig(cascades=1, time_steps=1, channels=2)).data_consistency is None


# ----------------------------------------------------------------------------------------------
# RecurrentVarNet: DIRECT's initialiser inputs, NormConv2dGRU, the one-layer regulariser
# ----------------------------------------------------------------------------------------------
def _rsi_input(model: RecurrentVarNet, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    assert model.initializer is not None
    handle = model.initializer.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    try:
        model(*inputs)
    finally:
        handle.remove()
    return seen[0]


def test_recurrentvarnet_initializer_inputs_are_directs() -> None:
    data = acquisition(batch=2, coils=3, height=12, width=9)
    y, _mask, maps = data.inputs
    small = {
        "steps": 1,
        "hidden_channels": 4,
        "initializer_channels": (2, 2),
        "initializer_dilations": (1, 2),
    }
    small["initializer_multiscale"] = 2
    sense = RecurrentVarNet(RecurrentVarNetConfig(**small))  # type: ignore[arg-type]
    zero_filled = RecurrentVarNet(RecurrentVarNetConfig(**small, initializer_input="zero_filled"))  # type: ignore[arg-type]
    expected_sense = fft2c((ifft2c(y) * maps.conj()).sum(1))  # DIRECT "sense": F(Sᴴ F⁻¹ y)
    expected_zero_filled = fft2c(ifft2c(y)).sum(1)  # DIRECT "zero_filled": Σ_c F(F⁻¹ y_c)
    for model, expected in ((sense, expected_sense), (zero_filled, expected_zero_filled)):
        got = _rsi_input(model, data.inputs)
        torch.testing.assert_close(got, torch.stack([expected.real, expected.imag], 1), rtol=1e-5, atol=1e-5)
    assert RecurrentVarNetConfig().initializer_input == "sense"
    with pytest.raises(Exception, match="input_image"):
        RecurrentVarNetConfig(initializer_input="input_image")  # type: ignore[arg-type]


def test_recurrentvarnet_normalized_is_directs_normconv2dgru() -> None:
    data = acquisition(batch=2, coils=3, height=11, width=10, seed=2)
    y, mask, maps = data.inputs
    torch.manual_seed(0)
    block = RecurrentVarNetBlock(hidden_channels=4, layers=2, normalized=True)
    perturb(block)
    operator = MultiCoilOperator(maps, mask)
    kspace = y + 0.1 * torch.randn_like(y)
    image = (ifft2c(kspace) * maps.conj()).sum(1)
    new_kspace, _ = block(kspace, image, y, mask, operator, [None, None])

    x = torch.stack([image.real, image.imag], 1)  # (B, 2, H, W)
    groups = x.reshape(x.shape[0], 2, -1)  # DIRECT's norm(): 2 groups, unbiased std
    mean, std = groups.mean(-1, keepdim=True), groups.std(-1, keepdim=True)
    normed = ((groups - mean) / std).reshape(x.shape)
    w, _ = block.regularizer(normed, [None, None])
    w = (w.reshape(x.shape[0], 2, -1) * std + mean).reshape(x.shape)
    lam = block.data_consistency.weight
    expected = kspace - lam * mask * (kspace - y) + fft2c(torch.complex(w[:, 0], w[:, 1]).unsqueeze(1) * maps)
    torch.testing.assert_close(new_kspace, expected, rtol=1e-5, atol=1e-5)
    assert RecurrentVarNetConfig().normalized is False


def test_recurrentvarnet_one_layer_output_convolution_is_dilated_as_directs() -> None:
    one = RecurrentVarNet(
        RecurrentVarNetConfig(steps=1, hidden_channels=3, layers=1, learned_initializer=False)
    )
    conv = cast(RecurrentVarNetBlock, one.blocks[0]).regularizer.output_conv
    assert conv.dilation == (2, 2)
    # DIRECT's Conv2dGRU(num_layers=1): ReplicationPad2d(2) then a 3×3 convolution with dilation 2
    x = torch.randn(2, 3, 9, 7)
    expected = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), conv.weight, conv.bias, dilation=2)
    torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-6)
    for layers in (2, 4):  # several layers: the second convolution is the dilated one, the output not
        model = RecurrentVarNet(RecurrentVarNetConfig(steps=1, hidden_channels=3, layers=layers))
        stack = cast(RecurrentVarNetBlock, model.blocks[0]).regularizer
        assert stack.output_conv.dilation == (1, 1)
        assert [cast(torch.nn.Conv2d, c).dilation[0] for c in stack.convs] == [1, 2, *([1] * (layers - 2))]


# ----------------------------------------------------------------------------------------------
# The MGU cell is ATOMMIC's (not Zhou et al. 2016's); the registry says what the default RVN is
# ----------------------------------------------------------------------------------------------
def test_mgu_cell_is_atommics_not_zhous() -> None:
    torch.manual_seed(0)
    cell = ConvMGUCell(3, 4)
    perturb(cell)
    x, h = torch.randn(2, 3, 5, 6), torch.randn(2, 4, 5, 6)
    wx, bx = cell.input_conv.weight, cell.input_conv.bias
    assert cell.hidden_conv is not None
    wh = cell.hidden_conv.weight
    ih = F.conv2d(x, wx, bx).chunk(2, 1)
    hh = F.conv2d(h, wh).chunk(2, 1)
    f = torch.sigmoid(ih[0] + hh[0])
    atommic = (lambda c: c + f * (h - c))(torch.tanh(ih[1] + f * hh[1]))  # ATOMMIC's ConvMGUCell
    zhou = (1 - f) * h + f * torch.tanh(ih[1] + F.conv2d(f * h, wh[4:]))  # Zhou et al. 2016
    got = cell(x, h)
    torch.testing.assert_close(got, atommic, rtol=1e-5, atol=1e-6)
    assert (got - zhou).abs().max() > 1e-2
    assert "Zhou" in (ConvMGUCell.__doc__ or "") and "not" in (ConvMGUCell.__doc__ or "")


def test_registry_says_the_default_recurrentvarnet_is_the_ablation() -> None:
    summary = get_entry("recurrentvarnet").summary
    assert "ablation" in summary and "centred FFT" in summary and "recurrentvarnet_cc" in summary


def test_the_coil_refinement_must_pool_at_least_once() -> None:
    from mrirecon.errors import ConfigError

    # its U-Net always pools once: a config of 0 levels would describe another network than it builds
    with pytest.raises(ConfigError, match="coil_refinement_pools must be ≥ 1, got 0"):
        RecurrentVarNetConfig(coil_refinement_pools=0)
    assert RecurrentVarNetConfig(coil_refinement_pools=1).coil_refinement_pools == 1


@pytest.mark.parametrize("data_consistency", ["implicit", "soft", "soft_per_step"])
def test_without_cascade_gradients_a_loss_on_the_last_image_trains_only_the_last_cascade(
    data_consistency: Literal["implicit", "soft", "soft_per_step"],
) -> None:
    """``cascade_gradients=False`` (mridc, ATOMMIC): each cascade starts from a detached estimate,
    k-space and state, so the final image's loss reaches no parameter of an earlier cascade,
    whatever the data consistency (per step, the k-space a cascade starts from carries it)."""
    data = acquisition(batch=1, coils=2, height=9, width=8, acceleration=3, seed=2)
    config = CIRIMConfig(
        cascades=2, time_steps=2, channels=4, data_consistency=data_consistency, cascade_gradients=False
    )
    torch.manual_seed(0)
    model = CIRIM(config)
    perturb(model)
    model(*data.inputs).image.abs().sum().backward()
    first = [p.grad for p in model.cascades[0].parameters()]
    if model.data_consistency is not None:
        first += [p.grad for p in model.data_consistency[0].parameters()]
    assert all(g is None or float(g.abs().max()) == 0.0 for g in first)
    last = [p.grad for p in model.cascades[1].parameters()]
    assert any(g is not None and float(g.abs().max()) > 0.0 for g in last)
