"""Data consistency and full sampling.

What can be asked of an *untrained* model given fully sampled k-space and a full mask? The RIM's
start ``x₀ = Aᴴy`` is then the truth and the log-likelihood gradient there is zero, so any error is
the network's own update Δ — which, with random weights, is not small (checked below). So:

- with its update switched off (last convolution zeroed) a RIM/CIRIM stays exactly at the truth at
  every step, and RecurrentVarNet (α = 1, regulariser output zeroed) returns it too — this fails if
  the start, the coil combination, the FFT convention or the mask broadcasting is wrong;
- with explicit soft data consistency (λ = 1) a CIRIM returns the truth at the end of every cascade
  *whatever its weights*;
- a tiny RIM trained for a few dozen steps learns to stay within a few percent of the truth.

Under undersampling, soft data consistency with λ = 1 puts the measured samples back exactly
(single coil), moves them by the fraction λ otherwise, and never increases the data misfit
(multi-coil, where the SENSE combination mixes coils).
"""

from __future__ import annotations

from typing import cast

import pytest
import torch

from mrirecon.models.cells import CellKind
from mrirecon.models.recurrentvarnet import RecurrentVarNet, RecurrentVarNetBlock, RecurrentVarNetConfig
from mrirecon.models.rim import CIRIM, RIM, CIRIMConfig, RIMBlock, RIMConfig
from mrirecon.physics import LogLikelihoodGradient, MultiCoilOperator, fft2c, sense_expand
from mrirecon.physics.consistency import SoftDataConsistency
from tests.models.synthetic import acquisition


def relative_error(x: torch.Tensor, truth: torch.Tensor) -> float:
    return float((x - truth).abs().norm() / truth.abs().norm())


def zero_rim_updates(model: CIRIM) -> CIRIM:
    with torch.no_grad():
        for block in model.cascades:
            cast(RIMBlock, block).stack.output_conv.weight.zero_()
    return model


