"""The main job end to end, on data mrirecon makes itself.

Steps, each reused when a previous run of the same output folder finished it:

1. simulate a multi-coil brain dataset on real brain anatomy (the realistic simulator: random
   contrast, surface or birdcage coils, correlated noise, hypo- and hyperintense lesions), fastMRI
   HDF5 + manifest;
2. fine-tune the shipped pretrained CIRIM (``cirim-brain``) on its training volumes for a few steps
   (training working, in minutes on a CPU); optionally train models from scratch
   (``configs/<model>_synthetic.yaml``);
3. batch-reconstruct the test volumes, retrospectively undersampled, with the pretrained CIRIM as
   shipped, the fine-tuned one, and the classical baselines (zero-filled, SENSE, L1-wavelet CS);
4. evaluate them: fastMRI SSIM/PSNR/NMSE, lesion contrast, the HTML report;
5. export one volume of the pretrained CIRIM as a DICOM series and validate it;
6. print a results table and where every output is.

A GPU is used when one is present (training and inference).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrirecon.config import find_config
from mrirecon.errors import ConfigError, DataError
from mrirecon.models.pretrained import is_pretrained
from mrirecon.pipeline.settings import DemoPaths, DemoSettings

__all__ = ["DemoResult", "find_training_config", "run_demo"]

FINETUNED = "finetuned"
LABELS = {
    "cirim-brain": "CIRIM (pretrained)",
    "rim-brain": "RIM (pretrained)",
    "recurrentvarnet-brain": "RecurrentVarNet (pretrained)",
    FINETUNED: "CIRIM (fine-tuned)",
    "zero_filled": "zero-filled",
    "sense": "SENSE",
    "cs_l1wavelet": "CS (L1-wavelet)",
    "cirim": "CIRIM",
    "rim": "RIM",
    "recurrentvarnet": "RecurrentVarNet",
}


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced.

    Attributes:
        rows: One per model: label, ssim, psnr, nmse, lesions preserved/total, seconds per volume.
        report: The evaluation's HTML report.
        dicom: The validated DICOM series folder.
        dicom_tools: What validated it (``pydicom``, ``dciodvfy``).
        figure: The comparison picture.
        seconds: Wall time of this run.
    """

    rows: list[dict[str, Any]]
    report: Path
    dicom: Path
    dicom_tools: tuple[str, ...]
    figure: Path
    seconds: float


def find_training_config(model: str) -> Path:
    """``<model>_synthetic.yaml`` from ``$MRIRECON_CONFIGS``, ``./configs`` or the configs installed
    with mrirecon (:func:`mrirecon.config.find_config`)."""
    return find_config(f"{model}_synthetic", what="training config")


def _check_state(paths: DemoPaths, settings: DemoSettings) -> dict[str, Any]:
    state = paths.read_state()
    if state.get("data") not in (None, settings.data_key()) or (
        paths.manifest.exists() and "data" not in state
    ):
        raise ConfigError(
            "this folder holds a demo run with other data settings",
            path=paths.root,
            hint="choose another --output-dir, or add --fresh to start over in this one",
        )
    return state


def _simulate(
    paths: DemoPaths, settings: DemoSettings, state: dict[str, Any], echo: Callable[[str], object]
) -> None:
    from mrirecon.data.realistic import RealisticOptions
    from mrirecon.data.simulate import LesionOptions, simulate_dataset

    if paths.manifest.is_file() and state.get("data") == settings.data_key():
        echo(f"[1/5] data: reusing {paths.manifest}")
        return
    width = settings.width or settings.size
    what = "real brain anatomy (MNI152), random contrast" if settings.anatomy == "mni" else "brain phantom"
    echo(
        f"[1/5] data: simulating {settings.volumes} volumes ({settings.slices} slices, "
        f"{settings.coils} coils, {settings.size}×{width}, {what}, hypo- and hyperintense lesions) "
        f"into {paths.data}"
    )
    realistic = RealisticOptions(
        rows=(settings.size, settings.size),
        aspect=(width / settings.size, width / settings.size),
        multiple=1,
        coils=(settings.coils, settings.coils),
        orientations=("axial",),
        lesion_probability=1.0,
        lesion_count=(2, 4),
        lesion_radius_mm=settings.lesion_radius_mm,
    )
    simulate_dataset(
        paths.data,
        volumes=settings.volumes,
        slices=settings.slices,
        coils=settings.coils,
        size=(settings.size, width),
        seed=settings.seed,
        lesions=LesionOptions(radius_mm=settings.lesion_radius_mm),
        split=settings.split,
        overwrite=True,  # the demo owns its data folder (a run killed while simulating left files)
        anatomy=settings.anatomy,
        realistic=realistic,
    )
    state["data"] = settings.data_key()
    paths.write_state(state)


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _data_overrides(paths: DemoPaths, settings: DemoSettings) -> list[str]:
    return [
        f"data.manifest={paths.manifest.resolve()}",
        "data.synthetic=null",
        "data.simulation=null",
        f"data.mask.type={settings.mask}",
        f"data.mask.accelerations=[{settings.acceleration}]",
        f"data.mask.center_fractions=[{settings.center_fraction}]",
        f"trainer.seed={settings.seed}",
    ]


