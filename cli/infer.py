"""``mrirecon infer``: reconstruct a file or a folder with a checkpoint or a classical baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mrirecon_cli.inference_options import inference_options, run_options, summary


@click.command("infer")
@click.argument("checkpoint_or_model")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--output-dir",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the reconstructions (NAME.h5) and, with --dicom, the DICOM series (dicom/NAME/).",
)
@inference_options
def infer(
    checkpoint_or_model: str, input_path: Path, output_dir: Path, model_config: Path | None, **options: Any
) -> None:
    """Reconstruct INPUT (a raw k-space file, a folder of them or a manifest .csv).

    CHECKPOINT_OR_MODEL is a checkpoint (.ckpt from training, .pt or .safetensors model file), the
    name of a shipped pretrained model (cirim-brain, rim-brain, recurrentvarnet-brain: see
    `mrirecon models`) or of a classical baseline (zero_filled, sense, cs_l1wavelet). Every input is
    reconstructed again;
    for thousands of volumes, resuming and failure reports, use `mrirecon batch`.
    """
    from mrirecon.inference import load_reconstructor, run_inference

    run = run_options(output_dir, **options)
    loaded = load_reconstructor(checkpoint_or_model, model_config=model_config)
    result = run_inference(loaded, input_path, run)
    click.echo(f"{summary(result)} Output: {output_dir}")
