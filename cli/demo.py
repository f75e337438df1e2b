"""``mrirecon demo``: the main job end to end on data mrirecon makes itself."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click


@click.command()
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo_output"),
    show_default=True,
    help="Where the demo writes (and, run again, reuses) its outputs.",
)
@click.option(
    "--all-models", is_flag=True, help="Also train small CIRIM, RIM and RecurrentVarNet from scratch."
)
@click.option(
    "--epochs", type=int, default=None, help="Epochs of models trained from scratch [the configs' 8]."
)
@click.option(
    "--finetune-steps",
    type=int,
    default=None,
    help="Optimiser steps of the pretrained CIRIM's fine-tune [default: 24: one pass over its slices].",
)
@click.option("--volumes", type=int, default=None, help="Simulated volumes [default: 10; 60/10/30 % split].")
@click.option("--fresh", is_flag=True, help="Delete the output folder first and redo every step.")
@click.option("--quick", is_flag=True, help="Test size: 5 tiny volumes, tiny models, one epoch (seconds).")
def demo(
    output_dir: Path,
    all_models: bool,
    epochs: int | None,
    finetune_steps: int | None,
    volumes: int | None,
    fresh: bool,
    quick: bool,
) -> None:
    """Simulate, train, batch-reconstruct, evaluate and export DICOM, then print the results.

    \b
    Simulates a multi-coil brain dataset on real brain anatomy with lesions, fine-tunes the
    shipped pretrained CIRIM on it for a few steps (--all-models also trains small models from
    scratch), reconstructs the held-out volumes with the pretrained and fine-tuned CIRIM and with
    zero-filled, SENSE and CS baselines, evaluates them (fastMRI metrics, lesion contrast, an HTML
    report), exports one volume as a DICOM series and validates it. Uses a GPU when one is
    present. Run again to reuse finished steps.
    """
    from mrirecon.pipeline.demo import run_demo
    from mrirecon.pipeline.settings import LEARNED, DemoSettings, quick_settings

    settings = quick_settings() if quick else DemoSettings()
    changes: dict[str, Any] = {}
    if all_models:
        changes["models"] = LEARNED
    if epochs is not None:
        changes["epochs"] = epochs
    if finetune_steps is not None:
        changes["finetune_steps"] = finetune_steps
    if volumes is not None:
        changes["volumes"] = volumes
    run_demo(output_dir, replace(settings, **changes), fresh=fresh, echo=click.echo)
