"""The work of a run: which volumes to reconstruct, which are finished, and which rank does what.

A volume is **finished** when its reconstruction HDF5 exists under its final name with this run's
provenance (model, checkpoint sha256, model config, undersampling) and, with ``--dicom``, its DICOM
series folder holds one file per slice. Outputs are written in the order DICOM series, then HDF5 (each atomic:
:mod:`mrirecon.atomic`), so the HDF5 is the completion mark of a volume:

- killed before the HDF5's rename → the volume is not finished and is reconstructed again (a DICOM
  folder from the killed run holds the same series, with the same deterministic UIDs, and is
  rewritten file by file);
- HDF5 present but the DICOM series missing or incomplete (an earlier run without ``--dicom``, or a
  deleted folder) → only the DICOM series is exported again, from the HDF5;
- HDF5 present with another model, checkpoint, undersampling, coil maps, frame or precision → refused before
  anything runs, unless ``--overwrite`` (a run never mixes reconstructions of two models in one
  folder silently); so is a DICOM series of another model or checkpoint whose HDF5 is gone (its
  DerivationDescription names them);
- a finished series identified where this run de-identifies (or the reverse) → refused likewise,
  unless ``--overwrite`` (then exported again from the HDF5): a resumed run never leaves
  identifying series behind when it was asked to de-identify.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import pydicom
from pydicom.errors import InvalidDicomError

from mrirecon.atomic import partial_name
from mrirecon.data.bart import bart_pair
from mrirecon.data.ismrmrd_raw import Frame
from mrirecon.errors import ConfigError, MriReconError, Notice
from mrirecon.export.dicom import FILE_PATTERN
from mrirecon.export.series_record import series_intact
from mrirecon.inference import components
from mrirecon.inference.failures import Failure, error_text
from mrirecon.inference.inputs import OutputPaths
from mrirecon.inference.undersampling import Undersampling, VolumeSampling

__all__ = ["EXPORT", "RECONSTRUCT", "RunPlan", "VolumeTask", "dicom_complete", "make_plan", "shard"]

RECONSTRUCT = "reconstruct"
EXPORT = "export"


@dataclass(frozen=True)
class VolumeTask:
    """One volume to process.

    Attributes:
        index: Position of the input in the run's input list.
        input_path: The input file.
        outputs: Its reconstruction HDF5 and DICOM folder.
        num_slices: Slices in the volume.
        kspace_shape: ``(C, H, W)`` of one slice.
        crop_size: ``(h, w)`` of the reconstruction.
        centered: FFT convention of the input's k-space.
        sampling: What the outputs record about the undersampling.
        action: :data:`RECONSTRUCT`, or :data:`EXPORT` (DICOM only, from the finished HDF5).
        opens_whole: Opening the input reads or converts all of it
            (:func:`~mrirecon.inference.components.opens_whole`), so one DataLoader worker should
            read all its slices.
        frames: The input is an ISMRMRD raw file, whose frame a run chooses (``--frame``).
        fingerprint: :func:`input_fingerprint` of the input when it was planned (attribute
            ``input_fingerprint`` of its reconstruction).
        replaces: Its outputs are this run's own, made from the input before it was rewritten:
            they are replaced (the DICOM series too, whose UIDs follow the new data).
    """

    index: int
    input_path: Path
    outputs: OutputPaths
    num_slices: int
    kspace_shape: tuple[int, int, int]
    crop_size: tuple[int, int]
    centered: bool
    sampling: VolumeSampling
    action: str = RECONSTRUCT
    opens_whole: bool = False
    frames: bool = False
    fingerprint: str = ""
    replaces: bool = False


def input_fingerprint(path: Path) -> str:
    """16 hex digits that change when the input file is replaced or rewritten: a hash of its size
    and modification time (and its BART header's). Cheap (no read); a copy that does not keep the
    times reads as changed (it is reconstructed again, never wrongly skipped).

    Raises:
        OSError: the file cannot be stat'ed.
    """
    files = [path, bart_pair(path)[0]] if path.suffix.lower() == ".cfl" else [path]
    stats = [f.stat() for f in files]
    text = ";".join(f"{s.st_size}:{s.st_mtime_ns}" for s in stats)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunPlan:
    """Everything a run has to do (the same object on every rank).

    Attributes:
        tasks: Volumes to reconstruct or export, in input order.
        finished: Inputs whose outputs are already complete (skipped).
        failures: Inputs that could not even be opened.
        total_inputs: Number of inputs listed.
    """

    tasks: list[VolumeTask]
    finished: list[Path] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    total_inputs: int = 0

    @property
    def slices_to_reconstruct(self) -> int:
        """Slices the model will see."""
        return sum(t.num_slices for t in self.tasks if t.action == RECONSTRUCT)


def dicom_complete(folder: Path, num_slices: int) -> bool:
    """Whether ``folder`` holds exactly the files ``IM_0001.dcm … IM_{num_slices}.dcm``, each with
    the size and sha256 recorded when it was written (a truncated or damaged file is not finished)."""
    if not folder.is_dir():
        return False
    return series_intact(folder, [FILE_PATTERN.format(i + 1) for i in range(num_slices)])


def _deidentified(folder: Path) -> bool:
    """Whether the series in ``folder`` says PatientIdentityRemoved = YES (first file's header)."""
    first = folder / FILE_PATTERN.format(1)
    try:
        header = pydicom.dcmread(first, stop_before_pixels=True, specific_tags=["PatientIdentityRemoved"])
    except (OSError, ValueError, KeyError, InvalidDicomError):  # unreadable: not what this run writes
        return False
    return str(header.get("PatientIdentityRemoved", "")).upper() == "YES"


_MADE_BY = re.compile(r"with model (\S+?)(?: \(checkpoint sha256 ([0-9a-f]{64})\))?[ .]")


def _another_models_series(folder: Path, model: str, checkpoint_sha256: str) -> bool:
    """Whether ``folder`` holds a DICOM series that another model or checkpoint made (its first
    file's DerivationDescription names them); an empty, missing or unreadable folder is not."""
    first = next(iter(sorted(folder.glob("IM_*.dcm"))), None) if folder.is_dir() else None
    if first is None:
        return False
    try:
        header = pydicom.dcmread(first, stop_before_pixels=True, specific_tags=["DerivationDescription"])
    except (OSError, ValueError, KeyError, InvalidDicomError):  # damaged: replaced when written
        return False
    found = _MADE_BY.search(str(header.get("DerivationDescription", "")))
    return found is not None and (found.group(1), found.group(2) or "") != (model, checkpoint_sha256)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _existing(path: Path) -> dict[str, Any] | None:
    """Provenance attributes and slice count (``_slices``) of the file at an output path; None when
    it cannot be read as HDF5 (damaged: redone, and replaced atomically).

    An HDF5 file without a ``reconstruction`` (a converted k-space file, another tool's output)
    gets ``_slices`` −1: it matches no run, so it is replaced only with ``--overwrite``.
    """
    try:
        with h5py.File(path, "r") as f:
            attrs = {name: f.attrs[name] for name in f.attrs}
            recon = f.get("reconstruction")
            attrs["_slices"] = int(recon.shape[0]) if isinstance(recon, h5py.Dataset) and recon.ndim else -1
    except (OSError, KeyError, IndexError, TypeError):
        return None
    return attrs


def _same_number(saved: Any, wanted: float | None) -> bool:
    if saved is None or wanted is None:
        return saved is None and wanted is None
    return abs(float(saved) - wanted) <= 1e-6 * abs(wanted)


def _resumed(
    task: VolumeTask,
    identity: tuple[str, str, str, str, str, str],
    *,
    dicom: bool,
    deidentify: bool,
    overwrite: bool,
) -> str:
    """What a resumed run does with an input whose reconstruction exists: ``finished``,
    :data:`EXPORT` (its DICOM series only), :data:`RECONSTRUCT` (an unreadable file, or another
    model's output with ``overwrite``), ``again`` (this run's output of an input rewritten since:
    made again, replacing it), ``privacy`` (a series de-identified otherwise than
    this run's) or ``conflict`` (another model's or setting's output)."""
    out = task.outputs
    attrs = _existing(out.recon)
    if attrs is None:
        return RECONSTRUCT  # damaged: replaced atomically
    if _input_changed(attrs, task) and _matches(attrs, identity, task.sampling):
        return "again"
    if not _matches(attrs, identity, task.sampling, task.num_slices):
        return RECONSTRUCT if overwrite else "conflict"
    if dicom and not dicom_complete(out.dicom, task.num_slices):
        return EXPORT
    if dicom and _deidentified(out.dicom) != deidentify:
        return EXPORT if overwrite else "privacy"
    return "finished"


def _decided(decision: str, task: VolumeTask) -> Any:
    """What a :func:`_resumed` decision files: the input (finished), the folder refused (its DICOM
    series for ``privacy``, its HDF5 for ``conflict``), or the task to run."""
    if decision == "finished":
        return task.input_path
    if decision == "privacy":
        return task.outputs.dicom
    if decision == "conflict":
        return task.outputs.recon
    if decision == EXPORT:
        return _with_action(task, EXPORT)
    return dataclasses.replace(task, replaces=True)  # "again"


def _input_changed(attrs: dict[str, Any], task: VolumeTask) -> bool:
    """Whether the output records another fingerprint of its input than the input has now (an
    output without one, written before fingerprints were recorded, is taken as of this input)."""
    recorded = _text(attrs.get("input_fingerprint", ""))
    return bool(recorded) and bool(task.fingerprint) and recorded != task.fingerprint


def _matches(
    attrs: dict[str, Any],
    identity: tuple[str, str, str, str, str, str],
    sampling: VolumeSampling,
    slices: int | None = None,
) -> bool:
    """Whether a finished output was made by this run's model, settings, frame and undersampling
    (an output without a ``precision`` attribute was made in float32)."""
    model, checkpoint_sha256, model_config, coil_maps, frame, precision = identity
    return (
        _text(attrs.get("model", "")) == model
        and _text(attrs.get("precision", "32")) == precision
        and _text(attrs.get("frame", "")) == frame
        and _text(attrs.get("checkpoint_sha256", "")) == checkpoint_sha256
        and _text(attrs.get("model_config", "")) == model_config
        and (not coil_maps or _text(attrs.get("coil_maps", "")) == coil_maps)
        and _text(attrs.get("undersampling", "")) == sampling.undersampling
        and _text(attrs.get("mask_type", "")) == sampling.mask_type
        and _same_number(attrs.get("acceleration"), sampling.acceleration)
        and _same_number(attrs.get("center_fraction"), sampling.center_fraction)
        and (slices is None or attrs["_slices"] == slices)
    )


def make_plan(
    inputs: Sequence[Path],
    outputs: Sequence[OutputPaths],
    *,
    model: str,
    checkpoint_sha256: str,
    undersampling: Undersampling,
    dicom: bool,
    model_config: str = "",
    coil_maps: str = "",
    precision: str = "32",
    deidentify: bool = False,
    resume: bool = True,
    overwrite: bool = False,
    npy_axes: str | None = None,
    frame: Frame | None = None,
    fail_fast: bool = False,
) -> RunPlan:
    """Open every input (metadata only) and decide what to do with it.

    Args:
        inputs: The input files.
        outputs: Their output paths (:func:`mrirecon.inference.inputs.output_paths`).
        model: Registry name of the model of this run.
        checkpoint_sha256: sha256 of its checkpoint ("" for a baseline by name).
        model_config: The model's config as canonical JSON (attribute ``model_config``).
        coil_maps: The coil-map method of this run (attribute ``coil_maps``; "" leaves it unchecked).
        precision: The run's ``--precision`` (attribute ``precision``).
        deidentify: Whether this run's DICOM series are de-identified: a finished series that is
            not (or the reverse) is never taken as finished.
        undersampling: Retrospective undersampling asked for.
        dicom: Whether DICOM series are part of a finished volume.
        resume: Skip finished volumes (``batch``); False reconstructs every input (``infer``).
        overwrite: Replace outputs of another model/checkpoint/undersampling instead of refusing.
        npy_axes: Axis order of ``.npy`` inputs.
        frame: The frame of ISMRMRD raw inputs to reconstruct (None: the first of each); their
            outputs record it (attribute ``frame``, :meth:`Frame.recorded`).
        fail_fast: Raise the first input error instead of recording it.

    Raises:
        ConfigError: if outputs of another model or setting are in the way (without ``overwrite``).
        DataError: the first input that cannot be opened, with ``fail_fast`` (without it, every
            such input is recorded in :attr:`RunPlan.failures`, whatever the exception).
    """
    frame_text = "" if frame is None else frame.recorded()
    tasks: list[VolumeTask] = []
    finished: list[Path] = []
    failures: list[Failure] = []
    conflicts: list[Path] = []
    privacy: list[Path] = []
    for index, (path, out) in enumerate(zip(inputs, outputs, strict=True)):
        try:
            volume = components.probe_input(path, npy_axes=npy_axes, frame=frame)
            try:
                shape = tuple(int(n) for n in volume.kspace_shape)
                crop = tuple(int(n) for n in volume.crop_size)
                task = VolumeTask(
                    index=index,
                    input_path=path,
                    outputs=out,
                    num_slices=int(volume.num_slices),
                    kspace_shape=(shape[0], shape[1], shape[2]),
                    crop_size=(crop[0], crop[1]),
                    centered=bool(volume.centered),
                    sampling=undersampling.for_volume(
                        volume.mask,
                        recovered=bool(volume.attrs.get("mrirecon_mask_recovered")),
                        name=Path(path).name,
                    ),
                    opens_whole=components.opens_whole(path, volume),
                    frames=components.has_frames(volume),
                    fingerprint=input_fingerprint(Path(path)),
                )
            finally:
                volume.close()
        except (MriReconError, OSError) as error:  # a bad input is recorded; the run goes on
            if fail_fast:
                raise
            failures.append(Failure(os.fspath(path), error_text(error), type(error).__name__))
            continue
        if resume and out.recon.exists():
            identity = (
                model,
                checkpoint_sha256,
                model_config,
                coil_maps,
                frame_text if task.frames else "",
                precision,
            )
            decision = _resumed(task, identity, dicom=dicom, deidentify=deidentify, overwrite=overwrite)
            if decision != RECONSTRUCT:
                bucket = {"finished": finished, "privacy": privacy, "conflict": conflicts}.get(
                    decision, tasks
                )
                bucket.append(_decided(decision, task))
                continue
        if dicom and not overwrite and _another_models_series(out.dicom, model, checkpoint_sha256):
            conflicts.append(out.dicom)  # its HDF5 is gone: found now, not after reconstructing
            continue
        tasks.append(task)
    unframed = sum(not t.frames for t in tasks)
    if frame_text and unframed:
        warnings.warn(
            Notice(
                f"--frame applies to ISMRMRD raw files; {unframed} input(s) of other formats hold one frame "
                "and are reconstructed as they are"
            ),
            stacklevel=2,
        )
    if conflicts:
        examples = ", ".join(p.name for p in conflicts[:3]) + (" ..." if len(conflicts) > 3 else "")
        raise ConfigError(
            f"{len(conflicts)} output(s) in the output folder were made by another model, "
            f"checkpoint, undersampling, coil-map method, frame or precision ({examples})",
            path=conflicts[0].parent,
            hint="choose another output folder, or pass --overwrite to replace them",
        )
    if privacy:
        examples = ", ".join(p.name for p in privacy[:3]) + (" ..." if len(privacy) > 3 else "")
        state = "identified" if deidentify else "de-identified"
        raise ConfigError(
            f"{len(privacy)} DICOM series in the output folder are {state}, unlike this run ({examples})",
            path=privacy[0].parent,
            hint="choose another output folder, or pass --overwrite to export them again",
        )
    for task in tasks:  # leftovers of a killed run (dot files: they never looked complete)
        _remove_partials(task.outputs)
    return RunPlan(tasks, finished, failures, len(inputs))


def _remove_partials(outputs: OutputPaths) -> None:
    for partial in (partial_name(outputs.recon), partial_name(outputs.dicom)):
        if partial.is_dir() and not partial.is_symlink():
            shutil.rmtree(partial, ignore_errors=True)
        elif partial.exists():
            partial.unlink(missing_ok=True)


def _with_action(task: VolumeTask, action: str) -> VolumeTask:
    return VolumeTask(**{**task.__dict__, "action": action})


def shard(tasks: Sequence[VolumeTask], world_size: int) -> list[list[VolumeTask]]:
    """Split whole volumes over ``world_size`` ranks, balancing slices; each volume goes to exactly
    one rank, and each rank keeps the input order. Deterministic (every rank computes the same)."""
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    loads = [0] * world_size
    owner: dict[int, int] = {}
    cost = lambda t: t.num_slices if t.action == RECONSTRUCT else 1  # noqa: E731
    for task in sorted(tasks, key=lambda t: (-cost(t), t.index)):
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        owner[task.index] = rank
        loads[rank] += cost(task)
    return [[t for t in tasks if owner[t.index] == rank] for rank in range(world_size)]
