"""A training run's folder: where it writes (:class:`RunPaths`), what it refuses or says about the
folder before training (a finished run started again, a resume with other settings or data), and
the config and test scores it writes there (layout in :mod:`mrirecon.training.run`)."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mrirecon.atomic import atomic_file
from mrirecon.config import from_mapping, load_yaml, to_mapping
from mrirecon.errors import ConfigError
from mrirecon.training.config import TrainConfig

__all__ = [
    "Resumed",
    "RunPaths",
    "check_output",
    "read_resumed",
    "run_paths",
    "say_if_data_changed",
    "write_config",
    "write_test_metrics",
]


@dataclass(frozen=True)
class RunPaths:
    """Where a run writes (see the module docstring)."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def config(self) -> Path:
        return self.checkpoints / "config.yaml"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def model(self) -> Path:
        return self.root / "model.pt"

    @property
    def test_metrics(self) -> Path:
        return self.root / "test_metrics.csv"


def run_paths(output_dir: str | os.PathLike[str]) -> RunPaths:
    """The paths of a run in ``output_dir``."""
    return RunPaths(Path(output_dir))


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and key != "params" and key != "terms":
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The settings two nested mappings give differently, ``key (old → new)``, sorted by key."""
    before, after = _flatten(old, prefix), _flatten(new, prefix)
    return [
        f"{k} ({before.get(k)!r} → {after.get(k)!r})"
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    ]


#: Settings that change the number of optimiser steps in an epoch (a resume refuses changes).
_EPOCH_LENGTH_KEYS = ("data.batch_size", "trainer.limit_train_batches", "data.simulation.train_slices")


def check_output(
    paths: RunPaths,
    config: TrainConfig,
    resume: bool,
    recorded: Mapping[str, Any] | None = None,
    resolve: Callable[[TrainConfig], Any] | None = None,
) -> list[str]:
    """Refuse an output folder that holds another run (without ``resume``), or a resume whose
    model or optimiser settings differ from the run's: its ``checkpoints/config.yaml`` or, when
    that file is gone, ``recorded`` (the training config its ``last.ckpt`` records).

    Args:
        resolve: The model config a training config builds (``model.params`` on the model's
            defaults or preset): a model section written differently that builds the same model
            (a default stated) resumes.

    Returns:
        The settings a resume changes, ``key (old → new)``, for the caller to announce once every
        other check has passed.
    """
    changed: list[str] = []
    if resume:
        if not paths.last.is_file():
            raise ConfigError(
                f"nothing to resume: no {paths.last}",
                path=paths.root,
                hint="start the run without --resume, or give the --output-dir of the run to continue",
            )
        source = paths.config if paths.config.is_file() else paths.last
        mapping = load_yaml(paths.config) if paths.config.is_file() else recorded
        if mapping is not None:
            try:
                saved = from_mapping(TrainConfig, mapping)
            except ConfigError as error:  # the run's own record: name where it was read
                raise ConfigError(error.message, path=source, hint=error.hint) from error
            if saved.model != config.model:
                _check_same_model(saved, config, resolve, source)
            changed = [  # (not the folder being resumed)
                change
                for change in _differences(saved.to_mapping(), config.to_mapping())
                if not change.startswith("output_dir ")
            ]
            steps = [change for change in changed if change.split(" ")[0] in _EPOCH_LENGTH_KEYS]
            if steps:  # the schedule's length was counted with the old number of steps per epoch
                raise ConfigError(
                    f"the steps per epoch differ from the run being resumed ({', '.join(steps)}): the "
                    "schedule restored from its checkpoint was counted for the old number and would "
                    "end early or late",
                    path=source,
                    hint="resume with the run's settings, or train on from its weights in a new run "
                    f"with model.init={paths.last}",
                )
            # gradient clipping is the trainer's, set at each start: a new value applies
            optim = [c for c in changed if c.startswith("optim.") and not c.startswith("optim.gradient_clip")]
            if optim:  # Lightning restores the optimiser and its schedule from last.ckpt
                raise ConfigError(
                    f"the optim settings differ from the run being resumed ({', '.join(optim)}), and a "
                    "resumed run goes on with the optimiser and schedule saved in its checkpoint",
                    path=source,
                    hint="resume with the run's optim settings, or train on from its weights in a new run "
                    f"with model.init={paths.last}",
                )
    elif any(p.exists() for p in (paths.last, paths.best, paths.model, paths.test_metrics)):
        raise ConfigError(
            "this folder already holds a training run",
            path=paths.root,
            hint="pass --resume to continue it, or choose another --output-dir",
        )
    return changed


def _check_same_model(
    saved: TrainConfig, config: TrainConfig, resolve: Callable[[TrainConfig], Any] | None, source: Path
) -> None:
    """Refuse a resume whose model differs from the run's, naming the settings that differ; a model
    section that builds the same model (``model.params.cell=indrnn`` where that is the default, or
    ``model.init`` of a file since moved: its weights are in the checkpoint) resumes."""
    if resolve is not None and saved.model.name == config.model.name:
        differ = _differences(to_mapping(resolve(saved)), to_mapping(resolve(config)))
        if not differ:
            return
    else:
        differ = _differences(to_mapping(saved.model), to_mapping(config.model), "model.")
    raise ConfigError(
        f"the model differs from the run being resumed ({', '.join(differ)})",
        path=source,
        hint="resume with the same model settings, or start a new run in another --output-dir",
    )


@dataclass(frozen=True)
class Resumed:
    """What a resumed run needs of its last checkpoint, read once: the file, mrirecon's record in
    it (model config, manifest checksum, world size; empty if it has none) and its epoch."""

    path: Path
    record: Mapping[str, Any]
    epoch: int | None

    @property
    def training_config(self) -> Mapping[str, Any] | None:
        """The training config the checkpoint records (None without one)."""
        recorded = self.record.get("training_config")
        return recorded if isinstance(recorded, Mapping) else None


def read_resumed(last: Path) -> Resumed:
    """The :class:`Resumed` of ``last`` (``checkpoints/last.ckpt``).

    Raises:
        CheckpointError: the file cannot be read safely.
    """
    from mrirecon.models.checkpoints import CHECKPOINT_KEY, read_checkpoint

    checkpoint = read_checkpoint(last)
    record, epoch = checkpoint.get(CHECKPOINT_KEY), checkpoint.get("epoch")
    return Resumed(
        last, record if isinstance(record, dict) else {}, epoch if isinstance(epoch, int) else None
    )


def say_if_data_changed(resumed: Resumed, checksum: str, echo: Callable[[str], object]) -> None:
    """On resume: say so when the training data's checksum differs from the one the run recorded."""
    saved = resumed.record.get("manifest_sha256")
    if saved is not None and saved != checksum:
        echo(
            f"Resuming with changed data: its checksum was {saved[:12]}, is {checksum[:12]} "
            "(manifest, source folders or data.simulation); the result will differ from the "
            "uninterrupted run's"
        )


def write_config(paths: RunPaths, config: TrainConfig) -> None:
    text = yaml.safe_dump(config.to_mapping(), sort_keys=False)
    with atomic_file(paths.config, what="training config") as tmp:
        tmp.write_text(text)


def write_test_metrics(paths: RunPaths, volumes: Sequence[Any]) -> None:
    with atomic_file(paths.test_metrics, what="test metrics") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["fname", "slices", "ssim", "psnr", "nmse", "loss"])
        for v in volumes:
            writer.writerow(
                [v.fname, v.slices, f"{v.ssim:.6f}", f"{v.psnr:.4f}", f"{v.nmse:.6f}", f"{v.loss:.6f}"]
            )
