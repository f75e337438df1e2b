"""``mrirecon models``: every registered model with its parameter count; config files; JSON."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mrirecon.models.registry import build_model, model_names, parameter_count
from mrirecon_cli.main import cli


def test_lists_every_registered_model_with_its_parameter_count() -> None:
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["model", "parameters", "trainable", "summary"]
    for name in model_names():
        row = next(line for line in lines if line.split()[0] == name)
        assert f"{parameter_count(build_model(name)):,}" in row
    assert any(line.startswith("cirim ") and "264,960" in line for line in lines)


def test_configs_and_json() -> None:
    result = CliRunner().invoke(cli, ["models", "--configs", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert {m["name"] for m in payload["models"]} == set(model_names())
    configs = {c["name"]: c for c in payload["configs"]}
    assert configs["cirim_knee"]["model"] == "cirim" and configs["cirim_knee"]["parameters"] == 423_936
    assert configs["rim_direct"]["parameters"] == 360_192
    table = CliRunner().invoke(cli, ["models", "--configs"])
    assert "recurrentvarnet_cc" in table.output and "7,403,322" in table.output
