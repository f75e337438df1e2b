"""Packaging and layering: every package is installed, and layers import only what they may."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: What each layer may import from mrirecon (besides its own package and the base modules).
BASE = {"errors", "shapes", "config", "_version", "atomic", "runtime", "tables"}
ALLOWED = {
    "physics": set(),
    "masks": set(),
    "data": {"physics", "masks"},
    "models": {"physics", "masks"},
    "evaluation": {"physics", "masks", "data", "models"},
    "training": {"physics", "masks", "data", "models", "evaluation"},
    "export": {"physics", "masks", "data"},
    "inference": {"physics", "masks", "data", "models", "evaluation", "training", "export"},
    "pipeline": {"physics", "masks", "data", "models", "evaluation", "training", "export", "inference"},
}


def test_every_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "mrirecon").rglob("__init__.py")}
    assert found - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"
    assert "mrirecon_cli" in listed


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mrirecon."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("mrirecon.")}
    return names


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_layers_above_them(layer: str) -> None:
    for path in (REPO / "mrirecon" / layer).rglob("*.py"):
        bad = _imports(path) - ALLOWED[layer] - BASE - {layer}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}, which {layer}/ may not use"
