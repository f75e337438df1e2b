"""When a training run stops: after ``trainer.max_steps`` optimiser steps, or within a wall-clock
budget at an epoch boundary (``trainer.max_minutes``).

:class:`StepLimit` stops the run at ``max_steps`` in place of Lightning's own ``max_steps``. Given
``max_steps``, Lightning treats training as iteration-based and resumes a checkpoint written at the
end of an epoch (where mrirecon writes ``last.ckpt``) as if that epoch's end had not run: it runs
it again and counts the epoch twice, so the resumed run's epochs, and with them the seeded data order
and masks, are one off from the uninterrupted run's, and a run bounded by ``max_epochs`` as well
loses an epoch (Lightning 2.6). Stopping by a callback keeps Lightning's epoch-based resume, which is
exact (tests/training/test_stopping.py).

Lightning's own ``max_time`` stops in the middle of an epoch, where no ``last.ckpt`` is written and
the run cannot be resumed exactly (docs/training.md, "Runs you can trust"). :class:`EpochTimeBudget`
instead lets an epoch start only when the longest epoch so far (training, validation and the
checkpoint) still fits in what is left of the budget, so the run stops on a checkpoint that
``--resume`` continues exactly. It is meant for leases of fixed length (a GPU lent for minutes): the
schedule is the config's (``max_steps``), and a run cut short by the budget resumes where it stopped.
The first epoch always runs; the clock starts when fitting starts (so each start or resume gets the
whole budget).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pytorch_lightning.callbacks import Callback

from mrirecon.training.config import TrainerSection


def stopping_callbacks(trainer: TrainerSection, echo: Callable[[str], object]) -> list[Callback]:
    """The callbacks that end a run of this trainer config (none for ``fast_dev_run``)."""
    if trainer.fast_dev_run:
        return []
    callbacks: list[Callback] = []
    if trainer.max_steps > 0:
        callbacks.append(StepLimit(trainer.max_steps, echo=echo))
    if trainer.max_minutes is not None:
        callbacks.append(EpochTimeBudget(trainer.max_minutes, echo=echo))
    return callbacks


class StepLimit(Callback):
    """Stop training once ``max_steps`` optimiser steps are taken (a resumed finished run takes none).

    Args:
        max_steps: The limit (> 0).
        echo: Where the stop is announced (rank zero only).
    """

    def __init__(self, max_steps: int, *, echo: Callable[[str], object] = print) -> None:
        if max_steps < 1:
            raise ValueError(f"the step limit must be positive, got {max_steps}")
        self.max_steps = max_steps
        self.echo = echo

    def _check(self, trainer: Any, batches_left: int = 0) -> None:
        if trainer.global_step < self.max_steps or trainer.should_stop:
            return
        trainer.should_stop = True
        if trainer.is_global_zero:
            message = f"Stopping at step {trainer.global_step}: trainer.max_steps={self.max_steps} reached"
            epochs = trainer.max_epochs
            last = epochs is not None and epochs >= 0 and trainer.current_epoch + 1 >= epochs
            larger = "a larger max_steps" + (f" and trainer.max_epochs above {epochs}" if last else "")
            if batches_left > 0:  # last.ckpt then holds an unfinished epoch
                message += (
                    f", {batches_left} batch(es) before the end of epoch {trainer.current_epoch + 1}: "
                    f"extending this run (--resume with {larger}) goes on with the next epoch, "
                    "so it will not equal a run that went straight to the larger max_steps"
                )
            elif last:  # the run has used its epochs too: max_steps alone extends nothing
                message += f"; it has trained its {epochs} epochs too: to extend it, resume with {larger}"
            self.echo(message)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._check(trainer)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        total = trainer.num_training_batches
        left = int(total) - batch_idx - 1 if total != float("inf") else 0
        self._check(trainer, left)


class EpochTimeBudget(Callback):
    """Stop training after the last epoch that ends within ``minutes`` of the start of fitting.

    Args:
        minutes: The budget (> 0).
        clock: Seconds, monotonic (tests pass a fake one).
        echo: Where the stop is announced (rank zero only).
    """

    def __init__(
        self,
        minutes: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        echo: Callable[[str], object] = print,
    ) -> None:
        if not minutes > 0:
            raise ValueError(f"the time budget must be positive, got {minutes} minutes")
        self.budget = 60.0 * minutes
        self.clock = clock
        self.echo = echo
        self.started: float | None = None
        self.epoch_started: float | None = None
        self.longest = 0.0
        self.stopped_early = False

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.started = self.clock()

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        now = self.clock()
        if self.epoch_started is not None:  # start to start: the last epoch's checkpoint writes included
            self.longest = max(self.longest, now - self.epoch_started)
        self.epoch_started = now

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.started is None or self.epoch_started is None:
            return
        now = self.clock()
        self.longest = max(self.longest, now - self.epoch_started)
        over = now - self.started + self.longest > self.budget
        # every rank takes part in the reduction, so that all of them stop after the same epoch
        over = bool(trainer.strategy.reduce_boolean_decision(over, all=False))
        max_epochs = getattr(trainer, "max_epochs", None)
        last = max_epochs is not None and max_epochs > 0 and trainer.current_epoch + 1 >= max_epochs
        if not over or trainer.should_stop or last:  # the last epoch: the run ends anyway, nothing to resume
            return
        trainer.should_stop = True
        self.stopped_early = True
        if trainer.is_global_zero:
            self.echo(
                f"Stopping after epoch {trainer.current_epoch + 1} (step {trainer.global_step}): another "
                f"epoch ({self.longest / 60:.1f} min) would pass the {self.budget / 60:g}-minute budget; "
                "--resume continues the run"
            )
