"""Checks before training starts: each refuses, in one line, what would fail later with a traceback."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mrirecon.data.dataset import VolumeFacts
from mrirecon.errors import ConfigError
from mrirecon.training.config import train_config_from_mapping
from mrirecon.training.preflight import check_batches, check_coil_maps, check_split_sizes, check_volumes
from mrirecon.training.run import train
from tests.training.conftest import base_mapping


def test_evaluated_splits_need_a_slice_for_every_process() -> None:
    check_split_sizes({"train": [0], "val": [0, 1], "test": []}, world_size=2)  # no test set: fine
    with pytest.raises(
        ConfigError, match=r"the val data hold 1 slice\(s\), fewer than the 2 training processes"
    ):
        check_split_sizes({"val": [0]}, world_size=2)
    with pytest.raises(ConfigError, match="the test data hold 3"):
        check_split_sizes({"val": list(range(4)), "test": [0, 1, 2]}, world_size=4)


def _config(**data: Any) -> Any:
    mapping = base_mapping()
    mapping["data"].update(data)
    return mapping


def test_coil_maps_none_only_for_models_that_estimate_their_own_and_without_dc(tiny_registered: str) -> None:
    none = train_config_from_mapping(_config(coil_maps="none"))
    own_maps = SimpleNamespace(needs_coil_maps=lambda: False)
    check_coil_maps(none, own_maps)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"model 'tiny' needs coil maps, and 'data.coil_maps' is none"):
        check_coil_maps(none, SimpleNamespace(needs_coil_maps=lambda: True))  # type: ignore[arg-type]
    mapping = _config(coil_maps="none")
    mapping["loss"]["terms"]["dc"] = 0.1
    with pytest.raises(ConfigError, match=r"the 'dc' loss term .* and 'data.coil_maps' is none"):
        check_coil_maps(train_config_from_mapping(mapping), own_maps)  # type: ignore[arg-type]
    check_coil_maps(train_config_from_mapping(_config()), SimpleNamespace(needs_coil_maps=lambda: True))  # type: ignore[arg-type]


def test_a_batch_limit_that_leaves_no_training_batch(tiny_registered: str) -> None:
    config = train_config_from_mapping(base_mapping(limit_train_batches=0.1))
    message = r"'trainer.limit_train_batches' 0.1 of 8 training batch\(es\) leaves none"
    with pytest.raises(ConfigError, match=message):
        check_batches(config, 8)
    check_batches(config, 10)  # one batch
    check_batches(train_config_from_mapping(base_mapping(limit_train_batches=1)), 1)
    # each of two processes gets 5 of the 10 slices: 0.1 of 5 batches is none
    with pytest.raises(
        ConfigError, match=r"0.1 of 5 training batch\(es\) on each of 2 processes leaves none"
    ):
        check_batches(config, 10, world_size=2)
    # validation shards are not padded: 3 slices on 2 processes leave one slice on the second, and
    # half of one batch is none there (Lightning's traceback, on that rank alone)
    half = train_config_from_mapping(base_mapping(limit_val_batches=0.5))
    check_batches(half, 10, world_size=1, val_slices=3)
    with pytest.raises(ConfigError, match=r"'trainer.limit_val_batches' 0.5 of 1 validation batch"):
        check_batches(half, 10, world_size=2, val_slices=3)


class _Files:
    """A dataset that lists files, as SliceDataset does."""

    def __init__(self, facts: dict[Path, VolumeFacts]) -> None:
        self.facts = facts

    def file_facts(self) -> dict[Path, VolumeFacts]:
        return self.facts


def test_volumes_of_a_split_need_distinct_names_and_one_shape_for_batches(tiny_registered: str) -> None:
    said: list[str] = []
    plain = VolumeFacts(True, True, False, (4, 32, 32))
    config = train_config_from_mapping(_config(batch_size=2))
    same_name = {Path("siteA/scan.h5"): plain, Path("siteB/scan.h5"): plain}
    with pytest.raises(
        ConfigError, match=r"the val data hold 1 file name\(s\) more than once, e\.g\. siteA/scan"
    ):
        check_volumes(config, {"val": _Files(same_name)}, said.append)
    mixed = {Path("a.h5"): plain, Path("b.h5"): VolumeFacts(True, True, False, (4, 48, 32))}
    with pytest.raises(
        ConfigError, match=r"the train slices differ in shape .*\(4, 32, 32\) in a\.h5, \(4, 48, 32\)"
    ):
        check_volumes(config, {"train": _Files(mixed)}, said.append)
    check_volumes(config, {"val": _Files(mixed), "sim": [0, 1]}, said.append)  # val batches of 1: fine
    own = {Path("a.h5"): plain, Path("own.h5"): VolumeFacts(True, True, True, (4, 32, 32))}
    check_volumes(config, {"train": _Files(own)}, said.append)
    assert said == [
        "Note: 1 train file(s) store their own undersampling mask (e.g. own.h5): their slices keep it "
        "(a mask that samples every column leaves them fully sampled); data.mask undersamples the others"
    ]


def test_train_refuses_coil_maps_none_for_the_tiny_model_before_fitting(
    tiny_registered: str, phantom_data: dict[str, Any], tmp_path: Path
) -> None:
    config = train_config_from_mapping(_config(coil_maps="none"))
    with pytest.raises(ConfigError, match="needs coil maps"):
        train(config, output_dir=tmp_path / "run", datasets=phantom_data, echo=lambda _: None)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_file_in_two_splits_is_said(tiny_registered: str, tmp_path: Path) -> None:
    """``data.val`` given the training folder scored the training volumes as validation, without
    a word (a manifest refuses a file in two splits)."""
    said: list[str] = []
    plain = VolumeFacts(True, True, False, (4, 32, 32))
    config = train_config_from_mapping(_config())
    for name in ("a.h5", "b.h5"):
        (tmp_path / name).touch()
    train_files = {tmp_path / "a.h5": plain, tmp_path / "b.h5": plain}
    val_files = {tmp_path / "sub" / ".." / "b.h5": plain}  # the same file, by another path
    (tmp_path / "sub").mkdir()
    check_volumes(config, {"train": _Files(train_files), "val": _Files(val_files)}, said.append)
    assert said == [
        f"Note: the val data hold 1 of the train files (e.g. {tmp_path / 'sub' / '..' / 'b.h5'}): "
        "their val scores are not figures on held-out data"
    ]
    said.clear()
    check_volumes(
        config, {"train": _Files({tmp_path / "a.h5": plain}), "val": _Files(val_files)}, said.append
    )
    assert said == []
