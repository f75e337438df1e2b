"""Typed configs: unknown keys, wrong values and overrides give clear ConfigErrors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from mrirecon.config import apply_overrides, from_mapping, load_yaml, to_mapping
from mrirecon.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    cell: Literal["gru", "mgu", "indrnn"] = "gru"
    channels: tuple[int, ...] = (64, 64)


@dataclass(frozen=True)
class Outer:
    lr: float
    steps: int = 8
    name: str = "cirim"
    sigma: float | None = None
    inner: Inner = field(default_factory=Inner)


def test_builds_nested_typed_config() -> None:
    cfg = from_mapping(Outer, {"lr": 1, "inner": {"cell": "indrnn", "channels": [32, 32]}})
    assert cfg == Outer(lr=1.0, inner=Inner("indrnn", (32, 32)))
    assert isinstance(cfg.lr, float)
    assert from_mapping(Outer, to_mapping(cfg)) == cfg


def test_unknown_key_lists_allowed_keys() -> None:
    with pytest.raises(
        ConfigError, match=r"key 'inner\.cels'.*did you mean 'inner\.cell'\? allowed keys in inner"
    ):
        from_mapping(Outer, {"lr": 1.0, "inner": {"cels": "gru"}})
    with pytest.raises(ConfigError, match=r"key 'zzz'") as caught:  # nothing close: no guess
        from_mapping(Outer, {"lr": 1.0, "zzz": 1})
    assert "did you mean" not in str(caught.value)


@dataclass(frozen=True)
class Choices:
    train: str | list[str] | None = None
    devices: int | Literal["auto"] = "auto"


def test_a_value_of_no_allowed_type_names_the_key_once_and_every_type() -> None:
    """`data.train=2024` said "'data.train': 'data.train' must be a list, got 2024" (a path, text,
    is allowed too)."""
    quoted = r" \(quote a name YAML reads as a number: '2024'\)$"
    with pytest.raises(ConfigError, match=r"^'train' must be text or a list, got 2024" + quoted):
        from_mapping(Choices, {"train": 2024})
    with pytest.raises(ConfigError, match=r"^'devices' must be a number or 'auto', got 'all'$"):
        from_mapping(Choices, {"devices": "all"})


def test_bad_literal_lists_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"'inner\.cell' must be one of 'gru', 'mgu', 'indrnn'; got 'lstm'"):
        from_mapping(Outer, {"lr": 1.0, "inner": {"cell": "lstm"}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lr": "fast"}, "'lr' must be a number"),
        ({"lr": 1.0, "steps": 2.5}, "'steps' must be an integer"),
        ({"lr": 1.0, "steps": True}, "'steps' must be an integer"),
        ({}, "missing required key 'lr'"),
        ({"lr": 1.0, "inner": 3}, "'inner' must be a mapping"),
    ],
)
def test_type_errors(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(Outer, data)


def test_overrides_parse_yaml_scalars_and_nest() -> None:
    data = apply_overrides(
        {"lr": 1.0, "inner": {"cell": "gru"}}, ["lr=3e-4", "inner.channels=[8, 8]", "steps=4"]
    )
    assert from_mapping(Outer, data) == Outer(lr=3e-4, steps=4, inner=Inner("gru", (8, 8)))
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["lr"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"lr": 1.0}, ["lr.x=1"])


def test_load_yaml_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_yaml(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(listy)


@dataclass(frozen=True)
class Pair:
    betas: tuple[float, int] = (0.9, 1)


def test_fixed_length_tuples_convert_each_entry_with_its_type() -> None:
    assert from_mapping(Pair, {"betas": [0.5, 2]}) == Pair((0.5, 2))
    with pytest.raises(ConfigError, match=r"'betas\[1\]' must be an integer"):
        from_mapping(Pair, {"betas": [0.5, 2.5]})
    with pytest.raises(ConfigError, match="must have 2 entries"):
        from_mapping(Pair, {"betas": [0.5]})


def test_a_checkout_path_to_a_shipped_config_works_outside_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The docs write `mrirecon train --config configs/cirim_synthetic.yaml`; after a wheel install there
    is no configs/ folder: the shipped config of that name is used, and said."""
    from mrirecon.config import find_config
    from mrirecon.errors import ConfigError, Notice

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MRIRECON_CONFIGS", raising=False)
    with pytest.warns(
        Notice, match="configs/cirim_synthetic.yaml is not here: using the config 'cirim_synthetic'"
    ):
        found = find_config("configs/cirim_synthetic.yaml")
    assert found == find_config("cirim_synthetic") and found.is_file()
    with pytest.warns(Notice):
        assert find_config("configs/models/sense.yaml", "models") == find_config("sense", "models")
    with pytest.raises(ConfigError, match="config file not found"):
        find_config("configs/no_such_recipe.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        find_config("elsewhere/cirim_synthetic.yaml")  # only a path into configs/ is looked up by name


@dataclass(frozen=True)
class _Named:
    name: str = "x"
    folder: Path = Path()
    either: str | list[str] = "a"
    count: int = 1
    scale: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)


def test_override_numbers_stay_text_for_text_and_path_fields() -> None:
    data = apply_overrides(
        {}, ["name=007", "folder=2024", "either=1e3", "count=12", "scale=2.50", "params.n=3"]
    )
    got = from_mapping(_Named, data)
    assert got == _Named(name="007", folder=Path("2024"), either="1e3", count=12, scale=2.5, params={"n": 3})
    # the numbers are plain numbers again, wherever they end up
    assert type(got.count) is int and type(got.scale) is float and type(got.params["n"]) is int
    assert yaml.safe_dump(to_mapping(got))
    # the same numbers in a YAML file are refused for text, with the way out
    with pytest.raises(ConfigError, match=r"'folder' must be a path, got 2024 \(quote"):
        from_mapping(_Named, {"folder": 2024})
    with pytest.raises(ConfigError, match=r"'either' must be text or a list, got 2024 \(quote"):
        from_mapping(_Named, {"either": 2024})
