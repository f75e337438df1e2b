"""The options of an inference run (``infer`` and ``batch``), checked before anything runs."""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from mrirecon.data.ismrmrd_raw import Frame
from mrirecon.data.transforms import COIL_MAP_METHODS
from mrirecon.errors import ConfigError, Notice
from mrirecon.export import DicomOptions
from mrirecon.inference.undersampling import Undersampling

__all__ = ["COIL_MAP_METHODS", "PRECISIONS", "RunOptions", "resolve_device"]

#: ``--precision`` choices: float32, or a learned model's CNNs under bfloat16 autocast.
PRECISIONS = ("32", "bf16-mixed")


@dataclass(frozen=True)
class RunOptions:
    """How to run.

    Attributes:
        output_dir: Where the reconstructions (``NAME.h5``) and DICOM series (``dicom/NAME/``) go.
        dicom: Also export a DICOM series per volume (part of a finished volume).
        dicom_options: Identifiers, de-identification, UID root of the DICOM export.
        undersampling: Retrospective undersampling of fully sampled input (none by default).
        coil_maps: Coil-map estimation of the data layer: ``acs``, ``espirit``, or ``none`` for
            models that estimate their own maps (E2E-VarNet); None: the method the model was
            trained with when its checkpoint records it, else ``acs`` (:meth:`for_model`).
        batch_size: Slices per forward pass.
        workers: DataLoader worker processes reading and preparing slices (0: in the main process).
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``32``, or ``bf16-mixed``: a learned model's convolutions in bfloat16 (autocast;
            the physics stays complex64), for GPUs and CPUs with bfloat16 instructions.
        devices: Processes (GPUs, or CPU processes) per node; more than one runs DDP.
        num_nodes: Machines; more than one runs DDP across nodes (launched by SLURM or torchrun).
        resume: Skip volumes whose outputs are finished (``batch``); False redoes every input.
        overwrite: Replace outputs of another model, checkpoint or undersampling.
        npy_axes: Axis order of ``.npy`` inputs (the data layer's ``npy_axes``).
        frame: The contrast (echo), repetition, phase and set to reconstruct of ISMRMRD raw inputs
            that hold several (None: the first of each); other inputs have one.
        split: With a manifest, only this split.
        progress: Show the progress bar.
        reports: Write ``failures.csv`` and ``run.json`` in ``output_dir``.
        deid_mapping: With ``--deidentify``: write the mapping from input files to their pseudonyms
            here (a CSV the user keeps apart from the de-identified outputs); None writes none.
    """

    output_dir: Path
    dicom: bool = False
    dicom_options: DicomOptions = field(default_factory=DicomOptions)
    undersampling: Undersampling = field(default_factory=Undersampling)
    coil_maps: str | None = None
    batch_size: int = 8
    workers: int = 2
    device: str = "auto"
    precision: Literal["32", "bf16-mixed"] = "32"
    devices: int = 1
    num_nodes: int = 1
    resume: bool = True
    overwrite: bool = False
    npy_axes: str | None = None
    frame: Frame | None = None
    split: str | None = None
    progress: bool = True
    reports: bool = True
    deid_mapping: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_dir", Path(self.output_dir))
        if self.deid_mapping is not None and not self.dicom_options.deidentify:
            raise ConfigError(
                "--deid-mapping writes the pseudonyms of a de-identified run, and this run is not one",
                hint="add --deidentify, or leave out --deid-mapping",
            )
        if (
            self.deid_mapping is not None
            and self.output_dir.resolve() in Path(self.deid_mapping).resolve().parents
        ):
            raise ConfigError(
                "--deid-mapping inside the output folder would ship the re-identification key with "
                "the de-identified data",
                path=self.deid_mapping,
                hint="write the mapping outside the output folder, where only you can read it",
            )
        if self.coil_maps is not None and self.coil_maps not in COIL_MAP_METHODS:
            raise ConfigError(
                f"unknown coil-map method '{self.coil_maps}'",
                hint=f"choose one of {', '.join(COIL_MAP_METHODS)}",
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision '{self.precision}'", hint=f"choose one of {', '.join(PRECISIONS)}"
            )
        for name, least in (("batch_size", 1), ("workers", 0), ("devices", 1), ("num_nodes", 1)):
            if int(getattr(self, name)) < least:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least {least}")
        resolve_device(self.device, self.devices)
        if self.num_nodes > 1 and not any(
            k in os.environ for k in ("SLURM_NTASKS", "WORLD_SIZE", "MASTER_ADDR")
        ):
            raise ConfigError(
                f"--num-nodes {self.num_nodes} needs a launcher that starts the other machines' processes "
                "(it would wait for them)",
                hint="start it with srun or torchrun on every node (docs/inference.md), or drop --num-nodes",
            )

    def summary(self) -> dict[str, Any]:
        """The options as plain data for run.json (no identifiers: DICOM overrides are left out)."""
        u = self.undersampling
        return {
            "dicom": self.dicom,
            "deidentify": self.dicom_options.deidentify,
            "mask_type": u.mask_type,
            "acceleration": u.acceleration,
            "center_fraction": u.effective_center_fraction,
            "coil_maps": self.coil_maps,
            "batch_size": self.batch_size,
            "workers": self.workers,
            "device": self.device,
            "precision": self.precision,
            "devices": self.devices,
            "num_nodes": self.num_nodes,
            "resume": self.resume,
            "overwrite": self.overwrite,
            "npy_axes": self.npy_axes,
            "frame": self.frame_text,
            "split": self.split,
        }

    @property
    def frame_text(self) -> str:
        """``frame`` as the outputs record it (attribute ``frame``): "" for the first of each."""
        return "" if self.frame is None else self.frame.recorded()

    @property
    def coil_map_method(self) -> str:
        """The coil-map method to run: ``coil_maps`` as :meth:`for_model` settled it (``acs`` for
        options not settled for a model)."""
        return self.coil_maps or "acs"

    def for_model(self, name: str, trained: str | None) -> RunOptions:
        """The options with the coil-map method settled for model ``name`` trained on ``trained``
        maps (None: not recorded): the model's own unless given; another than its own is refused.

        Raises:
            ConfigError: ``coil_maps`` differs from the method the model was trained with.
        """
        if self.coil_maps is None:
            return self.replace(coil_maps=trained or self.coil_map_method)
        if trained is not None and self.coil_maps != trained:
            raise ConfigError(
                f"{name} was trained on {trained} coil maps; --coil-maps {self.coil_maps} gives it inputs "
                "unlike those it learned from, and its images degrade (below zero-filled for some models)",
                hint=f"leave out --coil-maps (or pass --coil-maps {trained}); other maps suit the classical "
                "baselines (sense, cs_l1wavelet), or a model trained with them",
            )
        return self

    def check_precision(self, name: str, learned: bool) -> None:
        """Refuse a reduced precision for a classical method, or where the device has no bfloat16;
        a CPU without bfloat16 instructions gets a :class:`~mrirecon.errors.Notice` (it is slower).

        Raises:
            ConfigError: ``bf16-mixed`` for a model without learned weights, or on a GPU without
                bfloat16.
        """
        if self.precision == "32":
            return
        if not learned:
            raise ConfigError(
                f"--precision {self.precision} runs a learned model's convolutions in bfloat16; {name} is "
                "a classical method and runs in float32",
                hint="leave out --precision",
            )
        accelerator, devices = resolve_device(self.device, self.devices)
        if accelerator == "gpu":
            indices = devices if isinstance(devices, list) else [torch.cuda.current_device()]
            if any(torch.cuda.get_device_capability(i) < (8, 0) for i in indices):  # emulated before Ampere
                raise ConfigError(
                    f"--precision {self.precision}: this GPU has no bfloat16 arithmetic (it came with "
                    "compute capability 8.0, Ampere)",
                    hint="leave out --precision",
                )
        if accelerator == "cpu" and not _cpu_has_bf16():
            warnings.warn(
                f"--precision {self.precision} on a CPU without bfloat16 instructions (AVX512-BF16, AMX) "
                "is slower than float32",
                Notice,
                stacklevel=2,
            )

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


def _cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (x86: AVX512-BF16 or AMX; Arm: BF16), as torch's
    CPU capabilities list them (none listed on a torch without ``torch.cpu.get_capabilities``)."""
    listed: dict[str, Any] = getattr(torch.cpu, "get_capabilities", dict)()
    return any(bool(listed.get(key)) for key in ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16"))


def resolve_device(device: str, devices: int = 1) -> tuple[str, int | list[int]]:
    """Lightning's ``(accelerator, devices)`` for ``--device`` and ``--devices``.

    Raises:
        ConfigError: an unknown device, or CUDA asked for where there is none.
    """
    text = device.strip().lower()
    if text == "auto":
        return ("gpu" if torch.cuda.is_available() else "cpu"), devices
    if text == "cpu":
        return "cpu", devices
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA device here", hint="use --device cpu (or auto)")
        if text == "cuda":
            return "gpu", devices
        try:
            index = int(text.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"bad device '{device}'", hint="use cpu, cuda, cuda:N or auto") from None
        if devices != 1:
            raise ConfigError(f"--device {device} names one GPU; leave --devices at 1 or use --device cuda")
        return "gpu", [index]
    raise ConfigError(f"unknown device '{device}'", hint="use auto, cpu, cuda or cuda:N")
