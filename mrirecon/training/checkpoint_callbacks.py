"""The run folder's checkpoint callbacks: ``best.ckpt`` and ``last.ckpt`` in ``checkpoints/``.

A run folder may be moved or copied between sessions (from scratch space to project space, to
another machine): Lightning's ``ModelCheckpoint`` then forgets the best score it recorded (it keeps
it only when the folder's absolute path is unchanged), and a resumed run would overwrite
``best.ckpt`` with the first epoch it validates, better or not. :class:`RunFolderCheckpoint` maps
the recorded paths into the folder the run now has.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytorch_lightning.callbacks import ModelCheckpoint

if TYPE_CHECKING:
    from mrirecon.training.run_folder import RunPaths

__all__ = ["RunFolderCheckpoint", "checkpoint_callbacks"]


class RunFolderCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose recorded files follow the run folder when it moves."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        recorded = state_dict.get("dirpath")
        if recorded is None or self.dirpath is None or recorded == self.dirpath:
            super().load_state_dict(state_dict)
            return
        here = Path(self.dirpath)

        def moved(path: Any) -> Any:  # a file of the recorded folder → the same file here
            if not path or Path(path).parent != Path(recorded):
                return path
            return str(here / Path(path).name)

        state = dict(state_dict)
        state["dirpath"] = self.dirpath
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if key in state:
                state[key] = moved(state[key])
        if "best_k_models" in state:
            state["best_k_models"] = {moved(path): score for path, score in state["best_k_models"].items()}
        super().load_state_dict(state)


def checkpoint_callbacks(paths: RunPaths) -> tuple[RunFolderCheckpoint, RunFolderCheckpoint]:
    """``best.ckpt`` (highest validation SSIM) and ``last.ckpt`` (every epoch's end).

    Two callbacks: Lightning's ``save_last`` only refreshes ``last.ckpt`` in epochs that also saved
    a top-k checkpoint, so a run whose SSIM stopped improving would resume from a stale epoch.
    """
    common: dict[str, Any] = {
        "dirpath": paths.checkpoints,
        "auto_insert_metric_name": False,
        "enable_version_counter": False,
    }
    best = RunFolderCheckpoint(
        filename=paths.best.stem, monitor="val_ssim", mode="max", save_top_k=1, **common
    )
    # at every epoch's end, validated or not (Lightning would wait for validation when
    # check_val_every_n_epoch > 1, and a run stopped between validations would lose its last epochs)
    last = RunFolderCheckpoint(
        filename=paths.last.stem,
        monitor=None,
        save_top_k=1,
        every_n_epochs=1,
        save_on_train_epoch_end=True,
        **common,
    )
    return best, last
