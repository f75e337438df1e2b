"""The HTML report opens in headless Chromium and shows its pictures (checked on a screenshot)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrirecon.evaluation.evaluate import evaluate
from mrirecon.evaluation.options import EvaluationOptions
from tests.conftest import skip_or_fail
from tests.evaluation.synthetic import Dataset

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _screenshot(page: Path, png: Path, profile: Path) -> np.ndarray:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        "--window-size=1400,3000",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert png.is_file(), f"Chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return np.asarray(Image.open(png).convert("RGB")).astype(np.int16)


def _image_evidence(shot: np.ndarray) -> tuple[int, int, float]:
    """Near-black pixels (MRI background, error maps; text is #222 at its darkest), strongly coloured
    pixels (colour maps, outlines, plots) and the non-white fraction of the page."""
    dark = int((shot.max(axis=-1) < 20).sum())
    coloured = int(((shot.max(axis=-1) - shot.min(axis=-1)) > 80).sum())
    return dark, coloured, float((shot.min(axis=-1) < 245).mean())


@pytest.mark.slow
def test_report_renders_with_its_images_in_headless_chromium(lesion_dataset: Dataset, tmp_path: Path) -> None:
    if CHROMIUM is None:
        skip_or_fail("Chromium is not installed (Debian package `chromium`)")
    result = evaluate(
        [lesion_dataset.good, lesion_dataset.blurred, lesion_dataset.zero_filled],
        lesion_dataset.targets,
        tmp_path / "report",
        EvaluationOptions(progress=False),
    )
    shot = _screenshot(result.report_html, tmp_path / "report.png", tmp_path / "profile")
    assert shot.shape[:2] == (3000, 1400)
    dark, coloured, non_white = _image_evidence(shot)

    # the same page with its pictures removed: the difference is what the pictures contribute
    stripped = tmp_path / "report" / "no_images.html"
    html = result.report_html.read_text()
    stripped.write_text(re.sub(r'src="data:image/png;base64,[^"]+"', 'src=""', html))
    bare = _screenshot(stripped, tmp_path / "bare.png", tmp_path / "profile")
    dark_bare, coloured_bare, non_white_bare = _image_evidence(bare)

    assert shot.std() > 30, "the screenshot is (nearly) uniform: the page did not render"
    assert dark > 20_000 and dark_bare < 1_000, (
        f"pictures missing: {dark} dark pixels ({dark_bare} without them)"
    )
    assert coloured > coloured_bare + 10_000, f"colour maps missing: {coloured} vs {coloured_bare}"
    assert non_white > non_white_bare + 0.05
