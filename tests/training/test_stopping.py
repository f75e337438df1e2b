"""When training stops: max_steps and max_minutes, and exact resume after either."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import torch

from mrirecon.errors import ConfigError
from mrirecon.training.config import train_config_from_mapping
from mrirecon.training.run import train
from mrirecon.training.stopping import EpochTimeBudget, StepLimit
from tests.training.conftest import base_mapping
from tests.training.test_train import _Crash, _CrashAtEpoch


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Strategy:
    def __init__(self, others: bool = False) -> None:
        self.others = others  # what the other ranks decided

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        assert all is False  # any rank over budget stops every rank
        return decision or self.others


def _trainer(others: bool = False) -> Any:
    return SimpleNamespace(
        should_stop=False,
        is_global_zero=True,
        current_epoch=0,
        global_step=0,
        num_training_batches=5,
        max_epochs=1000,
        strategy=_Strategy(others),
    )


def _epoch(budget: EpochTimeBudget, trainer: Any, clock: _Clock, seconds: float) -> None:
    budget.on_train_epoch_start(trainer, None)
    clock.now += seconds
    budget.on_train_epoch_end(trainer, None)
    trainer.current_epoch += 1
    trainer.global_step += 10


def test_an_epochs_checkpoint_writes_count_in_its_length() -> None:
    """The checkpoints are written after the budget's epoch-end hook: the time from one epoch's
    start to the next one's is the epoch's length."""
    clock = _Clock()
    budget = EpochTimeBudget(1.0, clock=clock, echo=lambda _: None)  # 60 s
    trainer = _trainer()
    budget.on_fit_start(trainer, None)
    _epoch(budget, trainer, clock, 10)
    clock.now += 15  # last.ckpt and best.ckpt written: 25 s from start to start
    _epoch(budget, trainer, clock, 10)  # 35 s used, longest 25: 60 ≤ 60, go on
    assert budget.longest == 25 and not trainer.should_stop
    clock.now += 15
    _epoch(budget, trainer, clock, 10)  # 60 s used: stop
    assert trainer.should_stop


def test_an_epoch_starts_only_when_the_longest_epoch_still_fits() -> None:
    clock, said = _Clock(), cast(list[str], [])
    budget = EpochTimeBudget(1.0, clock=clock, echo=said.append)  # 60 s
    trainer = _trainer()
    budget.on_fit_start(trainer, None)
    clock.now += 5  # start-up before the first epoch counts too
    _epoch(budget, trainer, clock, 20)  # 25 s used, longest 20: 45 ≤ 60, go on
    assert not trainer.should_stop
    _epoch(budget, trainer, clock, 10)  # 35 s used, longest 20: 55 ≤ 60, go on
    assert not trainer.should_stop
    _epoch(budget, trainer, clock, 12)  # 47 s used, longest 20: 67 > 60, stop
    assert trainer.should_stop and budget.stopped_early
    assert said == [
        "Stopping after epoch 3 (step 20): another epoch (0.3 min) would pass the 1-minute budget; "
        "--resume continues the run"
    ]


def test_the_last_epoch_ends_the_run_without_a_resume_to_announce() -> None:
    """Over budget after the epoch max_epochs ends anyway: "--resume continues the run" would send a
    user (or a lease script) to resume a finished run."""
    clock, said = _Clock(), cast(list[str], [])
    budget = EpochTimeBudget(0.01, clock=clock, echo=said.append)
    trainer = _trainer()
    trainer.max_epochs = 1
    budget.on_fit_start(trainer, None)
    _epoch(budget, trainer, clock, 100)
    assert said == [] and not budget.stopped_early


def test_the_first_epoch_always_runs_and_any_rank_over_budget_stops_all() -> None:
    clock = _Clock()
    budget = EpochTimeBudget(0.01, clock=clock, echo=lambda _: None)
    trainer = _trainer()
    budget.on_fit_start(trainer, None)
    _epoch(budget, trainer, clock, 100)  # longer than the whole budget: it still ran, then stop
    assert trainer.should_stop

    other = EpochTimeBudget(10.0, clock=clock, echo=lambda _: None)
    trainer = _trainer(others=True)
    other.on_fit_start(trainer, None)
    _epoch(other, trainer, clock, 1)  # this rank is well within budget, another rank is not
    assert trainer.should_stop


def test_the_step_limit_stops_at_max_steps_and_before_a_finished_run_steps_again() -> None:
    said: list[str] = []
    limit = StepLimit(5, echo=said.append)
    trainer = _trainer()
    for step in range(1, 5):
        trainer.global_step = step
        limit.on_train_batch_end(trainer, None, None, None, step - 1)
        assert not trainer.should_stop
    trainer.global_step = 5
    limit.on_train_batch_end(trainer, None, None, None, 4)
    assert trainer.should_stop and said == ["Stopping at step 5: trainer.max_steps=5 reached"]
    inside = _trainer()
    inside.num_training_batches, inside.global_step = 8, 5
    limit.on_train_batch_end(inside, None, None, None, 4)  # the fifth batch of eight
    assert inside.should_stop and said[-1].startswith(
        "Stopping at step 5: trainer.max_steps=5 reached, 3 batch(es) before the end of epoch 1: "
        "extending this run"
    )
    # in the last epoch max_epochs allows, a larger max_steps alone extended nothing (exit 0, no step)
    last = _trainer()
    last.num_training_batches, last.global_step, last.current_epoch, last.max_epochs = 8, 5, 3, 4
    limit.on_train_batch_end(last, None, None, None, 4)
    assert "extending this run (--resume with a larger max_steps and trainer.max_epochs above 4)" in said[-1]
    last.should_stop, last.num_training_batches = False, 5
    limit.on_train_batch_end(last, None, None, None, 4)  # its last batch, too
    assert said[-1].endswith(
        "; it has trained its 4 epochs too: to extend it, resume with a larger max_steps and "
        "trainer.max_epochs above 4"
    )
    finished = _trainer()
    finished.global_step = 5
    limit.on_train_start(finished, None)  # a resumed run that already took its steps
    assert finished.should_stop
    with pytest.raises(ValueError, match="positive"):
        StepLimit(0)


def test_the_budget_must_be_positive(tiny_registered: str) -> None:
    with pytest.raises(ValueError, match="positive"):
        EpochTimeBudget(0)
    with pytest.raises(ConfigError, match=r"'trainer\.max_minutes' must be positive"):
        train_config_from_mapping(base_mapping(max_minutes=-1))
    assert train_config_from_mapping(base_mapping(max_minutes=9)).trainer.max_minutes == 9


def _same_weights(straight: Path, resumed: Path, *, steps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both checkpoints after ``steps`` optimiser steps with bit-identical weights; returns them."""
    a, b = torch.load(straight, weights_only=True), torch.load(resumed, weights_only=True)
    assert a["global_step"] == b["global_step"] == steps
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    return a, b


