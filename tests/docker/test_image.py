"""The CPU image, built and run: a batch reconstructed inside the container gives what a checkout gives.

Long (run with ``-m long``; minutes): podman builds docker/Dockerfile.cpu without network access from
a wheel folder made here with pip, on a base image that needs no registry (docker/build-base.sh makes
it from Debian packages; ``MRIRECON_IMAGE_BASE=python:3.11-slim`` uses the registry's image instead).
Selected without podman, the test fails and says what to install.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
BASE = os.environ.get("MRIRECON_IMAGE_BASE", "localhost/mrirecon-base:bookworm")
IMAGE = "localhost/mrirecon:cpu-test"
MRIRECON = Path(sys.executable).parent / "mrirecon"
# The same tiny batch on the host and in the container: 2 volumes of 2 slices, 4 coils, 64×64.
BATCH = shlex.split("batch --model zero_filled --mask equispaced --acceleration 4 --num-workers 0 --dicom")

pytestmark = [pytest.mark.long, pytest.mark.timeout(3600)]


def run(cmd: list[str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)


def tail(result: subprocess.CompletedProcess[str], lines: int = 40) -> str:
    text = (result.stdout or "") + (result.stderr or "")
    return "\n".join(text.splitlines()[-lines:])


def podman() -> str:
    found = shutil.which("podman")
    if found is None:
        pytest.fail(
            "podman is not installed (Debian/Ubuntu: apt-get install podman); this long test builds "
            "docker/Dockerfile.cpu. Leave it out with --deselect tests/docker/test_image.py",
            pytrace=False,
        )
    return found


def ensure_base(exe: str) -> None:
    """The base image: present already, or made from Debian packages by docker/build-base.sh."""
    if run([exe, "image", "exists", BASE], 60).returncode == 0:
        return
    if "MRIRECON_IMAGE_BASE" in os.environ:
        pulled = run([exe, "pull", BASE], 900)
        assert pulled.returncode == 0, f"cannot pull MRIRECON_IMAGE_BASE={BASE}:\n{tail(pulled)}"
        return
    if os.geteuid() != 0:
        pytest.fail(
            f"the base image {BASE} is absent and docker/build-base.sh needs root: run "
            "`sudo docker/build-base.sh` once, or set MRIRECON_IMAGE_BASE=python:3.11-slim",
            pytrace=False,
        )
    built = run([str(REPO / "docker" / "build-base.sh"), BASE.removeprefix("localhost/")], 1800)
    assert built.returncode == 0, f"docker/build-base.sh failed:\n{tail(built)}"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Build the CPU image offline: every package from a wheel folder pip fills here."""
    exe = podman()
    ensure_base(exe)
    wheels = tmp_path_factory.mktemp("wheels")
    try:
        pip_wheel = shlex.split("-m pip wheel --quiet -c constraints.txt . setuptools>=68 wheel")
        fetched = run([sys.executable, *pip_wheel, "-w", str(wheels)], 1800, cwd=REPO)
        assert fetched.returncode == 0, f"pip could not fill the wheel folder:\n{tail(fetched)}"
        offline = shlex.split("--build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/wheels")
        build = [exe, "build", "--network", "none", "--volume", f"{wheels}:/wheels:ro", *offline]
        dockerfile = ["--build-arg", f"BASE={BASE}", "-f", "docker/Dockerfile.cpu", "-t", IMAGE, "."]
        built = run(build + dockerfile, 3000, cwd=REPO)
        assert built.returncode == 0, f"podman build failed:\n{tail(built)}"
    finally:
        shutil.rmtree(wheels, ignore_errors=True)
    yield IMAGE
    run([exe, "rmi", "--force", IMAGE], 300)


def test_the_image_reconstructs_a_batch(image: str, tmp_path: Path) -> None:
    data, inside, outside = tmp_path / "data", tmp_path / "inside", tmp_path / "outside"
    small = shlex.split("--volumes 2 --slices 2 --coils 4 --size 64 64 --split 0,0,1 --no-progress")
    simulated = run([str(MRIRECON), "simulate", str(data), *small], 600)
    assert simulated.returncode == 0, tail(simulated)
    inside.mkdir()
    inside.chmod(0o777)  # the image runs as uid 1000
    mounts = ["-v", f"{data}:/data:ro", "-v", f"{inside}:/output"]
    container = [podman(), "run", "--rm", "--network", "none", *mounts, image]
    ran = run([*container, *BATCH, "--input-dir", "/data", "--output-dir", "/output"], 900)
    assert ran.returncode == 0, f"batch in the container failed:\n{tail(ran)}"
    assert "Reconstructed 2 volume(s) (4 slices)" in ran.stdout + ran.stderr, tail(ran)
    report = json.loads((inside / "run.json").read_text())
    assert report["status"] == "complete" and report["input"] == "/data"
    assert report["counts"]["reconstructed"] == 2 and report["counts"]["failed"] == 0
    assert (inside / "failures.csv").read_text().strip() == "file,error"

    # The same batch from this checkout: the same files and the same images.
    host = run([str(MRIRECON), *BATCH, "--input-dir", str(data), "--output-dir", str(outside)], 900)
    assert host.returncode == 0, tail(host)
    names = sorted(p.name for p in data.glob("*.h5"))
    assert len(names) == 2
    assert sorted(p.name for p in inside.glob("*.h5")) == names
    for name in names:
        series = sorted(p.name for p in (inside / "dicom" / name.removesuffix(".h5")).glob("*.dcm"))
        assert series == ["IM_0001.dcm", "IM_0002.dcm"]
        with h5py.File(inside / name) as a, h5py.File(outside / name) as b:
            assert a["reconstruction"].shape == (2, 64, 64)
            np.testing.assert_allclose(a["reconstruction"][()], b["reconstruction"][()], rtol=1e-5, atol=1e-6)


def test_the_image_has_the_cpu_torch_and_a_bounded_size(image: str) -> None:
    exe = podman()
    probe = run(
        [
            exe,
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "python",
            image,
            "-c",
            "import os, torch; print(torch.__version__, torch.cuda.is_available(), os.getuid())",
        ],
        300,
    )
    assert probe.returncode == 0, tail(probe)
    assert probe.stdout.split() == ["2.13.0+cpu", "False", "1000"]
    inspected = run([exe, "image", "inspect", "--format", "{{.Size}}", image], 60)
    assert inspected.returncode == 0, tail(inspected)
    size = int(inspected.stdout.strip())
    print(f"\n{image}: {size} bytes ({size / 1e9:.2f} GB)")
    # 1.84 GB measured with the Debian base; a CUDA torch would add several GB.
    assert size < 2.5e9, f"the CPU image is {size / 1e9:.2f} GB"
