"""The ``data`` section of a training config: where the slices come from (files, a manifest, a
simulated phantom set, simulation on the fly), how they are undersampled and which coil maps they
get. Re-exported by :mod:`mrirecon.training.config`, whose :class:`TrainConfig` holds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mrirecon.data.realistic import RealisticOptions
from mrirecon.errors import ConfigError

__all__ = ["DataSection", "MaskSection", "SimulationSection", "SyntheticSection"]


def _number_or_text(value: Any) -> Any:
    """``value`` as a float when it is a text that reads as one (``"1e-3"``), else unchanged."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


@dataclass(frozen=True)
class MaskSection:
    """The undersampling of the training data (``mrirecon.masks.create_mask_func``).

    Attributes:
        type: A mask type of ``mrirecon.masks.MASK_TYPES``.
        center_fractions: Fully sampled centre fraction per acceleration (the centre block of the
            Gaussian masks too; their density's width is ``options.fwhm``).
        accelerations: Accelerations; one is drawn per slice in training.
        options: Options of the mask type (``fwhm`` of the Gaussian masks; ``crop_corner``,
            ``tol`` of the Poisson-disc mask).
    """

    type: str = "equispaced_fraction"
    center_fractions: tuple[float, ...] = (0.08,)
    accelerations: tuple[float, ...] = (4.0,)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from mrirecon.masks import MASK_TYPES, create_mask_func

        if self.type not in MASK_TYPES:
            raise ConfigError(
                f"'data.mask.type' must be one of {', '.join(repr(k) for k in MASK_TYPES)}; got {self.type!r}"
            )
        if len(self.center_fractions) != len(self.accelerations):
            raise ConfigError(
                "'data.mask.center_fractions' and 'data.mask.accelerations' must have the same length, "
                f"got {len(self.center_fractions)} and {len(self.accelerations)}"
            )
        # YAML 1.1 reads 1e-3 (no dot) as a string: a number written so is the number
        options: dict[str, Any] = {key: _number_or_text(value) for key, value in self.options.items()}
        object.__setattr__(self, "options", options)
        try:  # the mask function checks its own values and options (cheap: nothing is sampled)
            create_mask_func(self.type, self.center_fractions, self.accelerations, **options)
        except ConfigError as error:
            raise ConfigError(f"'data.mask': {error.message}", hint=error.hint) from error
        except ValueError as error:
            raise ConfigError(f"'data.mask': {error}") from error


@dataclass(frozen=True)
class SyntheticSection:
    """Simulate the dataset when its folder does not exist yet (``mrirecon simulate``).

    Attributes:
        volumes: Volumes to simulate (split train/val/test by the simulator's manifest).
        slices: Slices per volume.
        size: Image side in pixels.
        coils: Receive coils.
        seed: Seed of the simulation.
        contrast: Contrast of the brain phantom (``mixed`` cycles through the three).
        snr: Signal-to-noise ratio of the simulated k-space.
        lesions: White-matter lesions with their labels (``mrirecon simulate --lesions``' defaults).
    """

    volumes: int = 12
    slices: int = 4
    size: int = 64
    coils: int = 4
    seed: int = 0
    contrast: Literal["flair", "t1", "t2", "mixed"] = "flair"
    snr: float = 30.0
    lesions: bool = False

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ConfigError(f"'data.synthetic.seed' must be at least 0, got {self.seed}")


@dataclass(frozen=True)
class SimulationSection:
    """Simulate realistic slices on the fly instead of reading files (``mrirecon.data.stream``).

    Every training item is a new slice, seeded by ``(seed, epoch, index)``; validation and test
    slices are simulated from seeds of their own and are the same every epoch.

    Attributes:
        train_slices: Training slices per epoch.
        val_slices: Validation slices.
        test_slices: Test slices (0: no test set).
        seed: Seed of the stream (validation and test slices come from streams of their own,
            which no training stream of any seed shares).
        options: What the simulator randomises (``RealisticOptions``: matrix, field of view, coils,
            SNR, contrasts, orientations, skull, lesions; docs/data.md).
        train_target: The training slices' reference: ``noisy`` (fastMRI's, the RSS of the noisy
            coil images) or ``expected`` (the same level without the noise,
            :func:`mrirecon.data.realistic.expected_target`). Validation and test slices keep
            fastMRI's reference, as evaluation does.
    """

    train_slices: int = 1000
    val_slices: int = 32
    test_slices: int = 0
    seed: int = 0
    options: RealisticOptions = field(default_factory=RealisticOptions)
    train_target: Literal["noisy", "expected"] = "noisy"

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ConfigError(f"'data.simulation.seed' must be at least 0, got {self.seed}")
        if self.train_slices < 1 or self.val_slices < 1 or self.test_slices < 0:
            raise ConfigError(
                "'data.simulation' needs train_slices and val_slices of at least 1 "
                "and test_slices of 0 or more"
            )


