"""DDP for real: two CPU processes (gloo) train and validate; every volume is scored exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mrirecon.models.checkpoints import load_checkpoint_model
from mrirecon.training.losses import crop_to_target
from mrirecon.training.scoring import mean_scores, slice_scores, volume_scores
from tests.training.phantoms import PhantomSlices

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_scores_every_volume_once(tiny_registered: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MRIRECON_NO_MALLOC_TUNING": "1"}
    run = subprocess.run(
        [sys.executable, str(REPO / "tests" / "training" / "ddp_run.py"), str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["world_size"] == 2
    assert run.stdout.count("2 process(es)") == 1  # rank 1 reruns the script but reports nothing

    # the same validation in one process, from the checkpoint the DDP run saved
    _, model = load_checkpoint_model(tmp_path / "checkpoints" / "last.ckpt")
    val = PhantomSlices(volumes=3, slices=3, train=False, seed=2, prefix="val")
    scores = []
    with torch.no_grad():
        for i in range(len(val)):
            s = val[i]
            out = model(s.masked_kspace[None], s.mask[None], s.coil_maps[None])
            pred, target = crop_to_target(out.image.abs(), s.target[None])
            scores += slice_scores(
                pred * s.scale,
                target * s.scale,
                torch.tensor([s.max_value * s.scale]),
                [s.fname],
                [s.slice_num],
            )
    volumes = volume_scores(scores)
    assert [v.slices for v in volumes] == [3, 3, 3]
    expected = mean_scores(volumes)
    logged = result["val_metrics"]
    assert logged["val_ssim"] == pytest.approx(expected["ssim"], abs=1e-5)
    assert logged["val_psnr"] == pytest.approx(expected["psnr"], abs=1e-3)
    assert logged["val_nmse"] == pytest.approx(expected["nmse"], rel=1e-4)
