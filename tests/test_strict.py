"""MRIRECON_STRICT_TESTS=1 (CI): a test that would skip for a missing tool fails instead."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run_dciodvfy_tests(tmp_path: Path, strict: bool) -> subprocess.CompletedProcess[str]:
    """The dciodvfy tests with a PATH that has no dciodvfy (the other tools stay reachable)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("dcmdump", "dcm2pnm", "storescp", "setpriv"):
        found = shutil.which(tool)
        if found and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin/env-only"}
    env["MRIRECON_STRICT_TESTS"] = "1" if strict else "0"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/export/test_dicom_tools.py",
        "-k",
        "dciodvfy",
    ]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_strict_mode_turns_a_missing_tool_into_a_failure(tmp_path: Path) -> None:
    relaxed = _run_dciodvfy_tests(tmp_path, strict=False)
    assert relaxed.returncode == 0 and "skipped" in relaxed.stdout, relaxed.stdout[-2000:]
    strict = _run_dciodvfy_tests(tmp_path, strict=True)
    assert strict.returncode != 0, strict.stdout[-2000:]
    assert "failed" in strict.stdout and "dciodvfy is not installed" in strict.stdout
    assert "MRIRECON_STRICT_TESTS=1" in strict.stdout
