"""mrirecon from a built wheel (not the checkout): the configs travel with it and resolve by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
from pathlib import Path
import mrirecon, mrirecon_configs
from click.testing import CliRunner
from mrirecon_cli.main import cli
from mrirecon.inference.loading import load_reconstructor
from mrirecon.training.config import load_train_config

assert Path(mrirecon.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()), mrirecon.__file__
listing = CliRunner().invoke(cli, ["models", "--configs", "--json"])
assert listing.exit_code == 0, listing.output
names = {row["name"] for row in json.loads(listing.output)["configs"]}
assert {"cs_l1wavelet", "sense", "cirim_knee"} <= names, names
cs = load_reconstructor("cs_l1wavelet", model_config="cs_l1wavelet")
assert cs.name == "cs_l1wavelet"
config = load_train_config("cirim_synthetic")
assert config.model.name == "cirim"
assert load_train_config("pretrained/cirim_brain").data.simulation is not None
print("ok")
"""


@pytest.mark.slow
def test_an_installed_wheel_resolves_the_shipped_configs_by_name(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(ROOT),
            "-w",
            str(wheels),
        ],
        check=True,
        capture_output=True,
    )
    target = tmp_path / "site"
    [wheel] = wheels.glob("mrirecon-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    work = tmp_path / "elsewhere"  # no ./configs here: only the installed ones can answer
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("MRIRECON_CONFIGS", None)
    env.pop("MRIRECON_MODEL_CONFIGS", None)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(target)], cwd=work, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")
