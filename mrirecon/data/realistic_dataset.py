"""Write realistic simulations as fastMRI files: ``mrirecon simulate --anatomy mni`` and ``--anatomy dipy``.

- ``mni``: volumes of neighbouring slices from the realistic simulator
  (:func:`~mrirecon.data.realistic.simulate_realistic_volume`; the training anatomy);
- ``dipy``: the real-anatomy evaluation set (:mod:`mrirecon.data.real_anatomy`), real images
  from another source with a simulated acquisition.

Each file holds the fully sampled k-space, the RSS reference, the lesion labels and table, and
what was drawn: ``mrirecon_snr``, ``mrirecon_noise_std`` and the coil noise covariance
``σ²·Ψ`` as ``mrirecon_noise_covariance_real`` / ``_imag`` (``(C, C)`` float64), all of slice 0,
and each slice's σ as ``mrirecon_noise_std_slices`` (``(S,)``: σ follows each slice's brain signal),
so that a test or a user can check the noise the k-space carries (:func:`noise_covariance_of`).
A ``manifest.csv`` with splits is written beside them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mrirecon.data.fastmri_writer import write_volume
from mrirecon.data.header import build_ismrmrd_header
from mrirecon.data.manifest import build_manifest
from mrirecon.data.realistic import RealisticOptions, RealisticSlice, simulate_realistic_volume
from mrirecon.errors import ConfigError

__all__ = ["ANATOMY_SOURCES", "noise_covariance_of", "simulate_realistic_dataset", "write_realistic_volume"]

#: Anatomy sources of ``mrirecon simulate``: the procedural phantom, the MNI152 template, dipy's real images.
ANATOMY_SOURCES = ("phantom", "mni", "dipy")
SLICE_THICKNESS_MM = 5.0


def noise_covariance_of(attrs: dict[str, Any], slice_index: int = 0) -> np.ndarray | None:
    """The coil noise covariance ``(C, C)`` complex128 of one slice of a realistic file, or None
    when the file does not record it (for a slice other than the first: a file written before the
    per-slice σ, ``mrirecon_noise_std_slices``, was recorded).

    The file records ``σ₀²·Ψ`` (slice 0's); slice ``s`` has ``σ_s²·Ψ``, σ following each slice's
    brain signal (docs/data.md)."""
    real, imag = attrs.get("mrirecon_noise_covariance_real"), attrs.get("mrirecon_noise_covariance_imag")
    if real is None or imag is None:
        return None
    covariance = np.asarray(real, dtype=np.float64) + 1j * np.asarray(imag, dtype=np.float64)
    if slice_index == 0:
        return covariance
    sigmas = attrs.get("mrirecon_noise_std_slices")
    if sigmas is None:
        return None
    sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    return covariance * (sigmas[slice_index] / sigmas[0]) ** 2


def write_realistic_volume(
    path: Path, slices: Sequence[RealisticSlice], *, patient_id: str, source: str, extra: dict[str, Any]
) -> Path:
    """One fastMRI file from slices of one simulated volume (shared array and matrix)."""
    first = slices[0]
    height, width = first.target.shape
    fov = first.params.get("fov_mm", (float(height), float(width)))
    header = build_ismrmrd_header(
        encoded_matrix=(height, width, 1),
        encoded_fov_mm=(float(fov[0]), float(fov[1]), SLICE_THICKNESS_MM),
        protocol_name=str(first.params.get("acquisition", "AXT1")),
        patient_id=patient_id,
        receiver_channels=int(first.kspace.shape[0]),
    )
    lesions = [
        type(les)(
            center=(float(s), les.center[1], les.center[2]),
            radius=les.radius,
            contrast=les.contrast,
            irregularity=les.irregularity,
            depth=les.depth,
            seed=les.seed,
        )
        for s, sl in enumerate(slices)
        for les in sl.lesions
    ]
    labels = np.zeros((len(slices), height, width), dtype=np.int16)
    offset = 0
    for s, sl in enumerate(slices):
        labels[s] = np.where(sl.labels > 0, sl.labels + offset, 0)
        offset += len(sl.lesions)
    covariance = first.noise_covariance
    attrs = {
        "acquisition": str(first.params.get("acquisition", "")),
        "patient_id": patient_id,
        "mrirecon_snr": float(first.snr),
        "mrirecon_noise_std": float(first.noise_std),
        "mrirecon_noise_std_slices": np.array([sl.noise_std for sl in slices], dtype=np.float64),
        "mrirecon_noise_covariance_real": np.real(covariance).astype(np.float64),
        "mrirecon_noise_covariance_imag": np.imag(covariance).astype(np.float64),
        "mrirecon_contrast": str(first.params.get("contrast", "")),
        "mrirecon_coil_array": str(first.params.get("coil_array", "")),
        **extra,
    }
    return write_volume(
        path,
        kspace=np.stack([sl.kspace for sl in slices]),
        header_xml=header,
        reconstruction_rss=np.stack([sl.target for sl in slices]),
        lesion_labels=labels,
        lesion_table=lesions,
        attrs=attrs,
        source=source,
    )


def simulate_realistic_dataset(
    output_dir: str | Path,
    *,
    anatomy: str,
    volumes: int,
    slices: int,
    seed: int,
    options: RealisticOptions | None = None,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    progress: bool = True,
    echo: Callable[[str], object] | None = None,
) -> list[Path]:
    """Write ``volumes`` realistic volumes (``mni``) or the real-anatomy set (``dipy``) and a manifest.

    Args:
        output_dir: The folder (created if needed).
        anatomy: ``mni`` or ``dipy``.
        volumes: Volumes (``mni``); for ``dipy`` the number of acquisitions of the T1 slice.
        slices: Slices per volume (``mni``).
        seed: Seed.
        options: What the ``mni`` simulator randomises (default :class:`RealisticOptions`).
        split: ``(train, val, test)`` fractions; the ``dipy`` set is all ``test``.
        progress: Show a progress bar.
        echo: Where to report what was written.

    Returns:
        The files, in order.
    """
    if volumes < 1 or slices < 1:
        raise ConfigError(f"volumes and slices must be at least 1, got {volumes} and {slices}")
    folder = Path(output_dir)
    paths: list[Path] = []
    if anatomy == "mni":
        options = options or RealisticOptions()
        for index in tqdm(range(volumes), desc="simulate", unit="volume", disable=not progress):
            volume = simulate_realistic_volume(options, (seed, index), slices=slices)
            name = f"sim_mni_{volume[0].params['contrast']}_s{seed}_v{index:03d}"
            paths.append(
                write_realistic_volume(
                    folder / f"{name}.h5",
                    volume,
                    patient_id=f"SIM{seed}-{index:03d}",
                    source=f"mrirecon simulate --anatomy mni --seed {seed} (volume {index})",
                    extra={"mrirecon_seed": int(seed), "mrirecon_volume_index": int(index)},
                )
            )
        fractions = split
    elif anatomy == "dipy":
        from mrirecon.data.real_anatomy import real_anatomy_volumes

        for index, (name, volume) in enumerate(real_anatomy_volumes(seed, repeats=volumes)):
            paths.append(
                write_realistic_volume(
                    folder / f"{name}_s{seed}.h5",
                    volume,
                    patient_id=f"REAL{seed}-{index:03d}",
                    source=f"mrirecon simulate --anatomy dipy --seed {seed}: {name}, simulated coils",
                    extra={"mrirecon_seed": int(seed), "mrirecon_volume_index": int(index)},
                )
            )
        fractions = (0.0, 0.0, 1.0)
    else:
        raise ConfigError(f"unknown anatomy '{anatomy}'", hint=f"choose one of {', '.join(ANATOMY_SOURCES)}")
    manifest = folder / "manifest.csv"
    build_manifest(paths, manifest, fractions=fractions, seed=seed, progress=False)
    if echo is not None:
        echo(f"wrote {len(paths)} volumes and {manifest}")
    return paths
