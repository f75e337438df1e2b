"""Writing finished volumes in a background thread, while the model works on the next batches.

Per volume, in this order (each output atomic, see :mod:`mrirecon.inference.plan` for why):

1. with ``--dicom``: the DICOM series (``export_volume_dicom``);
2. the reconstruction HDF5 (``write_reconstruction``): the volume's completion mark.

A :class:`~mrirecon.errors.DataError` while writing (e.g. a header whose geometry does not fit)
fails that volume only. An :class:`~mrirecon.errors.ExportError` (disk full, no permission, another
series in the way) or a :class:`~mrirecon.errors.ConfigError` would fail every later volume too, so
it stops the run: :meth:`VolumeWriter.submit` and :meth:`VolumeWriter.close` raise it in the
caller's thread. Files already complete are never touched by a failed write.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.uid import PYDICOM_ROOT_UID

from mrirecon.errors import ConfigError, ExportError, MriReconError
from mrirecon.export import (
    DicomOptions,
    InputMetadata,
    ReconVolume,
    export_volume_dicom,
    read_reconstruction,
    write_reconstruction,
)
from mrirecon.export.deidentify import deidentified_acquisition, deidentify_header
from mrirecon.export.identity import resolve_identity
from mrirecon.inference.assemble import FinishedVolume
from mrirecon.inference.failures import Failure, error_text
from mrirecon.inference.plan import EXPORT

__all__ = ["VolumeWriter", "WriteSettings", "recon_volume", "write_volume"]


@dataclass(frozen=True)
class WriteSettings:
    """What every output of a run records and how DICOM is exported.

    Attributes:
        model: Registry name of the model.
        checkpoint_sha256: sha256 of the checkpoint ("" for a baseline by name).
        dicom: DICOM export options, or None for HDF5 only.
        extra_attrs: More attributes for every reconstruction HDF5 (e.g. ``coil_maps``).
        deidentify: De-identify the HDF5 too (header, patient ID, input name; :func:`_deidentified`).
        salt: The de-identification secret.
        frame: The ISMRMRD frame chosen (``--frame``), recorded as attribute ``frame`` of the
            outputs of ISMRMRD raw inputs; "" for the first of each.
    """

    model: str
    checkpoint_sha256: str = ""
    dicom: DicomOptions | None = None
    extra_attrs: dict[str, str | float | int | bool] = field(default_factory=dict)
    deidentify: bool = False
    salt: str = ""
    frame: str = ""


def recon_volume(volume: FinishedVolume, settings: WriteSettings) -> ReconVolume:
    """The :class:`ReconVolume` of a reconstructed volume, with the input's header and geometry
    (read from the input by the DataLoader worker that read its first slice)."""
    assert volume.reconstruction is not None
    meta = volume.meta or InputMetadata(None, None, "", "")
    sampling = volume.task.sampling
    extra: dict[str, Any] = dict(settings.extra_attrs)
    if sampling.center_fraction is not None:
        extra["center_fraction"] = float(sampling.center_fraction)
    # the grid the reconstruction was centre-cropped from: where the DICOM geometry puts the centre
    # of the field of view (mrirecon.export.geometry.centre_index)
    _, height, width = volume.task.kspace_shape
    extra["kspace_matrix"] = np.asarray([height, width], dtype=np.int64)
    if meta.decoupled_3d:  # a 3-D acquisition (its header now says one partition per slice)
        extra["mrirecon_decoupled_3d"] = True
    if volume.task.fingerprint:  # a later run redoes the volume when its input is rewritten
        extra["input_fingerprint"] = volume.task.fingerprint
    if settings.frame and volume.task.frames:  # the frame of an ISMRMRD raw input (other inputs have one)
        extra["frame"] = settings.frame
    recon = ReconVolume(
        reconstruction=volume.reconstruction,
        zero_filled=volume.zero_filled,
        ismrmrd_header=meta.ismrmrd_header,
        geometry=meta.geometry,
        model=settings.model,
        checkpoint_sha256=settings.checkpoint_sha256,
        input_file=volume.task.input_path.name,
        acquisition=meta.acquisition,
        patient_id=meta.patient_id,
        undersampling=sampling.undersampling,
        mask_type=sampling.mask_type,
        acceleration=sampling.acceleration,
        extra_attrs=extra,
    )
    return _deidentified(recon, volume.task.outputs.recon.name, settings) if settings.deidentify else recon


def _deidentified(recon: ReconVolume, output_name: str, settings: WriteSettings) -> ReconVolume:
    """The reconstruction as a de-identified run writes it: the patient ID is the pseudonym its DICOM
    series gets, the ISMRMRD header keeps no identifying element, the input is named by the output's
    (pseudonymous) name, the ``acquisition`` attribute is kept only when it is a fixed code (for
    ISMRMRD input it is the protocol name).

    The de-identified StudyInstanceUID and FrameOfReferenceUID are decided here, from the header
    before it loses the originals (salted hashes of them: the series of one study share them), and
    recorded as attributes ``study_instance_uid`` and ``frame_of_reference_uid``: the DICOM series
    (now, or exported later from this file) takes them as they are, and they are the ones
    ``export-dicom --deidentify`` gives the identified reconstruction.
    """
    try:
        header = recon.header()
    except MriReconError:  # an unreadable header is dropped below
        header = None
    identity = resolve_identity(
        header,
        recon_patient_id=recon.patient_id,
        input_file=recon.input_file,
        acquisition=recon.acquisition,
        deidentify=True,
        salt=settings.salt,
        uid_root=settings.dicom.uid_root if settings.dicom is not None else PYDICOM_ROOT_UID,
    )
    pseudonym = identity.patient_id
    scrubbed = deidentify_header(recon.ismrmrd_header, pseudonym) if recon.ismrmrd_header else None
    return dataclasses.replace(
        recon,
        ismrmrd_header=scrubbed or None,
        input_file=output_name,
        acquisition=deidentified_acquisition(recon.acquisition),
        patient_id=pseudonym,
        extra_attrs={
            **recon.extra_attrs,
            "deidentified": True,
            "study_instance_uid": identity.study_instance_uid,
            # a volume without slice positions gets a frame of reference of its own series (its
            # synthetic planes share no space with another series): nothing to record for it
            **(
                {"frame_of_reference_uid": identity.frame_of_reference_uid}
                if recon.geometry is not None
                else {}
            ),
        },
    )


def write_volume(volume: FinishedVolume, settings: WriteSettings) -> None:
    """Write one volume's outputs: the DICOM series (with ``settings.dicom``), then the HDF5.

    A DICOM-only task (the HDF5 is finished) exports the series from the HDF5.
    """
    task = volume.task
    if task.action == EXPORT:
        assert settings.dicom is not None
        recon = read_reconstruction(task.outputs.recon)
        export_volume_dicom(recon, task.outputs.dicom, settings.dicom, source=task.outputs.recon)
        return
    recon = recon_volume(volume, settings)
    if settings.dicom is not None:
        # de-identified, the series is built from the reconstruction as the HDF5 holds it (its
        # pseudonym and recorded UIDs), as a resumed run exporting it from the HDF5 would
        source = task.outputs.recon if settings.deidentify else task.input_path
        # an input rewritten since this run's series of it was made: that series is replaced
        dicom = dataclasses.replace(settings.dicom, overwrite=True) if task.replaces else settings.dicom
        export_volume_dicom(recon, task.outputs.dicom, dicom, source=source)
    write_reconstruction(task.outputs.recon, recon)


def _detached(error: ExportError | ConfigError) -> ExportError | ConfigError:
    """The same error without its traceback: the traceback's frames hold the HDF5 objects of the
    failed write, which must be freed now, in this thread, not at interpreter exit."""
    return type(error)(error.one_line())


@dataclass
class WriteOutcome:
    """What happened to one submitted volume."""

    volume: FinishedVolume
    failure: Failure | None
    seconds: float


class VolumeWriter:
    """A writer thread with a bounded queue (``max_pending`` volumes wait at most).

    Args:
        settings: What to write.
        max_pending: Volumes that may wait in the queue; :meth:`submit` blocks beyond (so memory stays
            bounded when writing is slower than reconstructing).
        on_done: Called in the writer thread after each volume with its :class:`WriteOutcome`.
    """

    def __init__(
        self,
        settings: WriteSettings,
        *,
        max_pending: int = 2,
        on_done: Callable[[WriteOutcome], None] | None = None,
    ):
        self.settings = settings
        self.on_done = on_done
        self.busy_seconds = 0.0
        self._queue: queue.Queue[FinishedVolume | None] = queue.Queue(maxsize=max(1, max_pending))
        self._fatal: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mrirecon-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._fatal is not None or self._stop.is_set():
                continue  # drain: nothing more is written after a fatal error
            start = time.perf_counter()
            failure = None
            try:
                write_volume(item, self.settings)
            except (ExportError, ConfigError) as error:
                self._fatal = _detached(error)
                continue
            except MriReconError as error:  # this volume's data cannot be written: this volume only
                failure = Failure(os.fspath(item.task.input_path), error_text(error), type(error).__name__)
            except Exception as error:  # noqa: BLE001 (a bug: re-raised in the main thread, traceback kept)
                self._fatal = error
                continue
            seconds = time.perf_counter() - start
            self.busy_seconds += seconds
            if self.on_done is not None:  # nothing keeps the volume: a long run's memory stays flat
                self.on_done(WriteOutcome(item, failure, seconds))
            item = None

    def raise_if_failed(self) -> None:
        """Raise the fatal write error, if one happened."""
        if self._fatal is not None:
            raise self._fatal

    def submit(self, volume: FinishedVolume) -> None:
        """Queue a volume (blocks while ``max_pending`` volumes wait).

        Raises:
            ExportError, ConfigError: a fatal error of an earlier write.
        """
        while True:
            self.raise_if_failed()
            try:
                self._queue.put(volume, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Write everything queued, stop the thread, and raise a fatal error if one happened."""
        self._queue.put(None)
        self._thread.join()
        self.raise_if_failed()

    def abort(self) -> None:
        """Stop without writing what is still queued (another error is on its way up)."""
        self._stop.set()
        while True:  # make room for the stop mark
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join()
