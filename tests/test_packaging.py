"""Packaging and layering: every package is installed, and layers import only what they may.

The layering is read from the source with ``ast``, for every import form: ``import mrirecon.x``,
``from mrirecon.x import y``, ``from mrirecon import x`` and relative imports (``from . import x``,
``from ..x import y``), at module level and inside functions. The table is docs/architecture.md's.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: What each layer may import from mrirecon (besides its own package and the base modules).
BASE = {"errors", "shapes", "config", "_version", "atomic", "runtime", "tables", "workers"}
ALLOWED = {
    "physics": set(),
    "masks": set(),
    "data": {"physics", "masks"},
    "models": {"physics", "masks"},
    "export": {"physics", "masks", "data"},
    "evaluation": {"physics", "masks", "data", "models", "export"},
    "training": {"physics", "masks", "data", "models", "evaluation", "export"},
    "inference": {"physics", "masks", "data", "models", "evaluation", "training", "export"},
    "pipeline": {"physics", "masks", "data", "models", "evaluation", "training", "export", "inference"},
}


def test_every_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "mrirecon").rglob("__init__.py")}
    assert found - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"
    assert "mrirecon_cli" in listed


def _module_of(path: Path) -> list[str]:
    """``mrirecon/data/fastmri.py`` → ``["mrirecon", "data", "fastmri"]`` (a package: its name)."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_modules(path: Path) -> set[str]:
    """Every ``mrirecon`` module a file imports, absolute, whatever the import form."""
    package = _module_of(path) if path.name == "__init__.py" else _module_of(path)[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name == "mrirecon" or a.name.startswith("mrirecon.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this file's package
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module != "mrirecon" and not module.startswith("mrirecon."):
                continue
            if module == "mrirecon" or (node.level and not node.module):
                # from mrirecon import x / from . import x: x may be a submodule
                found |= {f"{module}.{a.name}" for a in node.names}
            else:
                found.add(module)
    return found


def _layers(modules: set[str]) -> set[str]:
    return {m.split(".")[1] for m in modules if m.count(".") >= 1}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_layers_above_them(layer: str) -> None:
    for path in (REPO / "mrirecon" / layer).rglob("*.py"):
        bad = _layers(imported_modules(path)) - ALLOWED[layer] - BASE - {layer, "__version__"}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}, which {layer}/ may not use"


def test_base_modules_import_no_layer() -> None:
    for name in BASE:
        path = REPO / "mrirecon" / f"{name}.py"
        bad = _layers(imported_modules(path)) - BASE - {"__version__"}
        assert not bad, f"mrirecon/{name}.py imports {sorted(bad)}: base modules use only each other"


def test_the_cli_imports_only_public_names_of_known_layers() -> None:
    """cli/ is thin: it may use any layer's public modules and names, never a private one."""
    for path in (REPO / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("mrirecon"):
                continue
            module = node.module or ""
            parts = module.split(".")
            private = [p for p in parts[1:] if p.startswith("_") and p != "_version"]
            names = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
            assert not private and not names, f"cli/{path.name} imports private {module} {names}"
            if module.startswith("mrirecon.") and not module.startswith("mrirecon_cli"):
                assert parts[1] in ALLOWED or parts[1] in BASE, f"cli/{path.name} imports {module}"


def test_every_import_form_is_seen(tmp_path: Path) -> None:
    """The checker itself: each form of import is found (so a layer cannot slip one past it)."""
    package = REPO / "mrirecon" / "data"
    sample = package / "_layering_probe.py"
    sample.write_text(
        "import mrirecon.inference.batch\n"
        "from mrirecon import training\n"
        "from mrirecon.export import recon_h5\n"
        "from .. import pipeline\n"
        "from ..evaluation import metrics\n"
        "def f():\n    from . import fastmri\n"
    )
    try:
        modules = imported_modules(sample)
    finally:
        sample.unlink()
    assert {
        "mrirecon.inference.batch",
        "mrirecon.training",
        "mrirecon.export",
        "mrirecon.pipeline",
        "mrirecon.evaluation",
        "mrirecon.data.fastmri",
    } <= modules
    assert _layers(modules) - ALLOWED["data"] - {"data"} == {
        "inference",
        "training",
        "export",
        "pipeline",
        "evaluation",
    }
