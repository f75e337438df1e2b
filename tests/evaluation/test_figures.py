"""The report's pictures: labels drawn as text, error maps scaled by finite pixels."""

from __future__ import annotations

import numpy as np

from mrirecon.evaluation.figures import PanelRow, _finite_percentile, volume_figure
from mrirecon.evaluation.panels import _caption


def test_a_label_with_dollar_signs_is_drawn_as_text() -> None:
    """matplotlib read `zf $5_vs_$10` as TeX and raised: evaluate stopped after all its scoring."""
    target = np.random.default_rng(0).random((16, 16))
    rows = [PanelRow(label="zf $5_vs_$10", reconstruction=target * 0.9, zero_filled=None, caption="")]
    assert volume_figure(target, rows).startswith(b"\x89PNG")


def test_a_failed_reconstruction_does_not_set_the_error_scale_of_the_others() -> None:
    """A NaN in one error map made NaN the percentile every error map of the volume shares
    (saturated maps, colour bars from -0.1 to 0.1), depending on the folders' order."""
    error = np.full((8, 8), 0.1)
    error[0, 0] = np.nan
    assert _finite_percentile(error, 99.5) == 0.1
    assert _finite_percentile(np.full((4, 4), np.nan), 99.5) == 0.0
    assert _caption({"ssim": float("nan"), "psnr": float("nan"), "nmse": float("nan")}).endswith(
        "not finite (the reconstruction holds NaN or infinite values)"
    )
    assert "PSNR inf" in _caption({"ssim": 1.0, "psnr": float("inf"), "nmse": 0.0})
