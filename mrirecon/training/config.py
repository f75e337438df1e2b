"""The training config: one YAML file → frozen dataclasses, checked before anything runs.

A run is described by :class:`TrainConfig` (sections ``model``, ``data``, ``loss``, ``optim``,
``trainer`` and ``output_dir``). :func:`load_train_config` reads a YAML file, applies
``key.sub=value`` overrides and checks every key and value; the model's own parameters are
checked against the model's config dataclass too, so a wrong key or value fails with a
:class:`~mrirecon.errors.ConfigError` naming the key and the allowed keys or values before a
single batch is loaded. See docs/training.md for every field.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mrirecon.config import apply_overrides, find_config, from_mapping, load_yaml, to_mapping
from mrirecon.errors import ConfigError
from mrirecon.training.data_config import DataSection, MaskSection, SimulationSection, SyntheticSection
from mrirecon.training.model_setup import model_config

__all__ = [
    "LOSS_TERMS",
    "DataSection",
    "LossSection",
    "MaskSection",
    "ModelSection",
    "Normalization",
    "OptimSection",
    "SimulationSection",
    "SyntheticSection",
    "TrainConfig",
    "TrainerSection",
    "Weighting",
    "load_train_config",
    "resumed_run_config",
    "train_config_from_mapping",
]

#: Loss terms that need the lesion labels besides the images (0 for a slice without lesions).
LESION_TERMS = ("lesion_l1", "lesion_contrast")
#: Loss terms that compare an estimate with the measured k-space instead of the target.
DATA_TERMS = ("dc",)
#: DIRECT's high-frequency error norms (mrirecon.training.hfen).
HFEN_TERMS = ("hfen_l1", "hfen_l2", "hfen_l1_norm", "hfen_l2_norm")
#: The image losses a config may combine, by name.
LOSS_TERMS = ("l1", "l2", "ssim", *HFEN_TERMS, *LESION_TERMS, *DATA_TERMS)

#: How the estimates of a recurrent model's steps are weighted in the loss (see LossSection).
Weighting = Literal["logspace", "uniform", "final"]

#: How estimate and target are scaled before the loss (see LossSection).
Normalization = Literal["none", "per_slice_max"]


@dataclass(frozen=True)
class ModelSection:
    """Which reconstructor to train.

    Attributes:
        name: A name in the model registry (``mrirecon.models.registry``).
        preset: A model config file, by name (``cirim_knee``: ``configs/models/cirim_knee.yaml``)
            or path, to start from instead of the model's defaults (the papers' settings); it
            must be a config of model ``name``.
        params: Fields of the model's config dataclass to change on top of that; checked
            against the dataclass, unknown keys are errors.
        init: Start from these weights (fine-tuning): a shipped pretrained name (``cirim-brain``),
            a ``.safetensors``/``.pt`` model file or a training ``.ckpt``. Its config is the base
            the ``params`` change (instead of the defaults or ``preset``); it must be a model
            ``name``, and the params may not change the weights' shapes.
    """

    name: str
    preset: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    init: str | None = None


@dataclass(frozen=True)
class LossSection:
    """The training loss: a weighted sum of image losses, weighted over the model's steps.

    Every term compares the magnitude of an estimate, centre-cropped to the target, with the
    target (both in the normalised scale the network sees).

    Attributes:
        terms: Loss name → weight, names from :data:`LOSS_TERMS` (``ssim`` is ``1 − SSIM`` with
            fastMRI's formulation and each sample's volume maximum as data range; ``lesion_l1``
            the relative L1 error within 3 pixels of the data's labelled lesions, 0 without;
            ``lesion_contrast`` the mean relative error of the lesions' contrast against their
            ring of normal tissue, ``|P − 1|`` of the lesion metric, 0 without; ``dc`` the relative
            data-consistency residual ``‖M F S x − y‖ / ‖y‖`` of the complex, uncropped estimate,
            which ties its phase and its background to the measured samples).
        time_weighting: Over the time steps of a cascade: ``logspace`` (CIRIM: w_t =
            logspace(−1, 0, T), Σ_t w_t·L_t / T), ``uniform`` (RIM: the mean over steps) or
            ``final`` (the last step only).
        cascade_weighting: The same choice over cascades (CIRIM: ``logspace``; RecurrentVarNet:
            ``final`` for both, its single output).
        normalize: ``none`` (compare in the scale the network sees) or ``per_slice_max``
            (ATOMMIC's loss: each estimate's magnitude and the target are divided by their own
            maximum over the slice, and SSIM's data range is 1); the validation scores are
            fastMRI's either way.
    """

    terms: dict[str, float] = field(default_factory=lambda: {"l1": 1.0})
    time_weighting: Weighting = "final"
    cascade_weighting: Weighting = "final"
    normalize: Normalization = "none"

    def __post_init__(self) -> None:
        if not self.terms:
            raise ConfigError(
                "'loss.terms' is empty", hint=f"give weights for some of: {', '.join(LOSS_TERMS)}"
            )
        for name, weight in self.terms.items():
            if name not in LOSS_TERMS:
                raise ConfigError(
                    f"'loss.terms' has unknown loss {name!r}", hint=f"allowed: {', '.join(LOSS_TERMS)}"
                )
            if not (math.isfinite(weight) and weight >= 0):
                raise ConfigError(f"'loss.terms.{name}' must be a finite weight of 0 or more, got {weight}")
        image_terms = [n for n, w in self.terms.items() if w > 0 and n not in LESION_TERMS]
        if not image_terms:
            raise ConfigError(
                "'loss.terms' weighs no term that every slice has: "
                + ("every weight is 0" if not any(self.terms.values()) else "only the lesion terms")
                + " (a slice without lesions would give no gradient)",
                hint="give an image term a weight, e.g. loss.terms.l1=1",
            )


@dataclass(frozen=True)
class OptimSection:
    """Optimiser and learning-rate schedule (stepped once per optimiser step).

    Attributes:
        optimizer: ``adam`` or ``adamw``.
        lr: Peak learning rate.
        weight_decay: Weight decay (decoupled for ``adamw``).
        betas: Adam's β₁, β₂.
        scheduler: ``constant``, ``step`` (× ``gamma`` every ``step_size`` steps) or ``cosine``
            (to ``min_lr_factor``·lr at the last step).
        step_size: Optimiser steps between decays of the ``step`` schedule.
        gamma: Decay factor of the ``step`` schedule.
        min_lr_factor: Final learning rate of the ``cosine`` schedule, as a fraction of ``lr``.
        warmup_steps: Linear warm-up from ``warmup_start_factor``·lr over this many steps (0: none).
        warmup_start_factor: Learning-rate fraction at the first step of the warm-up.
        gradient_clip_val: Clip gradients to this norm (or value); ``null``: no clipping.
        gradient_clip_algorithm: ``norm`` or ``value``.
        accumulate_grad_batches: Batches whose gradients are summed per optimiser step.
    """

    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    scheduler: Literal["constant", "step", "cosine"] = "constant"
    step_size: int = 1000
    gamma: float = 0.1
    min_lr_factor: float = 0.0
    warmup_steps: int = 0
    warmup_start_factor: float = 0.1
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: Literal["norm", "value"] = "norm"
    accumulate_grad_batches: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"'optim.lr' must be a positive number, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"'optim.weight_decay' must be 0 or more, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"'optim.betas' must be two numbers in [0, 1), got {list(self.betas)}")
        if not 0 < self.gamma <= 1:
            raise ConfigError(
                f"'optim.gamma' (the step schedule's decay) must be in (0, 1], got {self.gamma}"
            )
        if self.step_size < 1:
            raise ConfigError(f"'optim.step_size' must be at least 1, got {self.step_size}")
        if self.warmup_steps < 0:
            raise ConfigError(f"'optim.warmup_steps' must be 0 or more, got {self.warmup_steps}")
        if not 0 < self.warmup_start_factor <= 1:
            raise ConfigError(
                f"'optim.warmup_start_factor' must be in (0, 1], got {self.warmup_start_factor}"
            )
        if not 0 <= self.min_lr_factor <= 1:
            raise ConfigError(f"'optim.min_lr_factor' must be in [0, 1], got {self.min_lr_factor}")
        if self.accumulate_grad_batches < 1:
            raise ConfigError(
                f"'optim.accumulate_grad_batches' must be at least 1, got {self.accumulate_grad_batches}"
            )
        if self.gradient_clip_val is not None and not self.gradient_clip_val > 0:
            raise ConfigError(f"'optim.gradient_clip_val' must be positive, got {self.gradient_clip_val}")


@dataclass(frozen=True)
class TrainerSection:
    """The Lightning trainer: devices, precision, epochs, seeding, logging.

    Attributes:
        max_epochs: Epochs to train.
        max_steps: Stop after this many optimiser steps (−1: no limit).
        max_minutes: A wall-clock budget per start or resume: no epoch starts that would end past it
            (by the longest epoch so far), so the run stops on an epoch's checkpoint and ``--resume``
            continues it exactly (``null``: no budget).
        accelerator: ``auto``, ``cpu``, ``gpu`` or ``cuda`` (the same as ``gpu``).
        devices: Devices per node (an integer, or ``auto``).
        num_nodes: Nodes (multi-node DDP; see docs/training.md for SLURM and torchrun).
        strategy: ``auto`` or ``ddp`` (``ddp_spawn`` is not offered: its processes' test scores
            and best score would not reach the launching one).
        precision: ``auto`` (``bf16-mixed`` on GPUs that support it, else ``16-mixed``; ``32`` on
            CPU), ``32``, ``bf16-mixed`` or ``16-mixed``. CNNs run under autocast; the FFTs and
            data consistency stay complex64 (see docs/training.md).
        gradient_checkpointing: Recompute activations per time step / cascade in the backward pass.
        check_val_every_n_epoch: Validate every this many epochs.
        limit_train_batches: Fraction (float) or number (int) of training batches per epoch.
        limit_val_batches: The same for validation.
        log_every_n_steps: Training-loss logging interval.
        progress_bar: Show a progress bar.
        seed: Seed of everything (``seed_everything``): weights, data order, training masks.
        deterministic: Ask PyTorch for deterministic algorithms (slower on GPU).
        threads: CPU threads for torch (``null``: torch's default).
        fast_dev_run: Run one training and one validation batch only (a smoke test).
    """

    max_epochs: int = 10
    max_steps: int = -1
    max_minutes: float | None = None
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = "auto"
    devices: int | Literal["auto"] = "auto"
    num_nodes: int = 1
    strategy: Literal["auto", "ddp"] = "auto"
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "auto"
    gradient_checkpointing: bool = False
    check_val_every_n_epoch: int = 1
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    log_every_n_steps: int = 10
    progress_bar: bool = True
    seed: int = 42
    deterministic: bool = False
    threads: int | None = None
    fast_dev_run: bool = False

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ConfigError(f"'trainer.max_epochs' must be at least 1, got {self.max_epochs}")
        if self.max_steps != -1 and self.max_steps < 1:
            raise ConfigError(
                f"'trainer.max_steps' must be at least 1, or -1 for no limit, got {self.max_steps}"
            )
        for key in ("check_val_every_n_epoch", "log_every_n_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"'trainer.{key}' must be at least 1, got {getattr(self, key)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(
                f"'trainer.threads' must be at least 1, or null for torch's default, got {self.threads}"
            )
        if self.check_val_every_n_epoch > self.max_epochs:
            raise ConfigError(
                f"'trainer.check_val_every_n_epoch' ({self.check_val_every_n_epoch}) is more than "
                f"'trainer.max_epochs' ({self.max_epochs}): the run would never validate (no best "
                "checkpoint, no model.pt)",
                hint=f"set trainer.check_val_every_n_epoch to at most {self.max_epochs}",
            )
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"'trainer.max_minutes' must be positive or null, got {self.max_minutes}")
        if isinstance(self.devices, int) and self.devices < 1:
            raise ConfigError(f"'trainer.devices' must be at least 1 or 'auto', got {self.devices}")
        if self.num_nodes < 1:
            raise ConfigError(f"'trainer.num_nodes' must be at least 1, got {self.num_nodes}")
        for key in ("limit_train_batches", "limit_val_batches"):
            value = getattr(self, key)
            if value <= 0 or (isinstance(value, float) and value > 1):
                raise ConfigError(
                    f"'trainer.{key}' must be a fraction in (0, 1] or a number of batches, got {value}"
                )


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs.

    Attributes:
        model: The reconstructor and its parameters.
        data: Sources, undersampling, batching.
        loss: Loss terms and step weighting.
        optim: Optimiser and schedule.
        trainer: Devices, precision, epochs, seeding, logging.
        output_dir: Where checkpoints, logs and the resolved config go (``--output-dir`` wins).
    """

    model: ModelSection
    data: DataSection
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)
    output_dir: str = "runs/train"

    def to_mapping(self) -> dict[str, Any]:
        """The resolved config as plain YAML-safe data (what ``config.yaml`` and checkpoints hold)."""
        mapping: dict[str, Any] = to_mapping(self)
        return mapping


def train_config_from_mapping(
    data: Mapping[str, Any],
    *,
    source: str | os.PathLike[str] | None = None,
    resume_dir: str | os.PathLike[str] | None = None,
) -> TrainConfig:
    """Build and check a :class:`TrainConfig`, including the model's parameters.

    ``resume_dir``: the config resumes the run in this folder (``""``: its ``output_dir``); a
    ``model.init`` it started from is then not read again when that run has a checkpoint
    (:func:`~mrirecon.training.model_setup.model_config`).

    Raises:
        ConfigError: naming the key and the allowed keys or values (and ``source``, if given).
    """
    try:
        config = from_mapping(TrainConfig, data)
        resumed = None
        if resume_dir is not None:
            from mrirecon.training.run_folder import read_resumed, run_paths

            last = run_paths(os.fspath(resume_dir) or config.output_dir).last
            resumed = read_resumed(last).record if last.is_file() else None
        model = model_config(config, resumed=resumed)  # checks model.name, preset and params
        centered = getattr(model, "fft_centered", None)
        if config.data.centered is not None and centered is not None and centered != config.data.centered:
            raise ConfigError(
                f"the model's FFT convention (fft_centered: {centered}) differs from the data's "
                f"('data.centered': {config.data.centered})",
                hint="set model.params.fft_centered to the data's convention (false for Calgary-Campinas)",
            )
    except ConfigError as error:
        if source is not None and error.path is None:
            raise ConfigError(error.message, path=source, hint=error.hint) from error
        raise
    return config


def load_train_config(
    path: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    resume_dir: str | os.PathLike[str] | None = None,
) -> TrainConfig:
    """Read a training config from YAML and apply ``key.sub=value`` overrides.

    Args:
        path: The YAML file, or a config's name (``cirim_synthetic``, ``pretrained/cirim_brain``)
            looked up in ``$MRIRECON_CONFIGS``, ``./configs`` and the configs installed with mrirecon.
        overrides: Strings like ``optim.lr=3e-4`` or ``trainer.max_epochs=2``.
        resume_dir: The config resumes the run in this folder (``""``: the config's
            ``output_dir``): see :func:`train_config_from_mapping`.

    Returns:
        The checked config.

    Raises:
        ConfigError: for a missing or malformed file, an unknown key or a bad value, naming the
            file, the key and the allowed keys or values.
    """
    path = find_config(path, what="training config")
    data = apply_overrides(load_yaml(path), overrides)
    return train_config_from_mapping(data, source=path, resume_dir=resume_dir)


def resumed_run_config(output_dir: str | os.PathLike[str], overrides: Sequence[str] = ()) -> TrainConfig:
    """The config of the run in ``output_dir`` to resume, with ``overrides`` applied: its
    ``checkpoints/config.yaml`` (the resolved config it was started with), or, when that file is
    gone, the training config its ``last.ckpt`` records.

    Raises:
        ConfigError: neither is there, or the result does not check.
    """
    from mrirecon.training.run_folder import read_resumed, run_paths

    paths = run_paths(output_dir)
    if paths.config.is_file():
        return load_train_config(paths.config, overrides, resume_dir=output_dir)
    if not paths.last.is_file():
        raise ConfigError(
            f"nothing to resume: no {paths.last}",
            path=output_dir,
            hint="give the --output-dir of a run `mrirecon train` wrote, or pass --config",
        )
    recorded = read_resumed(paths.last).training_config
    if recorded is None:
        raise ConfigError(
            f"the run's {paths.config.name} is missing and its checkpoint records no training config",
            path=paths.last,
            hint="pass the run's config with --config",
        )
    return train_config_from_mapping(
        apply_overrides(dict(recorded), overrides), source=paths.last, resume_dir=output_dir
    )