@pytest.mark.slow
def test_a_run_stopped_by_its_budget_resumes_to_the_uninterrupted_result(
    tiny_registered: str, phantom_data: dict, tmp_path: Path
) -> None:
    mapping = base_mapping(max_epochs=3)
    mapping["optim"] = {"lr": 3e-3, "scheduler": "cosine", "warmup_steps": 3}
    said: list[str] = []
    quiet: dict[str, Any] = {"datasets": phantom_data, "echo": said.append}
    straight = train(train_config_from_mapping(mapping), output_dir=tmp_path / "straight", **quiet)

    # a budget no epoch fits in: the first epoch runs, its checkpoint is written, the run stops
    mapping["trainer"]["max_minutes"] = 1e-6
    cut = train(train_config_from_mapping(mapping), output_dir=tmp_path / "cut", **quiet)
    assert torch.load(cut.paths.last, weights_only=True)["global_step"] == 8  # 8 batches per epoch
    assert any(line.startswith("Stopping after epoch 1 (step 8)") for line in said)

    mapping["trainer"]["max_minutes"] = None
    resumed = train(train_config_from_mapping(mapping), output_dir=tmp_path / "cut", resume=True, **quiet)
    a, b = _same_weights(straight.paths.last, resumed.paths.last, steps=24)
    assert a["lr_schedulers"] == b["lr_schedulers"]


@pytest.mark.slow
def test_a_run_bounded_by_max_steps_resumes_exactly(
    tiny_registered: str, phantom_data: dict, tmp_path: Path
) -> None:
    # 8 batches per epoch: 20 steps end inside the third epoch. Given Lightning's own max_steps, the
    # resumed run counted the interrupted epoch twice and stopped at 16 steps with other weights.
    mapping = base_mapping(max_epochs=3, max_steps=20)
    mapping["optim"] = {"lr": 3e-3, "scheduler": "cosine", "warmup_steps": 3}
    said: list[str] = []
    quiet: dict[str, Any] = {"datasets": phantom_data, "echo": said.append}
    config = train_config_from_mapping(mapping)
    straight = train(config, output_dir=tmp_path / "straight", **quiet)
    assert any(
        line.startswith("Stopping at step 20: trainer.max_steps=20 reached, 4 batch(es)") for line in said
    )
    with pytest.raises(_Crash):
        train(config, output_dir=tmp_path / "resumed", callbacks=[_CrashAtEpoch(1)], **quiet)
    resumed = train(config, output_dir=tmp_path / "resumed", resume=True, **quiet)
    a, b = _same_weights(straight.paths.last, resumed.paths.last, steps=20)
    assert a["epoch"] == b["epoch"] == 2
    assert resumed.val_metrics["val_ssim"] == straight.val_metrics["val_ssim"]  # validated at the stop

    # resuming the finished run takes no further step
    again = train(config, output_dir=tmp_path / "resumed", resume=True, **quiet)
    assert torch.load(again.paths.last, weights_only=True)["global_step"] == 20


@pytest.mark.slow
def test_last_checkpoint_is_written_at_unvalidated_epochs_and_resumes_exactly(
    tiny_registered: str, phantom_data: dict, tmp_path: Path
) -> None:
    # validation every second epoch: the checkpoint of epoch 3 (unvalidated) must exist and resume
    mapping = base_mapping(max_epochs=4, check_val_every_n_epoch=2)
    mapping["optim"] = {"lr": 3e-3, "scheduler": "cosine", "warmup_steps": 3}
    quiet: dict[str, Any] = {"datasets": phantom_data, "echo": lambda _: None}
    config = train_config_from_mapping(mapping)
    straight = train(config, output_dir=tmp_path / "straight", **quiet)
    with pytest.raises(_Crash):
        train(config, output_dir=tmp_path / "resumed", callbacks=[_CrashAtEpoch(3)], **quiet)
    interrupted = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert interrupted["global_step"] == 24  # epoch 3's end, which did not validate
    resumed = train(config, output_dir=tmp_path / "resumed", resume=True, **quiet)
    _same_weights(straight.paths.last, resumed.paths.last, steps=32)
