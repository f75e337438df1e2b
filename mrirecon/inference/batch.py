"""Reconstruct many volumes: ``mrirecon batch`` and ``mrirecon infer`` end here.

:func:`run_batch` lists the inputs, plans (skipping finished volumes), runs Lightning's prediction
loop on one device or many, and writes ``failures.csv`` and ``run.json``. Loading, compute and
writing overlap: DataLoader workers read and prepare the slices of the next volumes, the model
reconstructs batches of slices on the device, a writer thread writes the finished volumes' DICOM
series and HDF5. :func:`run_inference` is the same for ``infer``: every input is reconstructed again
and any failure is an error.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch

from mrirecon.atomic import exclusive_folder, prepare_output_folder
from mrirecon.data.hdf5_inputs import max_kspace_gb
from mrirecon.data.raw import NO_MMAP_ENV
from mrirecon.errors import DataError, ExportError, MriReconError, Notice, path_text
from mrirecon.export import DicomOptions
from mrirecon.export.deidentify import file_pseudonym
from mrirecon.inference.deidentified import (
    refuse_deidentified_folder,
    refuse_identified_outputs,
    scrubbed_failures,
    scrubbed_report,
    warnings_by_pseudonym,
    write_mapping,
)
from mrirecon.inference.failures import FAILURES_CSV, Failure, error_text, write_failures
from mrirecon.inference.inputs import (
    DICOM_FOLDER,
    OutputPaths,
    check_output_name_length,
    list_inputs,
    output_paths,
)
from mrirecon.inference.loading import LoadedModel
from mrirecon.inference.options import RunOptions, resolve_device
from mrirecon.inference.run_record import (
    RUN_JSON,
    RunResult,
    counts_so_far,
    record_status,
    still_running,
    write_run_json,
)
from mrirecon.inference.runner import RankReport, error_from_failure
from mrirecon.models.pretrained import is_pretrained
from mrirecon.runtime import (
    interruptible,
    launched_rank,
    lightning_info_silenced,
    lightning_leaves_sigterm,
    stoppable,
)

__all__ = ["RUN_JSON", "RunResult", "run_batch", "run_inference"]

#: What to lower when a DataLoader worker is killed (most often for memory).
WORKER_HINT = (
    "lower --workers or --batch-size; in Docker, give the container more --shm-size; "
    "run again to continue where it stopped"
)


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's start-up chatter (device summaries, tips, worker-count hints) for the run."""
    with warnings.catch_warnings():
        for message in (
            ".*does not have many workers.*",  # the worker count is the user's choice (--workers)
            ".*custom batch sampler.*",  # VolumeBatchSampler returns every slice (tested)
            ".*overridden `transfer_batch_to_device`.*",  # on purpose: the runner moves the groups
            ".*predict returned None.*",  # on purpose: outputs are written, not returned
            ".*Total length of `DataLoader` across ranks is zero.*",  # everything was finished
            ".*isinstance.treespec, LeafSpec.*",  # Lightning 2.6 against torch 2.13, at import
        ):
            warnings.filterwarnings("ignore", message=message)
        with lightning_info_silenced():
            yield


def _gather(report: RankReport, world_size: int) -> list[RankReport]:
    if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        reports: list[Any] = [None] * world_size
        torch.distributed.all_gather_object(reports, report)
        return sorted(reports, key=lambda r: r.rank)
    return [report]


def _barrier(world_size: int) -> None:
    if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def run_batch(loaded: LoadedModel, source: str | os.PathLike[str], options: RunOptions) -> RunResult:
    """Reconstruct every input of ``source`` (file, folder or manifest) with ``loaded``.

    Args:
        loaded: The model (:func:`mrirecon.inference.loading.load_reconstructor`).
        source: An input file, a folder of inputs, or a manifest CSV.
        options: How to run (:class:`RunOptions`).

    Returns:
        The :class:`RunResult`; ``failures`` lists the inputs that failed (the run went on).

    Raises:
        DataError: no inputs; ConfigError: bad options, outputs of another model in the way;
        ExportError: the output folder is not writable, the disk is full (finished volumes are kept,
        the one being written is not left behind).
        ConfigError: another run is writing into the output folder (the message names it).
    """
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.perf_counter()
    label = loaded.name if loaded.checkpoint is None else loaded.checkpoint.name
    if loaded.checkpoint is not None and is_pretrained(loaded.checkpoint.stem):
        label = loaded.checkpoint.stem  # the shipped model's name
    # a model that estimates its own maps (E2E-VarNet's learned ones) takes whatever it is given
    if options.coil_maps is not None and not loaded.model.needs_coil_maps():
        warnings.warn(
            Notice(
                f"{label} estimates its own coil maps: the --coil-maps {options.coil_maps} maps are at most "
                "its fallback (cs_l1wavelet: where ESPIRiT finds no calibration block), and its images do "
                "not change with them otherwise"
            ),
            stacklevel=2,
        )
    options = options.for_model(label, loaded.coil_maps if loaded.model.needs_coil_maps() else None)
    options.check_precision(label, learned=loaded.model.trainable)
    max_kspace_gb()  # a bad MRIRECON_MAX_KSPACE_GB stops the run here, not each input
    # no input, no input of the split, a hidden or unsupported file: said before an output folder is made
    list_inputs(source, split=options.split)
    # one writer per output folder: a second run is refused (the ranks of one DDP run share it;
    # its rank 0 holds the lock)
    lock = (
        exclusive_folder(options.output_dir, what="reconstructions")
        if launched_rank() == 0
        else contextlib.nullcontext()
    )
    with lock, _inputs_read_into_memory(), interruptible():
        return _run_batch(loaded, source, options, started, t0)


