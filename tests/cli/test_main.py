"""The installed ``mrirecon`` script: help, version, one-line errors with exit code 2, --debug."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from mrirecon import ConfigError, __version__
from mrirecon_cli.main import cli


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "Commands:" in result.output and "demo" in result.output


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


@pytest.fixture
def failing_cli() -> Iterator[click.Group]:
    @click.command("fail")
    def fail() -> None:
        raise ConfigError("unknown model 'foo'", path="configs/x.yaml", hint="run `mrirecon models`")

    cli.add_command(fail)
    yield cli
    cli.commands.pop("fail")


def test_user_error_is_one_line_and_exit_code_2(failing_cli: click.Group) -> None:
    result = CliRunner().invoke(failing_cli, ["fail"])
    assert result.exit_code == 2
    first = result.output.splitlines()[0]
    assert first == "Error: configs/x.yaml: unknown model 'foo' (run `mrirecon models`)"
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback_with_the_same_exit_code(failing_cli: click.Group) -> None:
    result = CliRunner().invoke(failing_cli, ["--debug", "fail"])
    assert result.exit_code == 2  # a job that sets MRIRECON_DEBUG still tells user errors apart
    assert "Traceback" in result.output
    assert "ConfigError: configs/x.yaml: unknown model 'foo'" in result.output


def test_installed_script_runs() -> None:
    exe = shutil.which("mrirecon") or str(__import__("pathlib").Path(sys.executable).parent / "mrirecon")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert __version__ in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "mrirecon_cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in out.stdout