def _training_slices(paths: DemoPaths, settings: DemoSettings) -> int:
    """Slices of the simulated dataset's training split (one optimiser step each, batch 1)."""
    from mrirecon.data.manifest import read_manifest

    return max(1, sum(entry.split == "train" for entry in read_manifest(paths.manifest)) * settings.slices)


def _finetune_overrides(paths: DemoPaths, settings: DemoSettings) -> list[str]:
    """A short fine-tune of ``settings.finetune`` on the demo's training volumes."""
    return [
        *_data_overrides(paths, settings),
        f"model.init={settings.finetune}",
        "data.num_workers=0",
        "optim.lr=1.0e-4",
        "optim.scheduler=constant",
        "optim.warmup_steps=0",
        # finetune_steps optimiser steps over as many epochs as they need (a batch limit would stop
        # at one epoch, fewer steps than asked); validated at the end, so the best model is kept
        f"trainer.max_steps={settings.finetune_steps}",
        f"trainer.max_epochs={math.ceil(settings.finetune_steps / _training_slices(paths, settings))}",
        "trainer.log_every_n_steps=1",
        "trainer.progress_bar=false",
    ]


def _train(
    paths: DemoPaths, settings: DemoSettings, model: str, state: dict[str, Any], echo: Callable[[str], object]
) -> Path:
    from mrirecon.runtime import lightning_info_silenced
    from mrirecon.training.config import load_train_config
    from mrirecon.training.run import run_paths, train

    run = run_paths(paths.run(model))
    record = state.setdefault("training", {})
    if model == FINETUNED:
        assert settings.finetune is not None
        config_path = find_config(f"pretrained/{settings.finetune.replace('-', '_')}", what="training recipe")
        overrides = _finetune_overrides(paths, settings)
    else:
        config_path = find_training_config(model)
        overrides = [*_data_overrides(paths, settings), *settings.overrides_for(model)]
        if settings.epochs is not None:
            overrides.append(f"trainer.max_epochs={settings.epochs}")
    if _gpu():
        overrides += ["trainer.accelerator=gpu", "trainer.devices=1"]
    if run.model.is_file() and record.get(model, {}).get("overrides") == overrides:
        echo(f"      {LABELS[model]}: reusing {run.model}")
        return run.model
    config = load_train_config(config_path, overrides)
    resume = run.last.is_file() and record.get(model, {}).get("overrides") == overrides
    echo(f"      {LABELS[model]}: {'resuming' if resume else 'training'} with {config_path} into {run.root}")
    if not resume and run.root.exists():
        shutil.rmtree(run.root)  # an earlier run with other settings, or one that never checkpointed
    record[model] = {"overrides": overrides, "finished": False}
    paths.write_state(state)
    start = time.perf_counter()
    with lightning_info_silenced():  # the demo prints its own summary of the run
        result = train(config, output_dir=run.root, resume=resume, echo=echo)
    val = result.val_metrics
    record[model] = {
        "overrides": overrides,
        "finished": True,
        "seconds": round(time.perf_counter() - start, 1),
        "val_ssim": val.get("val_ssim"),
        "val_ssim_zero_filled": val.get("val_ssim_zero_filled"),
    }
    paths.write_state(state)
    if "val_ssim" in val and "val_ssim_zero_filled" in val:
        echo(
            f"      {LABELS[model]}: validation SSIM {val['val_ssim']:.4f} "
            f"(zero-filled {val['val_ssim_zero_filled']:.4f}) in {record[model]['seconds']:.0f} s"
        )
    if not run.model.is_file():
        raise DataError("training finished without writing the model file", path=run.model)
    return run.model


