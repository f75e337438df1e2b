"""RIM, CIRIM and RecurrentVarNet: output shapes and step structure (single- and multi-coil, odd and
even sizes, line and 2-D masks), finite gradients into every parameter, input checks, CUDA."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mrirecon.models.base import ReconOutput, Reconstructor
from tests.models.conftest import TINY, build_tiny
from tests.models.synthetic import acquisition


def expected_steps(variant: str) -> list[int]:
    name, config = TINY[variant]
    if name == "rim":
        return [config.time_steps]
    if name == "cirim":
        return [config.time_steps] * config.cascades
    return [config.steps]


@pytest.mark.parametrize("coils", [1, 4])
@pytest.mark.parametrize("size", [(12, 10), (11, 9), (7, 13)])
def test_output_shapes_and_steps(tiny, coils: int, size: tuple[int, int], device: torch.device) -> None:
    variant, _ = tiny
    model = build_tiny(variant).to(device).eval()
    data = acquisition(batch=2, coils=coils, height=size[0], width=size[1], seed=1).to(device)
    with torch.inference_mode():
        out = model(*data.inputs)
    assert isinstance(out, ReconOutput)
    assert out.image.shape == (2, *size) and out.image.dtype == torch.complex64
    assert out.image.device.type == device.type
    assert [len(s) for s in out.steps] == expected_steps(variant)
    assert all(step.shape == (2, *size) and step.dtype == torch.complex64 for c in out.steps for step in c)
    assert out.steps[-1][-1] is out.image
    assert torch.isfinite(torch.view_as_real(out.image)).all()


def test_two_dimensional_and_shared_masks(tiny) -> None:
    variant, _ = tiny
    model = build_tiny(variant).eval()
    data = acquisition(batch=2, coils=3, height=10, width=8, two_d_mask=True, seed=2)
    with torch.inference_mode():
        per_sample = model(*data.inputs).image
        shared = model(data.masked_kspace, data.mask[:1].expand(2, -1, -1, -1).clone(), data.coil_maps).image
        first = model(data.masked_kspace, data.mask[:1], data.coil_maps).image
    assert per_sample.shape == (2, 10, 8)
    torch.testing.assert_close(shared, first)


def test_finite_gradients_into_every_parameter(tiny) -> None:
    variant, _ = tiny
    model = build_tiny(variant).train()
    data = acquisition(batch=2, coils=3, height=9, width=8, seed=3)
    out = model(*data.inputs)
    loss = sum((step - data.truth).abs().mean() for cascade in out.steps for step in cascade)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{variant}: no gradient reaches {name}"
        assert torch.isfinite(parameter.grad).all(), f"{variant}: non-finite gradient in {name}"
        if name == "blocks.0.data_consistency.weight" and not TINY[variant][1].share_weights:
            # RecurrentVarNet starts from k₀ = y, so the first step's residual M(k₀ − y) is zero and
            # α₁ never learns (as in DIRECT; docs/models.md).
            assert parameter.grad.abs().sum() == 0
            continue
        if name == "data_consistency.0.weight" and variant == "cirim_soft_per_step":
            # the same for the per-step DC of the CIRIM paper (mridc 0.0.1): the first cascade
            # starts from k_in = y, so λ₁·M(k_in − y) is zero
            assert parameter.grad.abs().sum() == 0
            continue
        assert parameter.grad.abs().sum() > 0, f"{variant}: zero gradient in {name}"


class _MixedPrecisionOps(TorchDispatchMode):
    """Records every operation whose real floating-point operands are of more than one dtype."""

    def __init__(self) -> None:
        super().__init__()
        self.mixed: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        leaves = torch.utils._pytree.tree_leaves((args, kwargs))
        dtypes = {t.dtype for t in leaves if isinstance(t, torch.Tensor) and t.is_floating_point()}
        if len(dtypes) > 1:
            shapes = [tuple(t.shape) for t in leaves if isinstance(t, torch.Tensor)]
            self.mixed.append(f"{func} {sorted(map(str, dtypes))} {shapes}")
        return func(*args, **kwargs)


def test_bf16_autocast_on_the_cpu_mixes_no_dtypes_in_an_operation(tiny) -> None:
    """trainer.precision: bf16-mixed and --precision bf16-mixed on a CPU: no operation of a training
    step or of an inference takes float32 and bfloat16 operands together. Such an operation runs on
    PyTorch's type-converting path: the IndRNN update with its float32 recurrent weight took 30×
    the time of the convolution before it (a CIRIM step in bf16-mixed slower than in float32)."""
    variant, _ = tiny
    model = build_tiny(variant).train()
    data = acquisition(batch=2, coils=3, height=12, width=10, seed=3)
    recorder = _MixedPrecisionOps()
    with recorder:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(*data.inputs)
        loss = sum((step - data.truth).abs().mean() for cascade in out.steps for step in cascade)
        loss.backward()
    assert recorder.mixed == []
    model.eval()
    with recorder, torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(*data.inputs)
    assert recorder.mixed == []


class _LayoutMixingOps(TorchDispatchMode):
    """Records every operation that takes a channels-last and an NCHW feature map of one shape:
    PyTorch's elementwise kernels then walk one of them out of order (10 ms instead of 1 ms for a
    64-channel 218 × 170 map)."""

    def __init__(self) -> None:
        super().__init__()
        self.mixed: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        maps = [
            t
            for t in torch.utils._pytree.tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor) and t.dim() == 4 and t.shape[1] >= 4 and t.shape[-1] > 1
        ]
        layouts: dict[tuple[int, ...], set[bool]] = {}
        for t in maps:
            if t.is_contiguous(memory_format=torch.channels_last) != t.is_contiguous():
                layouts.setdefault(tuple(t.shape), set()).add(t.is_contiguous())
        if any(len(found) > 1 for found in layouts.values()):
            self.mixed.append(f"{func} {[tuple(t.shape) for t in maps]}")
        return func(*args, **kwargs)


def test_a_training_step_keeps_one_layout_per_feature_map(tiny) -> None:
    """The cells' feature maps are channels-last; no forward or backward operation of a training
    step mixes them with NCHW ones. Two slices of the GRU's gates gave NCHW gradients that its
    sigmoid's backward met with its channels-last output: a third of a RIM training step went to
    that and the copies after it (1.40 → 0.88 s at 218 × 170 once the gates were split)."""
    variant, _ = tiny
    model = build_tiny(variant).train()
    data = acquisition(batch=2, coils=3, height=12, width=10, seed=3)
    recorder = _LayoutMixingOps()
    with recorder:
        out = model(*data.inputs)
        loss = sum((step - data.truth).abs().mean() for cascade in out.steps for step in cascade)
        loss.backward()
    assert recorder.mixed == []


def test_batch_elements_are_independent(tiny) -> None:
    """Slice i of a batch is reconstructed as it would be alone (nothing mixes the batch)."""
    variant, _ = tiny
    model = build_tiny(variant).eval()
    data = acquisition(batch=2, coils=3, height=8, width=8, seed=4)
    with torch.inference_mode():
        together = model(*data.inputs).image
        alone = model(*(t[1:] for t in data.inputs)).image
    torch.testing.assert_close(together[1:], alone, atol=1e-5, rtol=1e-4)


def test_inputs_are_checked() -> None:
    model: Reconstructor = build_tiny("rim_gru")
    data = acquisition(batch=2, coils=3, height=8, width=6)
    with pytest.raises(ValueError, match="coil_maps"):
        model(data.masked_kspace, data.mask, data.coil_maps[:, :2])
    with pytest.raises(ValueError, match="mask must have shape"):
        model(data.masked_kspace, data.mask[..., :5], data.coil_maps)
    with pytest.raises(TypeError, match="complex"):
        model(data.masked_kspace.abs(), data.mask, data.coil_maps)
    with pytest.raises(
        TypeError, match=r"masked_kspace is torch.complex128 and the model's weights are torch.float32"
    ):
        model(data.masked_kspace.to(torch.complex128), data.mask, data.coil_maps.to(torch.complex128))
    double = build_tiny("rim_gru").double()  # float64 weights take complex128 inputs
    assert (
        double(
            data.masked_kspace.to(torch.complex128), data.mask, data.coil_maps.to(torch.complex128)
        ).image.dtype
        == torch.complex128
    )


def test_a_flat_image_gives_a_finite_normalised_recurrentvarnet() -> None:
    """DIRECT's normalisation divides by the image's standard deviation: none for a flat image."""
    model = build_tiny("recurrentvarnet_direct_options").eval()
    data = acquisition(batch=1, coils=3, height=8, width=8, seed=2)
    with torch.inference_mode():
        image = model(torch.zeros_like(data.masked_kspace), data.mask, data.coil_maps).image
    assert bool(torch.isfinite(image).all())
