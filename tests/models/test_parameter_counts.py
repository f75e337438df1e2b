"""Parameter counts of the default configs and the paper variants, printed and pinned.

The reference figures (ATOMMIC/DIRECT code, /work/shared/reference and the issue's table):
RIM (GRU, 64 ch) 94,080; RIM (MGU) 77,568; CIRIM (IndRNN, 64 ch, 5 cascades) 264,960; 8 cascades
423,936; 128 ch (Calgary-Campinas) 980,480; DIRECT's RIM (128 ch, 16 steps) 0.36 M;
RecurrentVarNet (8 steps, 128 ch, 4 layers, RSI) 6.92 M; plus DIRECT's coil U-Net (8 ch, 4 pools)
≈ 0.48 M. Every count matches; docs/models.md explains the one structural difference (none in
count: DIRECT's GRU convolves [x, r·h] where we convolve x and r·h separately, same weights).
"""

from __future__ import annotations

import pytest

from mrirecon.models.config_files import load_model_config
from mrirecon.models.registry import build_model, parameter_count

PINNED = {
    "rim": 94_080,
    "rim_mgu": 77_568,
    "irim": 52_992,
    "rim_cc": 360_192,
    "rim_direct": 360_192,
    "cirim": 264_960,
    "cirim_knee": 423_936,
    "cirim_cc": 980_480,
    "cirim_mridc": 264_960,
    "cirim_soft_dc": 264_965,
    "cirim_explicit_dc": 264_965,
    "recurrentvarnet": 6_918_424,
    "recurrentvarnet_cc": 7_403_322,
    "recurrentvarnet_fastmri_brain": 3_312_218,
}


@pytest.mark.parametrize("config_name", sorted(PINNED))
def test_parameter_count_is_pinned(config_name: str) -> None:
    name, config = load_model_config(config_name)
    count = parameter_count(build_model(name, config))
    print(f"{config_name:32s} {count:>10,}")
    assert count == PINNED[config_name]


def test_default_configs_are_the_reference_models() -> None:
    counts = {name: parameter_count(build_model(name)) for name in ("rim", "cirim", "recurrentvarnet")}
    print(counts)
    assert counts == {"rim": 94_080, "cirim": 264_960, "recurrentvarnet": 6_918_424}
