"""What a de-identified batch run (``--deidentify``) does beyond the export: no input is named.

Its notices name inputs by their pseudonyms (:func:`warnings_by_pseudonym`), and so do its
reports (:func:`scrubbed_report`, :func:`scrubbed_failures`); the input-to-pseudonym mapping is
written only where asked (:func:`write_mapping`); identified and de-identified outputs never share
a folder (:func:`refuse_identified_outputs`, :func:`refuse_deidentified_folder`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

from mrirecon.atomic import export_error
from mrirecon.errors import ConfigError
from mrirecon.export.deidentify import scrub
from mrirecon.export.series_record import record_path
from mrirecon.inference.failures import Failure
from mrirecon.inference.inputs import output_paths
from mrirecon.inference.options import RunOptions
from mrirecon.inference.runner import RankReport
from mrirecon.tables import write_csv
from mrirecon.workers import Display, WarningDisplay

__all__ = [
    "refuse_deidentified_folder",
    "refuse_identified_outputs",
    "scrubbed_failures",
    "scrubbed_report",
    "warnings_by_pseudonym",
    "write_mapping",
]


@contextlib.contextmanager
def warnings_by_pseudonym(pseudonyms: dict[str, str]) -> Iterator[None]:
    """In a de-identified run, warnings and notices (``Note: ...``) name an input by its pseudonym.

    The data layer names the file it reads in its notices; their text is rewritten here, where they
    are shown (:func:`warnings.showwarning`, which the CLI prints as ``Note: ...``), for the whole
    run, DataLoader workers included (forked with it, or spawned with the same display:
    :class:`mrirecon.workers.WorkerSettings`).
    """
    if not pseudonyms:
        yield
        return
    shown = warnings.showwarning
    rewrite = functools.partial(scrub, names=dict(pseudonyms))  # (it pickles, for spawned workers)
    warnings.showwarning = WarningDisplay(Display(rewrite=rewrite), shown)
    try:
        yield
    finally:
        warnings.showwarning = shown


def refuse_identified_outputs(inputs: list[Path], options: RunOptions) -> None:
    """A de-identified run refuses a folder that holds identified outputs of its inputs (named after
    them, from a run without --deidentify): it would leave them beside the pseudonymous ones. With
    ``--overwrite`` they are removed first.

    Raises:
        ConfigError: naming how many and the fix.
    """
    found: list[Path] = []
    for out in output_paths(inputs, options.output_dir):
        found += [p for p in (out.recon, out.dicom, record_path(out.dicom)) if p.exists()]
    if not found:
        return
    if not options.overwrite:
        raise ConfigError(
            f"the output folder holds {len(found)} identified output(s) of these inputs (named after them, "
            "from a run without --deidentify)",
            path=options.output_dir,
            hint="give a de-identified run its own --output-dir, or pass --overwrite to remove them first",
        )
    root = Path(options.output_dir).resolve()
    for path in found:
        if root not in path.resolve().parents:  # never anything outside the output folder
            raise ConfigError(f"{path} is not inside the output folder {root}; nothing was removed")
        try:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        except OSError as error:
            raise export_error(error, path, "identified output") from error


def refuse_deidentified_folder(record: Path, options: RunOptions) -> None:
    """A run without --deidentify refuses a folder a de-identified run wrote (its run record
    ``record``, run.json, says so):
    identified outputs beside the pseudonymous ones would link the two, and run.json would name
    the inputs.

    Raises:
        ConfigError: naming the folder and the fix.
    """
    try:
        previous = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no record (or not one of ours): nothing says the folder is de-identified
    run = ((previous.get("config") or {}).get("run") or {}) if isinstance(previous, dict) else {}
    if isinstance(run, dict) and run.get("deidentify") is True:
        raise ConfigError(
            "the output folder holds a de-identified run's outputs, and this run is not de-identified",
            path=options.output_dir,
            hint="add --deidentify (with the same salt), or give this run its own --output-dir",
        )


def scrubbed_failures(failures: list[Failure], pseudonyms: dict[str, str]) -> list[Failure]:
    """Failure reports naming inputs by their pseudonyms only."""
    return [
        Failure(pseudonyms.get(f.file, scrub(f.file, pseudonyms)), scrub(f.error, pseudonyms), f.kind)
        for f in failures
    ]


def scrubbed_report(report: RankReport, pseudonyms: dict[str, str]) -> RankReport:
    """A rank's report with its inputs named by their pseudonyms."""
    return dataclasses.replace(
        report,
        reconstructed=[pseudonyms.get(p, scrub(p, pseudonyms)) for p in report.reconstructed],
        exported=[pseudonyms.get(p, scrub(p, pseudonyms)) for p in report.exported],
        fatal=scrub(report.fatal, pseudonyms),
    )


def write_mapping(path: Path, pseudonyms: dict[str, str]) -> None:
    """The mapping from inputs to their pseudonyms, only where the user asked for it."""
    rows = [{"input": name, "pseudonym": pseudonym} for name, pseudonym in sorted(pseudonyms.items())]
    write_csv(path, rows, fields=["input", "pseudonym"], what="de-identification mapping")
