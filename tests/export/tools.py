"""Test inputs for the export layer and wrappers around the DICOM command-line tools.

The tools come from Debian's dicom3tools (``dciodvfy``) and dcmtk (``dcmdump``, ``dcm2pnm``,
``storescp``, ``storescu``); ``.ci/run`` installs them. Tests that need one skip, saying which
package to install, where it is absent.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from mrirecon.export.geometry import SliceGeometry
from mrirecon.export.recon_h5 import ReconVolume
from mrirecon.export.validate import DciodvfyVerdict, run_dciodvfy
from tests.conftest import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {
    "dciodvfy": "dicom3tools",
    "dcmdump": "dcmtk",
    "dcm2pnm": "dcmtk",
    "storescp": "dcmtk",
    "storescu": "dcmtk",
}

#: Identifiers of the rich test header; none of them may survive --deidentify.
IDENTIFIERS = {
    "patient_name": "Zyxwvut^Qorsten",
    "patient_id": "MRN99887766",
    "birth_date": "1970-04-12",
    "accession": "ACC5551234",
    "institution": "Saint Elsewhere Hospital",
    "station": "STATIONZX9",
    "serial": "77123459",
    "referring": "Refdocowski^Ophelia",
    "study_uid": "1.3.12.2.1107.5.2.19.77123459.30000019031422",
    "frame_uid": "1.3.12.2.1107.5.2.19.77123459.1.20190314223135.0.0.0",
    "study_date": "2019-03-14",
    "study_time": "22:34:35",
    "study_id": "STUDY4242",
    "study_description": "Knee pain Zyxwvut",
    "protocol": "t2_tse_Zyxwvut",
}


def rich_header(*, body_part: str = "BRAIN", sex: str = "F", matrix: tuple[int, int] = (40, 32)) -> str:
    """An ISMRMRD header with every identifying field filled (schema order)."""
    i = IDENTIFIERS
    x, y = matrix
    body = f"<bodyPartExamined>{body_part}</bodyPartExamined>" if body_part else ""
    return f"""<?xml version="1.0"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
 <subjectInformation><patientName>{i["patient_name"]}</patientName><patientWeight_kg>83.75</patientWeight_kg>
  <patientID>{i["patient_id"]}</patientID><patientBirthdate>{i["birth_date"]}</patientBirthdate>
  <patientGender>{sex}</patientGender></subjectInformation>
 <studyInformation><studyDate>{i["study_date"]}</studyDate><studyTime>{i["study_time"]}</studyTime>
  <studyID>{i["study_id"]}</studyID><accessionNumber>{i["accession"]}</accessionNumber>
  <referringPhysicianName>{i["referring"]}</referringPhysicianName>
  <studyDescription>{i["study_description"]}</studyDescription>
  <studyInstanceUID>{i["study_uid"]}</studyInstanceUID>{body}</studyInformation>
 <measurementInformation><measurementID>77123459_1_2_349</measurementID><patientPosition>HFS</patientPosition>
  <protocolName>{i["protocol"]}</protocolName><frameOfReferenceUID>{i["frame_uid"]}</frameOfReferenceUID>
 </measurementInformation>
 <acquisitionSystemInformation><systemVendor>SIEMENS</systemVendor><systemModel>Skyra</systemModel>
  <systemFieldStrength_T>2.893620</systemFieldStrength_T><institutionName>{i["institution"]}</institutionName>
  <stationName>{i["station"]}</stationName><deviceSerialNumber>{i["serial"]}</deviceSerialNumber>
 </acquisitionSystemInformation>
 <experimentalConditions><H1resonanceFrequency_Hz>123182813</H1resonanceFrequency_Hz></experimentalConditions>
 <encoding>
  <encodedSpace><matrixSize><x>{2 * x}</x><y>{y}</y><z>1</z></matrixSize>
   <fieldOfView_mm><x>{4.0 * x}</x><y>{2.5 * y}</y><z>4</z></fieldOfView_mm></encodedSpace>
  <reconSpace><matrixSize><x>{x}</x><y>{y}</y><z>1</z></matrixSize>
   <fieldOfView_mm><x>{2.0 * x}</x><y>{2.5 * y}</y><z>4</z></fieldOfView_mm></reconSpace>
  <trajectory>cartesian</trajectory>
 </encoding>
 <sequenceParameters><TR>3000</TR><TE>90</TE><flipAngle_deg>150</flipAngle_deg>
  <sequence_type>TSE</sequence_type></sequenceParameters>