def regulariser_output(block: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the output convolution of a RecurrentVarNet block's regulariser."""
    conv = cast(RecurrentVarNetBlock, block).regularizer.output_conv
    assert conv.bias is not None
    return conv.weight, conv.bias


@pytest.mark.parametrize("coils", [1, 4])
def test_full_sampling_start_is_the_truth_and_the_gradient_vanishes(coils: int) -> None:
    data = acquisition(coils=coils, acceleration=1, height=11, width=10)
    gradient = LogLikelihoodGradient(MultiCoilOperator(data.coil_maps, data.mask), data.masked_kspace)
    torch.testing.assert_close(gradient.adjoint_measured, data.truth, atol=1e-5, rtol=1e-5)
    assert gradient(data.truth).abs().max() < 1e-5


@pytest.mark.parametrize("cell", ["gru", "mgu", "indrnn"])
def test_rim_without_update_stays_at_the_truth(cell: CellKind) -> None:
    torch.manual_seed(0)
    data = acquisition(coils=4, acceleration=1, height=11, width=10)
    model = RIM(RIMConfig(cell=cell, channels=8, time_steps=3)).eval()
    with torch.inference_mode():
        untrained = model(*data.inputs)
        still = zero_rim_updates(model)(*data.inputs)
    assert relative_error(untrained.image, data.truth) > 0.01  # the random update is not small
    for step in still.steps[0]:
        torch.testing.assert_close(step, data.truth, atol=1e-5, rtol=1e-5)


def test_rim_start_follows_the_fft_convention() -> None:
    """Uncentred k-space needs ``fft_centered=False``: the other convention does not give the truth."""
    torch.manual_seed(0)
    data = acquisition(coils=3, acceleration=1, height=10, width=8)
    uncentred = torch.fft.fftn(sense_expand(data.truth, data.coil_maps), dim=(-2, -1), norm="ortho")
    right = zero_rim_updates(RIM(RIMConfig(channels=4, time_steps=1, fft_centered=False)))
    wrong = zero_rim_updates(RIM(RIMConfig(channels=4, time_steps=1, fft_centered=True)))
    with torch.inference_mode():
        torch.testing.assert_close(
            right(uncentred, data.mask, data.coil_maps).image, data.truth, atol=1e-5, rtol=1e-5
        )
        assert relative_error(wrong(uncentred, data.mask, data.coil_maps).image, data.truth) > 0.1


@pytest.mark.parametrize("coils", [1, 4])
def test_cirim_with_soft_consistency_returns_the_truth_at_full_sampling(coils: int) -> None:
    torch.manual_seed(1)
    data = acquisition(coils=coils, acceleration=1, height=9, width=12)
    model = CIRIM(CIRIMConfig(cascades=3, time_steps=2, channels=6, data_consistency="soft")).eval()
    with torch.inference_mode():
        out = model(*data.inputs)
    for cascade in out.steps:
        torch.testing.assert_close(cascade[-1], data.truth, atol=1e-5, rtol=1e-5)
    assert relative_error(out.steps[0][0], data.truth) > 1e-3  # inside a cascade the update still acts


def test_recurrentvarnet_without_regulariser_returns_the_truth_at_full_sampling() -> None:
    torch.manual_seed(2)
    data = acquisition(coils=4, acceleration=1, height=10, width=9)
    model = RecurrentVarNet(RecurrentVarNetConfig(steps=3, hidden_channels=6)).eval()
    with torch.no_grad():
        for block in model.blocks:
            weight, bias = regulariser_output(block)
            weight.zero_()
            bias.zero_()
        out = model(*data.inputs)
    for step in out.steps[0]:
        torch.testing.assert_close(step, data.truth, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_trained_rim_stays_close_to_the_truth_at_full_sampling() -> None:
    torch.manual_seed(3)
    model = RIM(RIMConfig(channels=8, time_steps=3))
    train = [acquisition(batch=2, coils=3, acceleration=1, height=12, width=10, seed=s) for s in range(4)]
    test = acquisition(batch=2, coils=3, acceleration=1, height=12, width=10, seed=99)

    def error() -> float:
        with torch.no_grad():
            return relative_error(model(*test.inputs).image, test.truth)

    before = error()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for iteration in range(80):
        data = train[iteration % len(train)]
        out = model(*data.inputs)
        loss = sum((step - data.truth).abs().mean() for step in out.steps[0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = error()
    assert before > 0.1
    assert after < 0.01, f"relative error {before:.3f} → {after:.3f}"


def test_soft_consistency_puts_measured_samples_back_single_coil() -> None:
    torch.manual_seed(4)
    data = acquisition(coils=1, acceleration=3, height=10, width=12)
    model = CIRIM(CIRIMConfig(cascades=2, time_steps=2, channels=6, data_consistency="soft")).eval()
    sampled = data.mask.expand_as(data.masked_kspace) > 0
    with torch.inference_mode():
        out = model(*data.inputs)
        for cascade in out.steps:
            kspace = fft2c(cascade[-1].unsqueeze(1))
            torch.testing.assert_close(kspace[sampled], data.masked_kspace[sampled], atol=1e-5, rtol=1e-5)
            assert (kspace[~sampled].abs() > 1e-4).any()  # unmeasured samples are the model's own


def test_soft_consistency_with_partial_weight_moves_samples_part_way() -> None:
    torch.manual_seed(5)
    data = acquisition(coils=1, acceleration=3, height=8, width=9)
    model = CIRIM(CIRIMConfig(cascades=1, time_steps=2, channels=6, data_consistency="soft")).eval()
    sampled = data.mask.expand_as(data.masked_kspace) > 0
    assert model.data_consistency is not None
    consistency = cast(SoftDataConsistency, model.data_consistency[0])
    with torch.inference_mode():
        consistency.weight.fill_(0.0)
        plain = fft2c(model(*data.inputs).image.unsqueeze(1))
        consistency.weight.fill_(0.25)
        moved = fft2c(model(*data.inputs).image.unsqueeze(1))
    expected = plain - 0.25 * (plain - data.masked_kspace)
    torch.testing.assert_close(moved[sampled], expected[sampled], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(moved[~sampled], plain[~sampled], atol=1e-5, rtol=1e-5)


def test_soft_consistency_never_increases_the_data_misfit_multicoil() -> None:
    torch.manual_seed(6)
    data = acquisition(coils=4, acceleration=3, height=12, width=10)
    operator = MultiCoilOperator(data.coil_maps, data.mask)
    model = CIRIM(CIRIMConfig(cascades=2, time_steps=2, channels=6, data_consistency="soft")).eval()
    implicit = CIRIM(CIRIMConfig(cascades=2, time_steps=2, channels=6))
    implicit.load_state_dict(model.state_dict(), strict=False)
    with torch.inference_mode():
        with_dc = model(*data.inputs).steps[0][-1]
        without = implicit(*data.inputs).steps[0][-1]

    def misfit(x: torch.Tensor) -> float:
        return float((operator(x) - data.masked_kspace).abs().norm())

    assert misfit(with_dc) < misfit(without)


def test_recurrentvarnet_consistency_step_puts_measured_samples_back() -> None:
    """With α = 1 and the second regulariser silenced, k₂ equals y where sampled (single coil)."""
    torch.manual_seed(7)
    data = acquisition(coils=1, acceleration=3, height=10, width=8)
    model = RecurrentVarNet(RecurrentVarNetConfig(steps=2, hidden_channels=6)).eval()
    sampled = data.mask.expand_as(data.masked_kspace) > 0
    with torch.no_grad():
        weight, bias = regulariser_output(model.blocks[1])
        weight.zero_()
        bias.zero_()
        out = model(*data.inputs)
    first, second = (fft2c(step.unsqueeze(1)) for step in out.steps[0])
    assert (first[sampled] - data.masked_kspace[sampled]).abs().max() > 1e-3  # step 1 moved them
    torch.testing.assert_close(second[sampled], data.masked_kspace[sampled], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(second[~sampled], first[~sampled], atol=1e-5, rtol=1e-5)
