"""The run folder's checkpoint callbacks keep their best score when the folder moves."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from mrirecon.training.checkpoint_callbacks import RunFolderCheckpoint


def test_a_moved_run_folder_keeps_its_best_score_and_files(tmp_path: Path) -> None:
    before, after = tmp_path / "scratch" / "run" / "checkpoints", tmp_path / "project" / "run" / "checkpoints"
    saved = RunFolderCheckpoint(dirpath=before, filename="best", monitor="val_ssim", mode="max")
    saved.best_model_score = torch.tensor(0.5287)
    saved.best_model_path = str(before / "best.ckpt")
    saved.kth_best_model_path = str(before / "best.ckpt")
    saved.kth_value = torch.tensor(0.5287)
    saved.best_k_models = {str(before / "best.ckpt"): torch.tensor(0.5287)}
    saved.last_model_path = str(before / "last.ckpt")
    state = saved.state_dict()

    moved = RunFolderCheckpoint(dirpath=after, filename="best", monitor="val_ssim", mode="max")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Lightning's "dirpath has changed … won't be reloaded"
        moved.load_state_dict(state)
    assert moved.best_model_score is not None and float(moved.best_model_score) == float(torch.tensor(0.5287))
    assert moved.best_model_path == str(after / "best.ckpt")
    assert moved.best_k_models == {str(after / "best.ckpt"): torch.tensor(0.5287)}
    assert moved.last_model_path == str(after / "last.ckpt")

    stayed = RunFolderCheckpoint(dirpath=before, filename="best", monitor="val_ssim", mode="max")
    stayed.load_state_dict(state)  # unmoved: as Lightning loads it
    assert stayed.best_model_path == str(before / "best.ckpt") and stayed.kth_value == torch.tensor(0.5287)