</ismrmrdHeader>
"""


def phantom(slices: int = 3, h: int = 40, w: int = 32, seed: int = 0, scale: float = 3e-4) -> np.ndarray:
    """A float32 ``(slices, h, w)`` phantom: ellipse with a bright insert, noise, small intensities."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    image = (xx**2 / 0.7**2 + yy**2 / 0.85**2 < 1).astype(np.float64)
    image += 1.5 * ((xx - 0.2) ** 2 + (yy + 0.1) ** 2 < 0.05)
    volume = np.stack([image * (1 + 0.1 * s) for s in range(slices)])
    volume += 0.05 * np.abs(rng.standard_normal(volume.shape))
    return (volume * scale).astype(np.float32)


def oblique_geometry(slices: int = 3, spacing: float = 5.0, seed: int = 1) -> SliceGeometry:
    """Slices of an oblique stack: a random rotation, centres along slice_dir every ``spacing`` mm."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    read, phase = q[:, 0], q[:, 1]
    normal = np.cross(read, phase)
    centre = np.array([12.5, -30.0, 41.0])
    position = np.stack([centre + (s - 1) * spacing * normal for s in range(slices)])
    tile = lambda v: np.tile(v, (slices, 1))  # noqa: E731
    return SliceGeometry(
        position=position,
        read_dir=tile(read),
        phase_dir=tile(phase),
        slice_dir=tile(normal),
        patient_table_position=tile(np.array([0.0, 0.0, -1200.0])),
        slice_thickness_mm=4.0,
    )


def volume(**kwargs) -> ReconVolume:
    """A ReconVolume with provenance filled in; keyword arguments override fields."""
    fields: dict[str, Any] = {
        "reconstruction": phantom(),
        "model": "cirim",
        "checkpoint_sha256": "3f" * 32,
        "input_file": "file1000007.h5",
        "acquisition": "AXT1",
        "undersampling": "retrospective",
        "mask_type": "equispaced",
        "acceleration": 4.0,
    }
    fields.update(kwargs)
    return ReconVolume(**fields)


def need(tool: str) -> str:
    """The tool's path; skips the test (naming the Debian package) where it is absent."""
    path = shutil.which(tool)
    if path is None:
        skip_or_fail(f"{tool} is not installed (Debian package {PACKAGES[tool]}; .ci/run installs it)")
    return path


def dciodvfy(path: Path) -> DciodvfyVerdict:
    """Run dciodvfy on one file (skips the test where it is not installed)."""
    return run_dciodvfy(path, need("dciodvfy"), timeout=60)


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Wait until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def send_to_storescp(files: list[Path], received: Path, *, timeout: float) -> str:
    """Send ``files`` with dcmtk's ``storescu`` to a ``storescp`` receiver on loopback that stores
    into ``received`` (created); asserts the send succeeded and returns the receiver's log."""
    storescp, storescu = need("storescp"), need("storescu")
    received.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen(
        [storescp, "--aetitle", "MRIRECON_PACS", "--output-directory", str(received), str(port)],
        cwd=received.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port)
        send = subprocess.run(
            [storescu, "--aetitle", "MRIRECON", "--call", "MRIRECON_PACS", "127.0.0.1", str(port)]
            + [str(f) for f in files],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert send.returncode == 0, send.stdout + send.stderr
    finally:
        server.terminate()
        log, _ = server.communicate(timeout=10)
    return log


def unprivileged() -> list[str]:
    """A command prefix that takes root's power to ignore file permissions away (empty when not root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        skip_or_fail("running as root without setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        skip_or_fail("running as root where setpriv may not drop capabilities (no CAP_SETPCAP)")
    return prefix


def run_python(
    code: str, *, prefix: list[str] | None = None, file_limit: int | None = None
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (``ExportError`` and ``sys`` imported), optionally with a
    command prefix (:func:`unprivileged`) and a limit on the size of files it writes (EFBIG)."""

    def limit() -> None:
        if file_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    script = "import sys\nfrom mrirecon.errors import ExportError\n" + textwrap.dedent(code)
    return subprocess.run(
        [*(prefix or []), sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        cwd=REPO,
    )
