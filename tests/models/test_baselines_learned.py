"""The learned baselines: fastMRI's U-Net and E2E-VarNet (gradients into every parameter, the
architecture's parameter counts, scale equivariance, MONAI's cascade as an oracle, coil-map modes,
per-sample masks, gradient checkpointing)."""

from __future__ import annotations

from typing import cast

import pytest
import torch
from torch import nn

from mrirecon.models.baselines import E2EVarNet, NormUNet, UNet, UNetConfig, UNetRecon, VarNetConfig
from mrirecon.models.baselines.varnet import SensitivityNet, VarNetCascade
from mrirecon.models.registry import build_model, parameter_count
from mrirecon.physics import MultiCoilOperator, channels_to_complex, ifft2c, rss
from tests.helpers import complex_randn
from tests.models.baselines_scenes import birdcage_maps, measure, project_mask, smooth_phantom, sparse_phantom

SMALL_VARNET = VarNetConfig(num_cascades=2, chans=4, pools=2, sens_chans=4, sens_pools=2)


def scene(
    coils: int = 4, height: int = 22, width: int = 19, kind: str = "equispaced"
) -> tuple[torch.Tensor, ...]:
    maps = birdcage_maps(coils, height, width)
    mask = project_mask(kind, height, width, 4, 0.25)
    return measure(sparse_phantom(height, width), maps, mask, noise=0.01), mask, maps


def unet_parameters(in_chans: int, out_chans: int, chans: int, pools: int) -> int:
    """fastMRI's U-Net counted by hand: 3×3 convs without bias, 2×2 transposed convs without bias,
    instance norm without affine parameters, a 1×1 output conv with bias."""

    def block(a: int, b: int) -> int:
        return 9 * a * b + 9 * b * b

    total = block(in_chans, chans)
    ch = chans
    for _ in range(pools - 1):
        total += block(ch, 2 * ch)
        ch *= 2
    total += block(ch, 2 * ch)
    for _ in range(pools):
        total += 4 * (2 * ch) * ch + block(2 * ch, ch)
        ch //= 2
    return total + chans * out_chans + out_chans


@pytest.mark.parametrize(
    ("in_chans", "chans", "pools"), [(1, 32, 4), (2, 32, 4), (2, 18, 4), (2, 8, 4), (3, 5, 2)]
)
def test_unet_has_fastmris_parameter_count(in_chans: int, chans: int, pools: int) -> None:
    net = UNet(in_chans, in_chans, chans, pools)
    assert sum(p.numel() for p in net.parameters()) == unet_parameters(in_chans, in_chans, chans, pools)


def test_default_counts_are_the_sum_of_their_unets() -> None:
    assert parameter_count(build_model("unet")) == unet_parameters(2, 2, 32, 4)
    cascades = 12 * (unet_parameters(2, 2, 18, 4) + 1)  # + one data-consistency weight each
    assert parameter_count(build_model("e2e_varnet")) == cascades + unet_parameters(2, 2, 8, 4)