def _reconstruct(
    paths: DemoPaths,
    settings: DemoSettings,
    model: str,
    checkpoint: Path | None,
    state: dict[str, Any],
    echo: Callable[[str], object],
) -> None:
    from mrirecon.inference import RunOptions, Undersampling, load_reconstructor, run_batch

    config = None
    if model == "cs_l1wavelet" and settings.size < 96:
        # The ACS coil maps every model gets: a tiny image's 16 % centre (the quick demo's 8 lines)
        # holds no useful ESPIRiT calibration block.
        config = paths.root / "cs_l1wavelet.yaml"
        config.write_text("model: cs_l1wavelet\ncoil_maps: given\n")
    loaded = load_reconstructor(checkpoint if checkpoint is not None else model, model_config=config)
    if is_pretrained(model) and loaded.checkpoint is not None:
        echo(f"      {LABELS[model]}: {loaded.checkpoint.name}, as shipped")
    options = RunOptions(
        output_dir=paths.recon(model),
        undersampling=Undersampling(settings.mask, float(settings.acceleration), settings.center_fraction),
        split="test",
        workers=0,
        batch_size=4,
        overwrite=True,
        progress=False,
    )
    result = run_batch(loaded, paths.manifest, options)
    if not result.ok:
        first = result.failures[0]
        raise DataError(f"{len(result.failures)} volume(s) failed, first: {first}", path=result.failures_csv)
    timing = state.setdefault("inference_seconds", {})
    if result.reconstructed:
        timing[model] = result.seconds / result.reconstructed
        paths.write_state(state)
        echo(
            f"      {LABELS[model]}: {_volumes(result.reconstructed)} in {result.seconds:.1f} s "
            f"→ {paths.recon(model)}"
        )
    else:
        echo(f"      {LABELS[model]}: reusing {_volumes(result.skipped)} in {paths.recon(model)}")


def _volumes(count: int) -> str:
    return f"{count} volume{'s' if count != 1 else ''}"


def run_demo(
    output_dir: str | Path,
    settings: DemoSettings | None = None,
    *,
    fresh: bool = False,
    echo: Callable[[str], object] = print,
) -> DemoResult:
    """Run the demo into ``output_dir`` (reusing finished steps) and print its results.

    Raises:
        ConfigError: the folder holds a run with other data settings; a training config is missing.
        DataError: a reconstruction failed or the DICOM series is not valid.
    """
    from mrirecon.evaluation.evaluate import EvaluationOptions, evaluate
    from mrirecon.evaluation.volumes import list_targets
    from mrirecon.export.dicom import DicomOptions, export_dicom
    from mrirecon.export.validate import validate_series
    from mrirecon.pipeline.figure import comparison_figure
    from mrirecon.pipeline.report import results_rows, results_table

    settings = settings or DemoSettings()
    paths = DemoPaths(Path(output_dir))
    start = time.perf_counter()
    if fresh and paths.root.exists():
        shutil.rmtree(paths.root)
    state = _check_state(paths, settings)
    echo(f"mrirecon demo → {paths.root} ({'GPU' if _gpu() else 'CPU'})")
    _simulate(paths, settings, state, echo)

    trained = [*([FINETUNED] if settings.finetune else []), *settings.models]
    what = [
        *(
            [f"fine-tuning {settings.finetune} ({settings.finetune_steps} steps)"]
            if settings.finetune
            else []
        ),
        *(f"training {LABELS[m]}" for m in settings.models),
    ]
    echo(f"[2/5] {', '.join(what) or 'nothing to train'}")
    checkpoints = {model: _train(paths, settings, model, state, echo) for model in trained}

    echo(f"[3/5] reconstructing the test volumes ({settings.mask}, R={settings.acceleration})")
    order = [*settings.pretrained, *trained, *settings.baselines]
    for label in order:
        _reconstruct(paths, settings, label, checkpoints.get(label), state, echo)

    echo("[4/5] evaluating")
    result = evaluate(
        [paths.recon(label) for label in order],
        paths.manifest,
        paths.evaluation,
        EvaluationOptions(labels=tuple(LABELS[label] for label in order), split="test", progress=False),
    )
    rows = results_rows(result, [LABELS[label] for label in order], state.get("inference_seconds", {}), order)
    targets = list_targets(paths.manifest, "test")
    first = order[0]
    figure = comparison_figure(
        targets[0],
        [(LABELS[label], paths.recon(label)) for label in order],
        {row["model"]: row["ssim"] for row in rows},
        paths.figure,
    )

    echo("[5/5] exporting DICOM")
    volume = paths.recon(first) / targets[0].name
    series = export_dicom(volume, paths.dicom / targets[0].stem, DicomOptions(overwrite=True))
    check = validate_series(series.folder)
    if not check.valid:
        raise DataError(
            f"the exported series is not valid: {check.errors[0]} ({len(check.errors)} problems)",
            path=series.folder,
        )
    echo(
        f"      {len(series.files)} images of {targets[0].stem} ({LABELS[first]}), "
        f"valid ({', '.join(check.tools)})"
    )

    echo("")
    for line in results_table(rows, settings, not_visible=result.not_visible):
        echo(line)
    echo("")
    echo(f"data       {paths.manifest}")
    for model in trained:
        echo(f"model      {checkpoints[model]}")
    echo(f"recons     {paths.root / 'recon'}/<model>/")
    echo(f"report     {result.report_html}")
    echo(f"picture    {figure}")
    echo(f"DICOM      {series.folder} ({len(series.files)} files, valid: {', '.join(check.tools)})")
    seconds = time.perf_counter() - start
    echo(f"done in {seconds:.0f} s; run again to reuse these steps, --fresh to redo them")
    return DemoResult(rows, result.report_html, series.folder, check.tools, figure, seconds)
