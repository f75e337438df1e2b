"""``mrirecon train`` as a function: check everything, then fit (or resume), then test and export.

Output folder of a run::

    OUTPUT_DIR/
      checkpoints/config.yaml   the resolved config (every default filled in)
      checkpoints/best.ckpt     best validation SSIM so far
      checkpoints/last.ckpt     end of the last validated epoch (what --resume continues)
      logs/csv/version_N/metrics.csv     always; one version per start or resume
      logs/tensorboard/version_N/        when tensorboard (or tensorboardX) is installed
      model.pt                  the best model as a plain payload (what inference loads)
      test_metrics.csv          per-volume test scores, when the config has test data

Everything that can be checked is checked before the trainer starts: the config (when it was
read), the output folder against ``--resume``, the data sources, the model, the precision.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mrirecon.errors import ConfigError, Notice
from mrirecon.runtime import interruptible, lightning_leaves_sigterm, stoppable
from mrirecon.training.config import TrainConfig, TrainerSection
from mrirecon.training.model_setup import model_config
from mrirecon.training.preflight import (
    check_batches,
    check_coil_maps,
    check_resumable,
    check_split_sizes,
    check_volumes,
)
from mrirecon.training.run_folder import (
    Resumed,
    RunPaths,
    check_output,
    read_resumed,
    run_paths,
    say_if_data_changed,
    write_config,
    write_test_metrics,
)

__all__ = ["RunPaths", "TrainResult", "optimizer_steps", "resolve_precision", "run_paths", "train"]

#: What to lower when a DataLoader worker is killed (most often for memory).
WORKER_HINT = (
    "lower data.num_workers or data.batch_size; in Docker, give the container more --shm-size; "
    "--resume continues the run from its last checkpoint"
)


@dataclass(frozen=True)
class TrainResult:
    """What a run produced.

    Attributes:
        paths: The run's files.
        best_val_ssim: The best validation SSIM (``None`` without validation).
        val_metrics: The last validation's means over volumes (``val_ssim``, ``val_ssim_zero_filled``...).
        test_metrics: The test means (empty without test data).
        is_global_zero: Whether this process is rank 0 (the one that reports, under DDP).
    """

    paths: RunPaths
    best_val_ssim: float | None
    val_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    is_global_zero: bool = True


def resolve_precision(trainer: TrainerSection, on_gpu: bool) -> str:
    """Lightning's precision string for the config.

    ``auto`` is ``bf16-mixed`` on GPUs with bfloat16 (its float32 exponent range holds k-space
    magnitudes without a loss scaler), ``16-mixed`` on older GPUs and ``32-true`` on CPU (CPU
    autocast makes these models slower, not faster). Under autocast only the CNNs run in half
    precision: complex tensors are never autocast and the physics layer turns half-precision CNN
    outputs back into complex64, so FFTs and data consistency stay in full precision.

    Raises:
        ConfigError: for ``16-mixed`` without a GPU.
    """
    import torch

    precision = trainer.precision
    if precision == "auto":
        if on_gpu:
            return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        return "32-true"
    if precision == "16-mixed" and not on_gpu:
        raise ConfigError(
            "'trainer.precision' 16-mixed needs a GPU", hint="use bf16-mixed or 32 on the CPU, or auto"
        )
    return "32-true" if precision == "32" else precision


def _uses_gpu(trainer: TrainerSection) -> bool:
    import torch

    if trainer.accelerator == "cpu":
        return False
    available = torch.cuda.is_available()
    if trainer.accelerator in ("gpu", "cuda") and not available:
        raise ConfigError(
            f"'trainer.accelerator' is {trainer.accelerator!r} but no CUDA device is available",
            hint="use trainer.accelerator=cpu or auto",
        )
    return available


def _loggers(paths: RunPaths) -> list[Any]:
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    loggers: list[Any] = [CSVLogger(paths.logs, name="csv")]
    with contextlib.suppress(ModuleNotFoundError):  # neither tensorboard nor tensorboardX: CSV only
        loggers.append(TensorBoardLogger(paths.logs, name="tensorboard", default_hp_metric=False))
    return loggers


def _scalars(metrics: Mapping[str, Any], prefix: str) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if key.startswith(prefix):
            number = float(value)
            if not math.isnan(number):
                out[key] = number
    return out


def optimizer_steps(
    items: int,
    *,
    world_size: int,
    batch_size: int,
    accumulate: int,
    limit_batches: int | float,
    max_epochs: int,
    max_steps: int,
) -> int:
    """Optimiser steps of a whole run, as Lightning will take them.

    Each rank sees ``ceil(items / world_size)`` items (the training sampler pads its shards), in
    ``ceil(· / batch_size)`` batches, limited by ``limit_batches`` (a fraction or a count); an
    optimiser step takes ``accumulate`` batches (the last, partial group of an epoch steps too).
    """
    batches = math.ceil(math.ceil(items / world_size) / batch_size)
    if isinstance(limit_batches, float):
        batches = int(batches * limit_batches)
    else:
        batches = min(batches, limit_batches)
    steps = math.ceil(batches / accumulate) * max_epochs
    return min(steps, max_steps) if max_steps > 0 else steps


@contextlib.contextmanager
def _quiet_lightning() -> Any:
    """Silence Lightning warnings that say nothing to a user of mrirecon."""
    with warnings.catch_warnings():
        # the run folder holds config.yaml beside the checkpoints, and resumed runs their checkpoints
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        # Lightning 2.6 on torch 2.13 warns about its own use of torch's pytree
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        # under DDP: every rank gathers every volume's scores and logs the same means (module._finish)
        warnings.filterwarnings("ignore", message=r"It is recommended to use .* sync_dist=True")
        yield


def _build_trainer(
    config: TrainConfig,
    paths: RunPaths,
    *,
    on_gpu: bool,
    precision: str,
    callbacks: Sequence[Any],
    resume: bool,
) -> Any:
    """The Lightning trainer for the config (samplers are the data module's own)."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import LearningRateMonitor

    tcfg = config.trainer
    trainer = pl.Trainer(
        default_root_dir=paths.root,
        accelerator="gpu" if on_gpu else "cpu",
        devices=tcfg.devices,
        num_nodes=tcfg.num_nodes,
        strategy=tcfg.strategy,
        precision=precision,  # type: ignore[arg-type]
        max_epochs=tcfg.max_epochs,
        # max_steps: a callback's (mrirecon.training.stopping); fast_dev_run ignores it anyway
        max_steps=-1,
        gradient_clip_val=config.optim.gradient_clip_val,
        gradient_clip_algorithm=config.optim.gradient_clip_algorithm,
        accumulate_grad_batches=config.optim.accumulate_grad_batches,
        check_val_every_n_epoch=tcfg.check_val_every_n_epoch,
        limit_train_batches=tcfg.limit_train_batches,
        limit_val_batches=tcfg.limit_val_batches,
        log_every_n_steps=tcfg.log_every_n_steps,
        enable_progress_bar=tcfg.progress_bar,
        enable_model_summary=False,
        deterministic=tcfg.deterministic,
        fast_dev_run=tcfg.fast_dev_run,
        logger=_loggers(paths),
        callbacks=[LearningRateMonitor(logging_interval="step"), *callbacks],
        use_distributed_sampler=False,
        num_sanity_val_steps=0 if resume else 1,
    )
    lightning_leaves_sigterm(trainer)  # SIGTERM stops the run as Ctrl-C does (train's interruptible block)
    return trainer


def train(
    config: TrainConfig,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    datasets: Mapping[str, Any] | None = None,
    callbacks: Sequence[Any] = (),
    echo: Callable[[str], object] = print,
) -> TrainResult:
    """Train the configured model; with ``resume``, continue the run in ``output_dir`` exactly.

    Args:
        config: The checked training config.
        output_dir: The run folder (default ``config.output_dir``).
        resume: Continue from ``checkpoints/last.ckpt`` of ``output_dir``.
        datasets: Ready-made datasets by split (``train``, ``val``, ``test``) instead of the
            config's sources (tests, notebooks); then no manifest checksum is recorded.
        callbacks: Extra Lightning callbacks.
        echo: Where progress messages go.

    Returns:
        The run's paths and final metrics.

    Raises:
        ConfigError: for anything wrong in the config, the data sources or the output folder,
            before training starts.
    """
    import pytorch_lightning as pl

    from mrirecon.models.registry import get_entry, parameter_count
    from mrirecon.runtime import configure_threads
    from mrirecon.training.checkpoint_callbacks import checkpoint_callbacks
    from mrirecon.training.datamodule import ReconDataModule
    from mrirecon.training.module import ReconModule
    from mrirecon.training.sources import (
        data_convention,
        launched_rank,
    )
    from mrirecon.training.stopping import stopping_callbacks

    paths = run_paths(output_dir if output_dir is not None else config.output_dir)
    # the folder the run writes, as its config.yaml, checkpoints and model.pt record it (a recipe's
    # output_dir would send a rerun of that config.yaml elsewhere)
    config = dataclasses.replace(config, output_dir=os.fspath(paths.root))
    tcfg = config.trainer
    resumed = read_resumed(paths.last) if resume and paths.last.is_file() else None  # read once
    model_cfg = model_config(config, resumed=None if resumed is None else resumed.record)
    if not getattr(get_entry(config.model.name).model_class, "trainable", True):
        raise ConfigError(
            f"model '{config.model.name}' has nothing to train",
            hint="classical baselines need no training: reconstruct with them directly",
        )
    # before fit Lightning knows no ranks yet (its DDP children rerun this function from the start)
    rank_zero = launched_rank() == 0
    say = echo if rank_zero else (lambda _message: None)
    if resume and tcfg.fast_dev_run:
        raise ConfigError(
            "trainer.fast_dev_run checks a configuration with one batch of a new run; it does not resume one",
            path=paths.root,
            hint="leave out --resume (fast_dev_run writes no checkpoint), or trainer.fast_dev_run",
        )
    resumed_record = None if resumed is None else resumed.record
    changed = check_output(
        paths,
        config,
        resume,
        None if resumed is None else resumed.training_config,
        lambda c: model_config(c, resumed=resumed_record),
    )
    on_gpu = _uses_gpu(tcfg)
    precision = resolve_precision(tcfg, on_gpu)
    configure_threads(tcfg.threads)

    datasets, checksum = _datasets(config, datasets, resumed, say)
    centered = data_convention(config.data, datasets, getattr(model_cfg, "fft_centered", None))
    check_volumes(config, datasets, say)

    pl.seed_everything(tcfg.seed, workers=True, verbose=False)
    # what the checkpoints and model.pt record beside the model (inference reads data.coil_maps)
    record = {"manifest_sha256": checksum, "training_config": config.to_mapping()}
    module = ReconModule(
        config.model.name,
        model_cfg,
        loss=config.loss,
        optim=config.optim,
        centered=centered,
        gradient_checkpointing=tcfg.gradient_checkpointing,
        record=record,
    )
    if config.model.init is not None and not resume:
        _start_from_init(config, module.model, say, rank_zero)
    if parameter_count(module.model) == 0:
        raise ConfigError(f"model '{config.model.name}' has no trainable parameters with this config")
    check_coil_maps(config, module.model)
    datamodule = ReconDataModule(
        datasets,
        batch_size=config.data.batch_size,
        val_batch_size=config.data.val_batch_size,
        num_workers=config.data.num_workers,
        pin_memory=config.data.pin_memory,
        seed=tcfg.seed,
    )
    best_checkpoint, last_checkpoint = checkpoint_callbacks(paths)
    trainer = _build_trainer(
        config,
        paths,
        on_gpu=on_gpu,
        precision=precision,
        callbacks=[
            # fast_dev_run: no checkpoint at all (Lightning's on_train_end would still write last.ckpt)
            *([] if tcfg.fast_dev_run else [best_checkpoint, last_checkpoint]),
            *stopping_callbacks(tcfg, say),  # max_steps and max_minutes
            *callbacks,
        ],
        resume=resume,
    )
    check_split_sizes(datasets, trainer.world_size)
    check_batches(config, len(datasets["train"]), trainer.world_size, len(datasets.get("val", ())))
    if resumed is not None:
        check_resumable(resumed, world_size=trainer.world_size, max_epochs=tcfg.max_epochs)
    if changed:  # announced once every check has passed (not before a refusal)
        say(f"Resuming with changed settings: {', '.join(changed)}")
        length = any(c.startswith(("trainer.max_epochs ", "trainer.max_steps ")) for c in changed)
        if length and config.optim.scheduler == "cosine":  # its state comes back from last.ckpt
            say("The cosine schedule keeps the length it was counted for when the run started")
    record["world_size"] = module.record["world_size"] = trainer.world_size
    module.total_steps = optimizer_steps(
        len(datasets["train"]),
        world_size=trainer.world_size,
        batch_size=config.data.batch_size,
        accumulate=config.optim.accumulate_grad_batches,
        limit_batches=tcfg.limit_train_batches,
        max_epochs=tcfg.max_epochs,
        max_steps=tcfg.max_steps,
    )
    if rank_zero:
        echo(
            f"Training {config.model.name} ({parameter_count(module.model):,} parameters) on "
            f"{len(datasets['train'])} training and {len(datasets['val'])} validation slices; "
            f"{trainer.world_size} process(es), precision {precision}; output {paths.root}"
        )
        if not tcfg.fast_dev_run:
            write_config(paths, config)
    distributed = trainer.world_size > 1
    with _quiet_lightning(), interruptible():
        stoppable(
            lambda: trainer.fit(
                module, datamodule=datamodule, ckpt_path=paths.last if resume else None, weights_only=True
            ),
            worker_hint=WORKER_HINT,
            distributed=distributed,
        )
    if module.fit_global_rank is not None:
        rank_zero = module.fit_global_rank == 0
    val_metrics = _scalars(trainer.callback_metrics, "val_")

    best = best_checkpoint.best_model_score
    best_ssim = float(best) if best is not None else None
    test_metrics: dict[str, float] = {}
    has_best = not tcfg.fast_dev_run and paths.best.is_file()
    if "test" in datasets and len(datasets["test"]) > 0:
        with _quiet_lightning(), interruptible():
            stoppable(
                lambda: trainer.test(
                    module,
                    datamodule=datamodule,
                    ckpt_path=str(paths.best) if has_best else None,
                    weights_only=True,
                ),
                worker_hint=WORKER_HINT,
                distributed=distributed,
            )
        test_metrics = _scalars(trainer.callback_metrics, "test_")
        if rank_zero and not tcfg.fast_dev_run:
            write_test_metrics(paths, module.volume_results.get("test", []))
    if rank_zero and has_best:
        from mrirecon.models.checkpoints import load_checkpoint_model
        from mrirecon.models.io import save_model

        name, best_model = load_checkpoint_model(paths.best)
        save_model(paths.model, name, model_cfg, best_model, record=record)
    return TrainResult(
        paths=paths,
        best_val_ssim=best_ssim,
        val_metrics=val_metrics,
        test_metrics=test_metrics,
        is_global_zero=rank_zero,
    )


def _datasets(
    config: TrainConfig,
    given: Mapping[str, Any] | None,
    resumed: Resumed | None,
    say: Callable[[str], object],
) -> tuple[Mapping[str, Any], str | None]:
    """The datasets by split (``given``, or the config's sources, simulated first when they need
    it) and the training data's checksum (None for given datasets); a resumed run (``resumed``)
    says when its data changed.

    Raises:
        ConfigError: no train or val slices.
    """
    from mrirecon.training.sources import build_datasets, data_checksum, ensure_synthetic

    checksum = None
    datasets = given
    if datasets is None:
        ensure_synthetic(config.data, say)
        datasets = build_datasets(config.data)
        checksum = data_checksum(config.data)
        if "test" not in datasets:
            say("No test set (set data.test to score the best model on held-out data)")
        if resumed is not None and checksum is not None:
            say_if_data_changed(resumed, checksum, say)
    for split in ("train", "val"):
        if split not in datasets or len(datasets[split]) == 0:
            raise ConfigError(f"the {split} data hold no slices", hint=f"check data.{split} or data.manifest")
    return datasets, checksum


def _start_from_init(config: TrainConfig, model: Any, say: Callable[[str], object], rank_zero: bool) -> None:
    """Load ``model.init``'s weights into ``model`` and say so (and, once, when they learned from
    other coil maps)."""
    from mrirecon.training.model_setup import load_initial_weights

    load_initial_weights(config.model, model)
    say(f"Starting from the weights of {config.model.init}")
    if rank_zero:
        _say_other_coil_maps(config, model)


def _say_other_coil_maps(config: TrainConfig, model: Any) -> None:
    """A notice when ``model.init`` learned from other coil maps than this run gives it (a model
    trained on ACS maps, fine-tuned on ESPIRiT's: it starts from inputs it never saw, and inference
    refuses the same mismatch)."""
    from mrirecon.training.model_setup import initial_coil_maps

    assert config.model.init is not None
    trained = initial_coil_maps(config.model)
    if trained is not None and trained != config.data.coil_maps and model.needs_coil_maps():
        warnings.warn(
            Notice(
                f"model.init {config.model.init} learned from {trained} coil maps and this run gives it "
                f"{config.data.coil_maps} maps, inputs unlike those it learned from (its first "
                f"validation scores may fall below zero-filled); data.coil_maps={trained} keeps them"
            ),
            stacklevel=2,
        )