@dataclass(frozen=True)
class DataSection:
    """Where the data come from and how slices are prepared.

    A source is a folder of HDF5 volumes, a manifest CSV (then only its rows of the split in
    question are used), one file, or a list of files. ``manifest`` is a shortcut: one manifest
    CSV for all three splits. Relative paths are taken from the current working directory.

    Attributes:
        manifest: One manifest CSV for the train, val and test splits.
        train: Training source (overrides ``manifest`` for this split).
        val: Validation source.
        test: Test source (optional; the best checkpoint is tested on it after training).
        mask: The undersampling.
        coil_maps: Coil-sensitivity estimation: ``acs`` (from the fully sampled centre), ``espirit``,
            or ``none`` for models that estimate their own (E2E-VarNet with learned maps).
        centered: FFT convention of the data: ``false`` for Calgary-Campinas, ``null`` (default)
            for each file's own (``mrirecon_fft_centered``; fastMRI files are centred).
        batch_size: Training slices per batch (per device).
        val_batch_size: Validation and test slices per batch (per device).
        num_workers: DataLoader worker processes.
        pin_memory: Pin host memory for faster copies to the GPU (ignored on CPU).
        skip_bad: Skip unreadable volumes with a warning instead of failing.
        synthetic: Simulate the data into ``manifest``'s folder when that manifest does not exist.
        simulation: Simulate realistic slices on the fly (no files; ``manifest`` and the split
            sources must then be unset).
    """

    manifest: str | None = None
    train: str | list[str] | None = None
    val: str | list[str] | None = None
    test: str | list[str] | None = None
    mask: MaskSection = field(default_factory=MaskSection)
    coil_maps: Literal["acs", "espirit", "none"] = "acs"
    centered: bool | None = None
    batch_size: int = 1
    val_batch_size: int = 1
    num_workers: int = 0
    pin_memory: bool = True
    skip_bad: bool = False
    synthetic: SyntheticSection | None = None
    simulation: SimulationSection | None = None

    def __post_init__(self) -> None:
        for key in ("batch_size", "val_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"'data.{key}' must be at least 1, got {getattr(self, key)}")
        if self.num_workers < 0:
            raise ConfigError(f"'data.num_workers' must be 0 or more, got {self.num_workers}")
        for split in ("train", "val", "test"):
            if getattr(self, split) == []:
                raise ConfigError(
                    f"'data.{split}' is an empty list",
                    hint=f"give it a folder, a manifest or files, or leave 'data.{split}' out",
                )
        if self.mask.type != "mixed" and self.coil_maps != "none" and 0 in self.mask.center_fractions:
            raise ConfigError(
                f"'data.mask.center_fractions' has a 0: such masks have no fully sampled centre, and "
                f"'data.coil_maps: {self.coil_maps}' estimates the coil maps from it",
                hint="give every acceleration a centre fraction above 0",
            )
        if self.mask.type == "mixed" and max(self.batch_size, self.val_batch_size) > 1:
            raise ConfigError(
                "'data.mask.type: mixed' needs 'data.batch_size' and 'data.val_batch_size' of 1 "
                "(line masks and 2-D masks cannot be stacked in one batch)",
                hint="set them to 1, or use one mask type",
            )
        if self.synthetic is not None and self.manifest is None:
            raise ConfigError("'data.synthetic' needs 'data.manifest': the manifest the simulation writes")
        if self.simulation is not None:
            given = [
                k for k in ("manifest", "train", "val", "test", "synthetic") if getattr(self, k) is not None
            ]
            if given:
                raise ConfigError(
                    f"'data.simulation' simulates the data on the fly; "
                    f"'data.{given[0]}' cannot be given with it",
                    hint="remove one of the two",
                )
            options = self.simulation.options
            varied = [
                name
                for name in ("rows", "aspect", "coils")
                if getattr(options, name)[0] != getattr(options, name)[1]
            ]
            if varied and max(self.batch_size, self.val_batch_size) > 1:
                raise ConfigError(
                    "'data.batch_size' and 'data.val_batch_size' must be 1 when the simulated "
                    f"{' and '.join(varied)} vary (slices of different sizes cannot be stacked)",
                    hint="set them to 1, or give data.simulation.options."
                    + ", ".join(f"{name}: [N, N]" for name in varied),
                )

    def source(self, split: Literal["train", "val", "test"]) -> str | list[str] | None:
        """The source of ``split``: its own entry, else the shared manifest (``None`` for no test set).

        The test split falls back on the manifest only while training or validation data come from
        it: a run given its own ``train`` and ``val`` (overriding a recipe's) is not tested on the
        recipe's manifest, which holds other data (a fine-tune of ``cirim_synthetic`` on one's own
        files was scored on the simulated phantom); it names ``data.test`` for a test set.
        """
        own = getattr(self, split)
        if own is not None:
            return own
        if split == "test" and self.train is not None and self.val is not None:
            return None
        return self.manifest