@pytest.mark.parametrize(("height", "width"), [(13, 11), (16, 16), (21, 30)])
def test_unet_keeps_odd_and_even_sizes(height: int, width: int) -> None:
    torch.manual_seed(0)
    assert UNet(2, 3, 4, 2)(torch.randn(2, 2, height, width)).shape == (2, 3, height, width)
    x = complex_randn(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    assert NormUNet(3, 4, 3)(x).shape == x.shape


@pytest.mark.slow
@pytest.mark.parametrize("name", ["unet", "e2e_varnet"])
def test_finite_gradients_reach_every_parameter(name: str, device: torch.device) -> None:
    torch.manual_seed(0)
    model = build_model(name).to(device).train()  # the papers' default configs
    kspace, mask, maps = (t.to(device) for t in scene(coils=3, height=20, width=18))
    out = model(kspace, mask, maps)
    loss = out.image.abs().pow(2).mean()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"no gradient reaches {pname}"
        assert bool(torch.isfinite(p.grad).all()), f"non-finite gradient in {pname}"
        if pname == "cascades.0.data_consistency.weight":
            # The first cascade starts from the measured k-space, where M·(k − y) = 0: its weight
            # gets an exactly zero gradient (so it does in fastMRI's VarNet).
            assert float(p.grad.abs().max()) == 0
            continue
        assert float(p.grad.abs().max()) > 0, f"zero gradient in {pname}"


@pytest.mark.parametrize(
    "model_fn", [lambda: UNetRecon(UNetConfig(chans=8)), lambda: E2EVarNet(SMALL_VARNET)]
)
def test_outputs_scale_with_the_kspace(model_fn: object) -> None:
    """Both normalise their U-Net inputs by mean and std: the reconstruction is positively homogeneous."""
    torch.manual_seed(0)
    model = model_fn().eval()  # type: ignore[operator]
    kspace, mask, maps = scene()
    with torch.no_grad():
        out = model(kspace, mask, maps).image
        scaled = model(250.0 * kspace, mask, maps).image
    assert torch.allclose(scaled, 250.0 * out, rtol=1e-3, atol=1e-3 * float(scaled.abs().max()))


def test_unet_is_a_residual_on_the_zero_filled_image() -> None:
    torch.manual_seed(0)
    residual = UNetRecon(UNetConfig(chans=8)).eval()
    plain = UNetRecon(UNetConfig(chans=8, residual=False)).eval()
    plain.load_state_dict(residual.state_dict())
    kspace, mask, maps = scene()
    with torch.no_grad():
        start = MultiCoilOperator(maps, mask).adjoint(kspace)
        assert torch.allclose(residual(kspace, mask, maps).image, plain(kspace, mask, maps).image + start)


@pytest.mark.slow
def test_varnet_cascade_is_monais_varnet_block() -> None:
    """Same operator as MONAI's E2E-VarNet block (real layout, its own centred FFT) for the same U-Net."""
    from monai.apps.reconstruction.networks.blocks.varnetblock import VarNetBlock

    torch.manual_seed(0)
    kspace, mask, maps = scene(coils=4, height=21, width=18)
    current = complex_randn(1, 4, 21, 18, generator=torch.Generator().manual_seed(3))
    regularizer = NormUNet(1, 4, 2)

    class RealLayout(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.view_as_real(regularizer(torch.view_as_complex(x.contiguous())))

    ours, theirs = VarNetCascade(regularizer), VarNetBlock(RealLayout())
    with torch.no_grad():
        ours.data_consistency.weight.fill_(0.7)
        theirs.dc_weight.fill_(0.7)
        mine = ours(current, kspace, mask, MultiCoilOperator(maps, mask))
        real = theirs(
            torch.view_as_real(current),
            torch.view_as_real(kspace),
            mask.bool().unsqueeze(-1),
            torch.view_as_real(maps),
        )
    assert torch.allclose(mine, torch.view_as_complex(real), atol=1e-5)


def test_learned_maps_ignore_the_given_maps_and_given_maps_are_used() -> None:
    torch.manual_seed(0)
    kspace, mask, maps = scene()
    other = birdcage_maps(4, 22, 19).roll(1, dims=1)  # the same maps assigned to the wrong coils
    learned = E2EVarNet(SMALL_VARNET).eval()
    none = torch.zeros((kspace.shape[0], 0, 0, 0), dtype=torch.complex64)  # what --coil-maps none passes
    with torch.no_grad():
        assert torch.equal(learned(kspace, mask, maps).image, learned(kspace, mask, other).image)
        assert torch.equal(learned(kspace, mask, maps).image, learned(kspace, mask, none).image)
    given_config = VarNetConfig(**{**SMALL_VARNET.__dict__, "coil_maps": "given"})
    given = E2EVarNet(given_config).eval()
    assert given.sens_net is None
    assert parameter_count(given) < parameter_count(learned)
    with torch.no_grad():
        assert not torch.allclose(given(kspace, mask, maps).image, given(kspace, mask, other).image)
    with pytest.raises(ValueError, match="coil_maps: axis 'C' has size 0"):
        given(kspace, mask, none)


def test_sensitivity_net_sees_only_the_fully_sampled_centre() -> None:
    torch.manual_seed(0)
    kspace, mask, _ = scene()
    net = SensitivityNet(4, 2).eval()
    outer = torch.zeros_like(mask)
    outer[..., :4] = 1  # sampled lines far from the centre
    changed = kspace + 5 * outer * complex_randn(*kspace.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        maps = net(kspace, mask)
        assert torch.equal(maps, net(changed, mask))
    energy = rss(maps)
    assert torch.allclose(energy, torch.ones_like(energy), atol=1e-5)  # Σ|S|² = 1


def test_varnet_rss_output_bounds_its_sense_output() -> None:
    torch.manual_seed(0)
    kspace, mask, maps = scene()
    model_rss = E2EVarNet(SMALL_VARNET).eval()
    model_sense = E2EVarNet(VarNetConfig(**{**SMALL_VARNET.__dict__, "output": "sense"})).eval()
    model_sense.load_state_dict(model_rss.state_dict())
    with torch.no_grad():
        root = model_rss(kspace, mask, maps).image
        sense = model_sense(kspace, mask, maps).image
    assert torch.equal(root.imag, torch.zeros_like(root.imag))
    assert bool((sense.abs() <= root.real * (1 + 1e-5) + 1e-6).all())


def test_varnet_with_full_sampling_and_identity_cascades_returns_the_rss() -> None:
    """With U-Nets that output zero the cascades leave the measured k-space alone (full sampling)."""
    kspace, _, maps = scene()
    image = smooth_phantom(22, 19)
    full = torch.ones(1, 1, 1, 19)
    kspace = measure(image, maps, full)
    model = E2EVarNet(SMALL_VARNET).eval()
    with torch.no_grad():
        for cascade in model.cascades:
            head = cast(NormUNet, cast(VarNetCascade, cascade).regularizer).unet.head
            assert head.bias is not None
            head.weight.zero_()
            head.bias.zero_()
        out = model(kspace, full, maps).image
    assert torch.allclose(out.real, rss(ifft2c(kspace)), atol=1e-5)
    assert torch.allclose(out.real, image.abs(), atol=1e-4)


def test_varnet_handles_a_batch_of_different_masks() -> None:
    torch.manual_seed(0)
    model = E2EVarNet(SMALL_VARNET).eval()
    maps = birdcage_maps(4, 24, 20).expand(2, -1, -1, -1)
    masks = torch.cat([project_mask("equispaced", 24, 20, 4, 0.25), project_mask("random", 24, 20, 2, 0.4)])
    kspace = measure(torch.cat([sparse_phantom(24, 20), smooth_phantom(24, 20)]), maps, masks)
    with torch.no_grad():
        together = model(kspace, masks, maps).image
        for i in range(2):
            alone = model(kspace[i : i + 1], masks[i : i + 1], maps[i : i + 1]).image
            assert torch.allclose(together[i : i + 1], alone, atol=1e-5)


def test_varnet_with_2d_masks() -> None:
    torch.manual_seed(0)
    kspace, mask, maps = scene(kind="poisson2d")
    assert mask.shape == (1, 1, 22, 19)
    out = E2EVarNet(SMALL_VARNET)(kspace, mask, maps).image
    assert out.shape == (1, 22, 19) and bool(torch.isfinite(out).all())


@pytest.mark.slow
def test_gradient_checkpointing_changes_nothing_but_memory() -> None:
    torch.manual_seed(0)
    model = E2EVarNet(SMALL_VARNET)
    kspace, mask, maps = scene()

    def run(checkpointing: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        model.set_gradient_checkpointing(checkpointing)
        image = model(kspace, mask, maps).image
        image.abs().sum().backward()
        return image.detach(), [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]

    plain, plain_grads = run(False)
    assert not model.gradient_checkpointing
    saved, saved_grads = run(True)
    assert model.gradient_checkpointing
    assert torch.allclose(plain, saved, atol=1e-6)
    for a, b in zip(plain_grads, saved_grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    unet = UNetRecon(UNetConfig(chans=4))
    unet.set_gradient_checkpointing(True)
    assert not unet.gradient_checkpointing  # not supported: a no-op


@pytest.mark.long
@pytest.mark.parametrize("name", ["unet", "e2e_varnet"])
def test_learned_baselines_run_under_torch_compile(name: str) -> None:
    """About a minute of compilation each on two cores: run with ``-m long``."""
    torch.manual_seed(0)
    model = UNetRecon(UNetConfig(chans=4, num_pool_layers=2)) if name == "unet" else E2EVarNet(SMALL_VARNET)
    model.eval()
    kspace, mask, maps = scene()
    with torch.no_grad():
        compiled = torch.compile(model)(kspace, mask, maps).image
        eager = model(kspace, mask, maps).image
    assert torch.allclose(compiled, eager, atol=1e-5)


def test_norm_unet_normalises_pads_and_undoes_both_as_fastmri() -> None:
    """With the U-Net replaced by the identity, NormUNet returns its input (the normalisation is
    undone, the mean added back); the U-Net sees the normalised input zero-padded to a multiple of
    16 (fastMRI's, whatever the pools; 2^pools above 4 pools), the smaller half of the padding
    before (fastMRI: floor before, ceil after)."""
    seen: list[torch.Tensor] = []

    class Identity(torch.nn.Module):
        def forward(self, channels: torch.Tensor) -> torch.Tensor:
            seen.append(channels)
            return channels

    model = NormUNet(2, 4, 4)
    model.unet = Identity()  # type: ignore[assignment]
    g = torch.Generator().manual_seed(0)
    x = torch.complex(
        torch.randn(1, 2, 21, 19, generator=g) + 3.0, torch.randn(1, 2, 21, 19, generator=g) - 1.0
    )
    torch.testing.assert_close(model(x), x, rtol=1e-5, atol=1e-5)
    padded = seen[0]
    assert padded.shape == (1, 4, 32, 32)
    for pools, side in ((2, 32), (5, 32)):  # 16 as fastMRI with 2 pools (not 4); 2^5 with 5
        seen.clear()
        other = NormUNet(2, 4, pools)
        other.unet = Identity()  # type: ignore[assignment]
        other(x)
        assert seen[0].shape == (1, 4, side, side)
    seen[:] = [padded]
    rows = padded.abs().sum(dim=(0, 1, 3)) > 0
    cols = padded.abs().sum(dim=(0, 1, 2)) > 0
    assert rows.nonzero().flatten().tolist() == list(range(5, 26))  # 11 rows of padding: 5 before
    assert cols.nonzero().flatten().tolist() == list(range(6, 25))  # 13 columns: 6 before
    normed = channels_to_complex(padded)[0, :, 5:26, 6:25]
    torch.testing.assert_close(normed.real.mean(), torch.tensor(0.0), rtol=0, atol=1e-5)
    torch.testing.assert_close(normed.imag.std(), torch.tensor(1.0), rtol=1e-4, atol=1e-4)
