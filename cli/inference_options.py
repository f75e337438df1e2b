"""Options shared by ``mrirecon infer`` and ``mrirecon batch`` (undersampling, device, DICOM)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

MASK_TYPES = [
    "random",
    "equispaced",
    "equispaced_fraction",
    "magic",
    "magic_fraction",
    "gaussian1d",
    "gaussian2d",
    "poisson2d",
]

_OPTIONS = [
    click.option(
        "--dicom", is_flag=True, help="Also export one DICOM series per volume (OUTPUT_DIR/dicom/NAME/)."
    ),
    click.option(
        "--deidentify",
        is_flag=True,
        help="De-identify everything the run writes: DICOM (names, IDs, dates; UIDs hashed), the HDF5's "
        "header and attributes, file and folder names (pseudonyms), run.json and failures.csv.",
    ),
    click.option(
        "--deid-salt",
        envvar="MRIRECON_DEID_SALT",
        default="",
        show_envvar=True,
        help="Secret mixed into pseudonyms and UIDs with --deidentify (prefer the environment variable).",
    ),
    click.option(
        "--deid-mapping",
        type=click.Path(dir_okay=False, path_type=Path),
        help="With --deidentify: write which input became which pseudonym to this CSV "
        "(keep it apart from the outputs; without it no mapping is written).",
    ),
    click.option(
        "--allow-unsalted",
        is_flag=True,
        help="Allow --deidentify without a salt (pseudonyms anyone can recompute from the patient ID).",
    ),
    click.option(
        "--uid-root",
        default="1.2.826.0.1.3680043.8.498.",
        show_default=True,
        help="Your organisation's UID root for the generated DICOM UIDs.",
    ),
    click.option(
        "--mask",
        "mask_type",
        type=click.Choice(MASK_TYPES),
        help="Undersample fully sampled input retrospectively with this mask (seeded from the file name).",
    ),
    click.option("--acceleration", type=float, help="Acceleration R of --mask."),
    click.option("--center-fraction", type=float, help="Fully sampled centre fraction of --mask [0.32 / R]."),
    click.option(
        "--coil-maps",
        type=click.Choice(["acs", "espirit", "none"]),
        help="Coil-sensitivity estimation (none: for models that estimate their own, e.g. e2e_varnet) "
        "[default: the method the model was trained with (acs for the pretrained models), else acs; "
        "another than a model's own is refused].",
    ),
    click.option(
        "--model-config",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Config of a model given by name: a YAML file or a config name (cs_l1wavelet, sense).",
    ),
    click.option(
        "--batch-size", type=click.IntRange(1), default=8, show_default=True, help="Slices per forward pass."
    ),
    click.option(
        "--num-workers",
        "--workers",
        "workers",
        type=click.IntRange(0),
        default=2,
        show_default=True,
        help="DataLoader processes reading slices (the training config's data.num_workers).",
    ),
    click.option("--split", help="With a manifest: only this split (train, val, test)."),
    click.option(
        "--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N."
    ),
    click.option(
        "--precision",
        type=click.Choice(["32", "bf16-mixed"]),
        default="32",
        show_default=True,
        help="bf16-mixed: a learned model's convolutions in bfloat16 (the physics stays complex64), for "
        "GPUs and CPUs with bfloat16 instructions (CIRIM 1.8x as fast on an AMX Xeon; PSNR within 0.01 dB).",
    ),
    click.option("--npy-axes", help='Axis order of .npy inputs, e.g. "slices,coils,kx,ky".'),
    click.option(
        "--frame",
        help="Of ISMRMRD raw inputs with several contrasts (echoes), repetitions, phases or sets: the one "
        "to reconstruct, NAME=N,... (e.g. contrast=1 or set=1,repetition=2; others 0) [default: the "
        "first of each].",
    ),
    click.option("--no-progress", is_flag=True, help="No progress bar."),
]


def inference_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared options to a click command."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def run_options(output_dir: Path, **kwargs: Any) -> Any:
    """Build :class:`mrirecon.inference.RunOptions` from the shared options (and any extra ones)."""
    from mrirecon.export import DicomOptions
    from mrirecon.inference import RunOptions, Undersampling
    from mrirecon_cli.options import parse_frame

    return RunOptions(
        output_dir=output_dir,
        dicom=kwargs.pop("dicom"),
        dicom_options=DicomOptions(
            deidentify=kwargs.pop("deidentify"),
            salt=kwargs.pop("deid_salt"),
            uid_root=kwargs.pop("uid_root"),
            allow_unsalted=kwargs.pop("allow_unsalted"),
        ),
        undersampling=Undersampling(
            kwargs.pop("mask_type"), kwargs.pop("acceleration"), kwargs.pop("center_fraction")
        ),
        coil_maps=kwargs.pop("coil_maps"),
        batch_size=kwargs.pop("batch_size"),
        workers=kwargs.pop("workers"),
        device=kwargs.pop("device"),
        precision=kwargs.pop("precision"),
        npy_axes=kwargs.pop("npy_axes"),
        frame=None if (frame := kwargs.pop("frame")) is None else parse_frame(frame),
        progress=not kwargs.pop("no_progress"),
        **kwargs,
    )


def summary(result: Any) -> str:
    """One line about a run (counts and time; no identifiers)."""
    parts = [
        f"reconstructed {result.reconstructed} volume(s) "
        f"({result.slices} slice{'s' if result.slices != 1 else ''}) in {result.seconds:.1f} s"
    ]
    if result.skipped:
        parts.append(f"skipped {result.skipped} finished")
    if result.exported:
        parts.append(f"exported {result.exported} DICOM series from finished reconstructions")
    if result.failures:
        parts.append(f"{len(result.failures)} failed")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."  # str.capitalize would lower "DICOM"