@contextlib.contextmanager
def _inputs_read_into_memory() -> Iterator[None]:
    """Inputs are read, not memory-mapped, for the run (here and in the DataLoader workers, which
    inherit the environment): an input truncated or replaced while it is read is then a failure of
    that volume (an OSError), not a SIGBUS that kills the run."""
    previous = os.environ.get(NO_MMAP_ENV)
    os.environ[NO_MMAP_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(NO_MMAP_ENV, None)
        else:
            os.environ[NO_MMAP_ENV] = previous


def _run_batch(
    loaded: LoadedModel,
    source: str | os.PathLike[str],
    options: RunOptions,
    started: datetime.datetime,
    t0: float,
) -> RunResult:
    deid = options.dicom_options
    inputs, unnamed = _named_inputs(list_inputs(source, split=options.split), deid)
    outputs = output_paths(inputs, options.output_dir, pseudonym_salt=deid.salt if deid.deidentify else None)
    pseudonyms = {os.fspath(i): o.recon.stem for i, o in zip(inputs, outputs)} if deid.deidentify else {}
    with warnings_by_pseudonym(pseudonyms):
        return _run_listed(loaded, source, options, started, t0, inputs, outputs, pseudonyms, unnamed)


def _named_inputs(listed: list[Path], deid: DicomOptions) -> tuple[list[Path], list[Failure]]:
    """The inputs whose names can be written as text, and a failure for each of the others (a name
    in another encoding than UTF-8: :func:`~mrirecon.data.volume.check_file_name`; a name too long
    for its outputs' names: :func:`~mrirecon.inference.inputs.check_output_name_length`), named by
    its pseudonym in a de-identified run. Refused when no input is left.

    Raises:
        DataError: every input has such a name.
    """
    from mrirecon.data.volume import check_file_name

    inputs: list[Path] = []
    failures: list[Failure] = []
    for path in listed:
        try:
            check_file_name(path)
            if not deid.deidentify:  # (a de-identified run's outputs are named by short pseudonyms)
                check_output_name_length(path)
        except DataError as error:
            if deid.deidentify:  # the name may be the patient's: said by its pseudonym only
                name = file_pseudonym(path_text(path.name), deid.salt)
                failures.append(Failure(name, error.one_line().replace(path_text(path), name), "DataError"))
            else:
                failures.append(Failure(path_text(path), error_text(error), "DataError"))
            continue
        inputs.append(path)
    if not inputs and failures:
        raise DataError(failures[0].error)
    return inputs, failures


def _run_listed(
    loaded: LoadedModel,
    source: str | os.PathLike[str],
    options: RunOptions,
    started: datetime.datetime,
    t0: float,
    inputs: list[Path],
    outputs: list[OutputPaths],
    pseudonyms: dict[str, str],
    unnamed: list[Failure],
) -> RunResult:
    if pseudonyms:
        refuse_identified_outputs(inputs, options)
        if options.deid_mapping is not None:
            write_mapping(options.deid_mapping, pseudonyms)
    elif options.reports:
        refuse_deidentified_folder(options.output_dir / RUN_JSON, options)
    prepare_output_folder(options.output_dir, "reconstructions")
    if options.dicom:
        prepare_output_folder(options.output_dir / DICOM_FOLDER, "DICOM series")
    record = options.output_dir / RUN_JSON
    if options.reports:  # a run killed from here on is not taken for the last one's complete record
        record_status(record, loaded, source, options, started, "running")
    try:
        return _run_started(loaded, source, options, started, t0, inputs, outputs, pseudonyms, unnamed)
    except KeyboardInterrupt:  # before the predict loop (importing Lightning takes seconds), or after
        if options.reports and still_running(record):
            record_status(record, loaded, source, options, started, "interrupted")
        raise


def _run_started(
    loaded: LoadedModel,
    source: str | os.PathLike[str],
    options: RunOptions,
    started: datetime.datetime,
    t0: float,
    inputs: list[Path],
    outputs: list[OutputPaths],
    pseudonyms: dict[str, str],
    unnamed: list[Failure],
) -> RunResult:
    """The run once its run.json says ``running``: the Lightning trainer, the predict loop, the
    last writes and the reports."""
    accelerator, devices = resolve_device(options.device, options.devices)
    with _quiet_lightning():
        import pytorch_lightning as pl

        from mrirecon.inference.lightning import PredictionData, PredictionJob, PredictionModule

        trainer = pl.Trainer(
            accelerator=accelerator,
            devices=devices,
            num_nodes=options.num_nodes,
            strategy="ddp" if options.devices > 1 or options.num_nodes > 1 else "auto",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            use_distributed_sampler=False,
            inference_mode=True,
            precision=options.precision,  # bf16-mixed: predict_step under autocast
            default_root_dir=options.output_dir,
        )
        lightning_leaves_sigterm(trainer)
        distributed = trainer.world_size > 1
        data = PredictionData(PredictionJob(loaded, inputs, outputs, options))
        module = PredictionModule(loaded.model, data)

        def predict() -> None:
            try:
                trainer.predict(module, datamodule=data, return_predictions=False)
            except BaseException:
                if data.runner is not None:
                    data.runner.abort()
                raise

        so_far = partial(counts_so_far, data)
        _judged(predict, loaded, source, options, started, distributed=distributed, counts=so_far)
    runner, plan = data.runner, data.plan
    assert runner is not None and plan is not None
    if not runner.started:  # no batch at all on this rank (everything finished, or DICOM only)
        runner.start(trainer.strategy.root_device)
    # the last volumes are written here: an error of theirs is judged as one during the run
    finished = _judged(
        runner.finish, loaded, source, options, started, distributed=distributed, counts=so_far
    )
    # a peer that was killed (out of memory, say) fails the gather: said in one line, not a bug's
    reports = _judged(
        lambda: _gather(finished, trainer.world_size),
        loaded,
        source,
        options,
        started,
        distributed=distributed,
        counts=so_far,
    )
    failures = unnamed + list(plan.failures) + [f for r in reports for f in r.failures]
    if pseudonyms:  # a de-identified run names no input, not even in its failure reports
        failures = scrubbed_failures(failures, pseudonyms)
        reports = [scrubbed_report(r, pseudonyms) for r in reports]
    result = RunResult(
        inputs=plan.total_inputs + len(unnamed),
        skipped=len(plan.finished),
        reconstructed=sum(len(r.reconstructed) for r in reports),
        exported=sum(len(r.exported) for r in reports),
        failures=sorted(failures, key=lambda f: f.file),
        slices=sum(r.slices for r in reports),
        seconds=time.perf_counter() - t0,
        world_size=trainer.world_size,
        ranks=reports,
    )
    fatal = next((r for r in reports if r.fatal), None)
    if options.reports and trainer.global_rank == 0:
        result.failures_csv = options.output_dir / FAILURES_CSV
        result.run_json = options.output_dir / RUN_JSON
        try:
            write_failures(result.failures_csv, result.failures)
            write_run_json(result.run_json, loaded, source, options, result, started, fatal)
        except ExportError as error:
            if not fatal:
                raise
            # the run stops for another error (reported next); say that the reports are missing too
            warnings.warn(Notice(f"{error.one_line()}; the run's reports were not written"), stacklevel=2)
    # (after the reports are written: a failure here is not recorded over them)
    stoppable(lambda: _barrier(trainer.world_size), worker_hint=WORKER_HINT, distributed=distributed)
    if fatal is not None:
        raise error_from_failure(Failure("", fatal.fatal, fatal.fatal_kind))
    return result


T = TypeVar("T")


def _judged(
    step: Callable[[], T],
    loaded: LoadedModel,
    source: str | os.PathLike[str],
    options: RunOptions,
    started: datetime.datetime,
    *,
    distributed: bool,
    counts: Callable[[], dict[str, int] | None] = lambda: None,
) -> T:
    """``step()``, with the interruptions it reports (and, in a distributed run, a lost peer)
    raised as :func:`~mrirecon.runtime.stoppable` says; a bug (an error no input explains) leaves a
    crash record in run.json, with ``counts()`` of what was done."""
    try:
        return stoppable(step, worker_hint=WORKER_HINT, distributed=distributed)
    except BaseException as error:
        if options.reports:
            status = (
                "interrupted"  # SIGINT, and SIGTERM
                if isinstance(error, KeyboardInterrupt)
                else "aborted"  # refused, or stopped by a fault
                if isinstance(error, MriReconError)
                else "crashed"
            )
            cause = None if status == "interrupted" else error
            record = options.output_dir / RUN_JSON
            record_status(record, loaded, source, options, started, status, cause, counts())
        raise


def run_inference(loaded: LoadedModel, source: str | os.PathLike[str], options: RunOptions) -> RunResult:
    """``mrirecon infer``: reconstruct every input of ``source`` again (no resume, outputs replaced),
    without failures.csv/run.json; any failure is raised once the other inputs are written.

    Raises:
        MriReconError: the error of the input that failed (one input), or a DataError counting the
            failed inputs and giving the first error.
    """
    result = run_batch(loaded, source, options.replace(resume=False, overwrite=True, reports=False))
    if result.failures:
        if result.inputs == 1:
            raise error_from_failure(result.failures[0])
        first = result.failures[0]
        raise DataError(
            f"{len(result.failures)} of {result.inputs} inputs failed; the first: {first.error}",
            hint="the others were written; `mrirecon batch` records every failure in failures.csv",
        )
    return result
