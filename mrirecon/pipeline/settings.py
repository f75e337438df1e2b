"""What the demo runs: its settings, the default and the quick (test-sized) ones, and where outputs go."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mrirecon.errors import ConfigError

__all__ = ["BASELINES", "LEARNED", "DemoPaths", "DemoSettings", "quick_settings"]

#: The learned models the demo can train (``configs/<model>_synthetic.yaml`` each).
LEARNED = ("cirim", "rim", "recurrentvarnet")
#: The classical baselines reconstructed beside them.
BASELINES = ("zero_filled", "sense", "cs_l1wavelet")


@dataclass(frozen=True)
class DemoSettings:
    """The demo's dataset, models and undersampling.

    Attributes:
        volumes: Simulated volumes (patients), split ``split`` into train/val/test.
        slices: Slices per volume.
        size: Image rows (readout).
        width: Image columns (phase encodes); None: square.
        coils: Receive coils.
        seed: Seed of the simulation, the splits and the training.
        anatomy: ``mni`` (the realistic simulator on real brain anatomy) or ``phantom`` (the fast
            procedural phantom, for tests).
        lesion_radius_mm: ``(least, most)`` lesion radius (large enough to measure at this size).
        split: ``(train, val, test)`` fractions.
        pretrained: Shipped pretrained models reconstructed as they are.
        finetune: A pretrained model fine-tuned on the demo's training volumes (None: none).
        finetune_steps: Optimiser steps of that fine-tune.
        models: Learned models trained from scratch, from :data:`LEARNED`.
        baselines: Classical reconstructions, from :data:`BASELINES`.
        mask: Mask type of the retrospective undersampling (training and test).
        acceleration: Acceleration R.
        center_fraction: Fully sampled centre fraction.
        epochs: Training epochs (None: the config's).
        model_overrides: ``(model, "key=value")`` overrides of a model's training config (the quick
            demo's tiny models).
    """

    volumes: int = 10
    slices: int = 4
    size: int = 208
    width: int | None = 192
    coils: int = 8
    seed: int = 0
    anatomy: str = "mni"
    lesion_radius_mm: tuple[float, float] = (2.5, 5.0)
    split: tuple[float, float, float] = (0.6, 0.1, 0.3)
    pretrained: tuple[str, ...] = ("cirim-brain",)
    finetune: str | None = "cirim-brain"
    finetune_steps: int = 24
    models: tuple[str, ...] = ()
    baselines: tuple[str, ...] = BASELINES
    mask: str = "equispaced_fraction"
    acceleration: int = 4
    center_fraction: float = 0.08
    epochs: int | None = None
    model_overrides: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in LEARNED]
        if unknown:
            raise ConfigError(f"the demo trains {', '.join(LEARNED)}, not {', '.join(unknown)}")
        unknown = [m for m in self.baselines if m not in BASELINES]
        if unknown:
            raise ConfigError(f"the demo's baselines are {', '.join(BASELINES)}, not {', '.join(unknown)}")
        if self.anatomy not in ("mni", "phantom"):
            raise ConfigError(f"the demo's anatomy is 'mni' or 'phantom', not {self.anatomy!r}")
        if self.finetune_steps < 1:
            raise ConfigError(f"--finetune-steps must be at least 1, got {self.finetune_steps}")
        if self.volumes < 3:
            raise ConfigError(f"the demo needs at least 3 volumes (train, val, test), got {self.volumes}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")

    def overrides_for(self, model: str) -> list[str]:
        """The ``key=value`` overrides of ``model``'s training config."""
        return [override for name, override in self.model_overrides if name == model]

    def data_key(self) -> dict[str, Any]:
        """The settings the simulated dataset depends on (a change needs a new dataset)."""
        keys = ("volumes", "slices", "size", "width", "coils", "seed", "split", "lesion_radius_mm", "anatomy")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k in keys}


def quick_settings(**changes: Any) -> DemoSettings:
    """Test-sized settings: 5 phantom volumes of 2 slices, 48 × 48, 4 coils, a 2-step fine-tune,
    one epoch of tiny models.

    The fully sampled centre is 16 % (8 lines): ESPIRiT (the CS baseline's coil maps) needs more
    calibration lines than its 6-sample kernel.
    """
    quick = DemoSettings(
        volumes=5,
        slices=2,
        size=48,
        width=None,
        anatomy="phantom",
        lesion_radius_mm=(4.0, 8.0),
        finetune_steps=2,
        models=("cirim",),
        center_fraction=0.16,
        coils=4,
        split=(0.6, 0.2, 0.2),
        epochs=1,
        model_overrides=(
            *(
                ("cirim", o)
                for o in ("model.params.cascades=1", "model.params.time_steps=2", "model.params.channels=4")
            ),
            *(("rim", o) for o in ("model.params.time_steps=2", "model.params.channels=4")),
            *(("recurrentvarnet", o) for o in ("model.params.steps=2", "model.params.hidden_channels=4")),
            *((m, o) for m in LEARNED for o in ("data.batch_size=2", "trainer.log_every_n_steps=1")),
        ),
    )
    return replace(quick, **changes)


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo writes, under one folder."""

    root: Path

    @property
    def settings(self) -> Path:
        return self.root / "demo.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def manifest(self) -> Path:
        return self.data / "manifest.csv"

    def run(self, model: str) -> Path:
        return self.root / "runs" / model

    def recon(self, label: str) -> Path:
        return self.root / "recon" / label

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"

    @property
    def dicom(self) -> Path:
        return self.root / "dicom"

    @property
    def figure(self) -> Path:
        return self.root / "reconstructions.png"

    def read_state(self) -> dict[str, Any]:
        """The record of earlier runs (``demo.json``), empty when there is none."""
        if not self.settings.is_file():
            return {}
        try:
            state = json.loads(self.settings.read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(
                f"cannot read the demo's record: {error}",
                path=self.settings,
                hint="add --fresh to redo every step in this folder, or choose another --output-dir",
            ) from error
        return state if isinstance(state, dict) else {}

    def write_state(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.settings.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.settings)
