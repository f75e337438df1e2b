"""Demo settings: checked at construction; the quick settings fit ESPIRiT's calibration."""

from __future__ import annotations

import pytest

from mrirecon.errors import ConfigError
from mrirecon.pipeline.settings import DemoPaths, DemoSettings, quick_settings


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"models": ("unet",)}, "the demo trains cirim, rim, recurrentvarnet, not unet"),
        ({"baselines": ("grappa",)}, "not grappa"),
        ({"volumes": 2}, "at least 3 volumes"),
        ({"epochs": 0}, "--epochs must be at least 1"),
    ],
)
def test_bad_settings_are_config_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DemoSettings(**changes)  # type: ignore[arg-type]


def test_quick_settings_keep_enough_calibration_lines_for_espirit() -> None:
    quick = quick_settings()
    assert int(quick.size * quick.center_fraction) > 6  # ESPIRiT's kernel width
    assert quick.center_fraction * quick.acceleration < 1  # an equispaced mask exists


def test_the_data_key_changes_with_the_data_only(tmp_path) -> None:
    base = DemoSettings()
    assert base.data_key() == DemoSettings(epochs=3, models=("rim",)).data_key()
    assert base.data_key() != DemoSettings(volumes=21).data_key()
    paths = DemoPaths(tmp_path)
    assert paths.read_state() == {}
    paths.write_state({"data": base.data_key()})
    assert paths.read_state() == {"data": base.data_key()}
    paths.settings.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read the demo's record"):
        paths.read_state()
