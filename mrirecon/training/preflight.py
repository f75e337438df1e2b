"""Checks a training run makes once its datasets and model exist, before Lightning starts: each
refuses, in one line, a setting that would otherwise fail later with a traceback."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mrirecon.errors import ConfigError

if TYPE_CHECKING:
    from mrirecon.models.base import Reconstructor
    from mrirecon.training.config import TrainConfig
    from mrirecon.training.run_folder import Resumed

__all__ = ["check_batches", "check_coil_maps", "check_split_sizes", "check_volumes"]


def check_split_sizes(datasets: Mapping[str, Any], world_size: int) -> None:
    """Every process must get at least one slice of each evaluated split."""
    for split in ("val", "test"):
        if split in datasets and 0 < len(datasets[split]) < world_size:
            raise ConfigError(
                f"the {split} data hold {len(datasets[split])} slice(s), fewer than the "
                f"{world_size} training processes",
                hint=f"give data.{split} at least {world_size} slices, or train on fewer devices",
            )


def check_coil_maps(config: TrainConfig, model: Reconstructor) -> None:
    """``data.coil_maps: none`` only for a model that estimates its own maps, and without the dc loss."""
    if config.data.coil_maps != "none":
        return
    if model.needs_coil_maps():
        raise ConfigError(
            f"model '{config.model.name}' needs coil maps, and 'data.coil_maps' is none",
            hint="set data.coil_maps to acs or espirit (none is for models that estimate their own)",
        )
    if config.loss.terms.get("dc", 0.0) > 0:
        raise ConfigError(
            "the 'dc' loss term compares the estimate with the measured samples through coil maps, "
            "and 'data.coil_maps' is none",
            hint="set data.coil_maps to acs or espirit, or drop the dc term",
        )


def check_batches(config: TrainConfig, slices: int, world_size: int = 1, val_slices: int = 0) -> None:
    """Refuse a fractional ``limit_train_batches`` or ``limit_val_batches`` that leaves no batch on
    a process (Lightning raises a traceback there, under DDP on one rank only): each of
    ``world_size`` processes gets ``ceil(slices / world_size)`` training slices (the sampler pads)
    and at least ``floor(val_slices / world_size)`` validation slices (each scored once: no padding)."""
    for split, limit, per_process, batch in (
        ("train", config.trainer.limit_train_batches, math.ceil(slices / world_size), config.data.batch_size),
        ("val", config.trainer.limit_val_batches, val_slices // world_size, config.data.val_batch_size),
    ):
        batches = math.ceil(per_process / batch)
        if isinstance(limit, float) and batches and int(batches * limit) < 1:
            where = f" on each of {world_size} processes" if world_size > 1 else ""
            what = "training" if split == "train" else "validation"
            raise ConfigError(
                f"'trainer.limit_{split}_batches' {limit} of {batches} {what} batch(es){where} leaves none",
                hint=f"raise it to at least {1 / batches:.3g}, or give a number of batches",
            )


def check_volumes(config: TrainConfig, datasets: Mapping[str, Any], say: Callable[[str], object]) -> None:
    """What the files of each split must share before training (datasets that list files only):

    - distinct file names: a volume is scored, and named in ``test_metrics.csv``, by its file name,
      so two volumes of one name would be scored as one;
    - with batches of several slices, one slice shape ``(C, H, W)``: slices of other shapes do not
      stack (refused now, not in the middle of a run, where under DDP one rank would stop alone).

    A file in two splits (``data.val`` the training folder) is said in one line: its scores are
    not held-out figures.

    Files that store their own mask keep it (``data.mask`` undersamples the fully sampled ones):
    said in one line per split.

    Raises:
        ConfigError: for repeated file names, or slice shapes that cannot share a batch.
    """
    seen: dict[Path, str] = {}  # each file's resolved path → the first split that holds it
    for split, dataset in datasets.items():
        if not hasattr(dataset, "file_facts"):
            continue
        facts = dataset.file_facts()
        shared = [path for path in facts if seen.get(path.resolve(), split) != split]
        if shared:
            earlier = seen[shared[0].resolve()]
            say(
                f"Note: the {split} data hold {len(shared)} of the {earlier} files (e.g. {shared[0]}): "
                f"their {split} scores are not figures on held-out data"
            )
        for path in facts:
            seen.setdefault(path.resolve(), split)
        names = Counter(path.name for path in facts)
        repeated = [name for name, count in names.items() if count > 1]
        if repeated:
            paths = [str(path) for path in facts if path.name == repeated[0]]
            raise ConfigError(
                f"the {split} data hold {len(repeated)} file name(s) more than once, e.g. "
                f"{', '.join(paths[:2])}",
                hint="volumes are scored by file name: rename the files so that each name is one volume",
            )
        batch = config.data.batch_size if split == "train" else config.data.val_batch_size
        shapes: dict[tuple[int, int, int], Any] = {}
        for path, fact in facts.items():
            if fact.slice_shape is not None:
                shapes.setdefault(fact.slice_shape, path)
        if batch > 1 and len(shapes) > 1:
            (shape_a, path_a), (shape_b, path_b) = list(shapes.items())[:2]
            key = "batch_size" if split == "train" else "val_batch_size"
            raise ConfigError(
                f"the {split} slices differ in shape (coils, H, W): {shape_a} in {path_a}, {shape_b} in "
                f"{path_b}; batches of {batch} slices need one shape",
                hint=f"set data.{key}: 1, or give the split files of one matrix size and coil count",
            )
        own = [path for path, fact in facts.items() if fact.own_mask]
        if own:
            say(
                f"Note: {len(own)} {split} file(s) store their own undersampling mask (e.g. {own[0].name}): "
                "their slices keep it (a mask that samples every column leaves them fully sampled); "
                "data.mask undersamples the others"
            )


def check_resumable(resumed: Resumed, *, world_size: int, max_epochs: int | None) -> None:
    """A run resumes on as many processes as it trained on (its checkpoint records them): on
    another count its data order differs, and its learning-rate schedule, whose length counts the
    optimiser steps of the first count, ends early (a cosine schedule reaches 0 and trains on at
    0). And ``trainer.max_epochs`` may not be below the epochs it has trained (Lightning stops on
    that with an internal error).

    Raises:
        ConfigError: naming the counts and the fix.
    """
    last, trained, epoch = resumed.path, resumed.record.get("world_size"), resumed.epoch
    if isinstance(trained, int) and trained != world_size:
        raise ConfigError(
            f"the run trained on {trained} process(es) and this start has {world_size}",
            path=last,
            hint="resume with the run's trainer.devices and trainer.num_nodes, or train on from its weights "
            f"in a new run with model.init={last}",
        )
    # a checkpoint's epoch is the 0-based index of the epoch it ends (or that max_steps stopped in,
    # which an extended run does not go back to): epoch + 1 epochs are done
    done = None if epoch is None else epoch + 1
    if done is not None and max_epochs is not None and max_epochs >= 0 and done > max_epochs:
        raise ConfigError(
            f"the run has trained {done} epochs already, more than trainer.max_epochs {max_epochs}",
            path=last,
            hint=f"raise trainer.max_epochs above {done} to train on; the run's best model is its model.pt",
        )
