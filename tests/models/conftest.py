"""Tiny configurations of the recurrent models (every variant the configs can express) for fast tests."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from mrirecon.models.base import Reconstructor
from mrirecon.models.recurrentvarnet import RecurrentVarNetConfig
from mrirecon.models.registry import build_model
from mrirecon.models.rim import CIRIMConfig, RIMConfig

#: Variant id → (registry name, tiny config).
TINY: dict[str, tuple[str, Any]] = {
    "rim_gru": ("rim", RIMConfig(cell="gru", channels=6, time_steps=2)),
    "rim_mgu": ("rim", RIMConfig(cell="mgu", channels=6, time_steps=2)),
    "rim_indrnn": ("rim", RIMConfig(cell="indrnn", channels=6, time_steps=2)),
    "cirim": ("cirim", CIRIMConfig(cascades=2, time_steps=2, channels=6)),
    "cirim_soft_dc": ("cirim", CIRIMConfig(cascades=2, time_steps=2, channels=6, data_consistency="soft")),
    "cirim_soft_per_step": (
        "cirim",
        CIRIMConfig(cascades=2, time_steps=2, channels=6, data_consistency="soft_per_step"),
    ),
    "cirim_mridc": (
        "cirim",
        CIRIMConfig(cascades=2, time_steps=2, channels=6, cascade_gradients=False, carry_hidden_state=False),
    ),
    "recurrentvarnet": (
        "recurrentvarnet",
        RecurrentVarNetConfig(steps=2, hidden_channels=6, initializer_channels=(4, 4, 6, 6)),
    ),
    "recurrentvarnet_refined_maps": (
        "recurrentvarnet",
        RecurrentVarNetConfig(
            steps=2,
            hidden_channels=6,
            layers=3,
            initializer_channels=(4, 6),
            initializer_dilations=(1, 2),
            initializer_multiscale=2,
            refine_coil_maps=True,
            coil_refinement_channels=2,
            coil_refinement_pools=2,
        ),
    ),
    "recurrentvarnet_direct_options": (
        "recurrentvarnet",
        RecurrentVarNetConfig(
            steps=2,
            hidden_channels=6,
            layers=1,
            initializer_channels=(4, 6),
            initializer_dilations=(1, 2),
            initializer_multiscale=1,
            initializer_input="zero_filled",
            normalized=True,
        ),
    ),
    "recurrentvarnet_shared_zero_init": (
        "recurrentvarnet",
        RecurrentVarNetConfig(
            steps=2, hidden_channels=6, layers=2, share_weights=True, learned_initializer=False
        ),
    ),
}


@pytest.fixture(autouse=True)
def one_thread():
    """The tensors here are tiny: one thread is faster, and immune to a busy machine's scheduling."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=sorted(TINY))
def tiny(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """(variant id, (registry name, config)) of each tiny variant."""
    return request.param, TINY[request.param]


def build_tiny(variant: str, seed: int = 0) -> Reconstructor:
    """The tiny model of ``variant`` with seeded weights."""
    name, config = TINY[variant]
    torch.manual_seed(seed)
    return build_model(name, config)
