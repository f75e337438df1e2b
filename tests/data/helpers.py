"""Shared helpers of the data tests: small fastMRI files, synthetic ISMRMRD raw files, image checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import ismrmrd
import matplotlib
import numpy as np
import torch

from mrirecon.data.fastmri_writer import write_volume
from mrirecon.data.header import EncodingLimits, build_ismrmrd_header, rewrite_encoding
from mrirecon.physics import fft2c, ifft2c, rss
from tests.evaluation.synthetic import coil_maps as smooth_maps

matplotlib.use("Agg")


def disc_image(slices: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth object (a few discs on an ellipse) ``(S, H, W)`` complex64 with a smooth phase."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    y, x = (yy - height / 2) / (height / 2), (xx - width / 2) / (width / 2)
    out = np.zeros((slices, height, width), dtype=np.complex64)
    for s in range(slices):
        image = np.where((x / 0.7) ** 2 + (y / 0.8) ** 2 <= 1, 0.6, 0.0)
        for _ in range(3):
            cy, cx, r = rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(0.08, 0.2)
            image = np.where((x - cx) ** 2 + (y - cy) ** 2 <= r**2, rng.uniform(0.2, 1.0), image)
        out[s] = image * np.exp(1j * (0.5 * x + 0.3 * y + 0.1 * s))
    return out


def multicoil_kspace(
    slices: int = 3, coils: int = 4, height: int = 32, width: int = 24, seed: int = 0
) -> np.ndarray:
    """Fully sampled k-space ``(S, C, H, W)`` of :func:`disc_image` with :func:`smooth_maps`."""
    image = disc_image(slices, height, width, seed)
    maps = smooth_maps(coils, height, width)
    return fft2c(torch.from_numpy(image[:, None] * maps[None])).numpy()


def rss_target(kspace: np.ndarray, crop: tuple[int, int] | None = None) -> np.ndarray:
    """RSS reference ``(S, h, w)`` of fully sampled ``(S, C, H, W)`` k-space, centre-cropped."""
    image = rss(ifft2c(torch.from_numpy(kspace)), dim=1).numpy().astype(np.float32)
    if crop is None:
        return image
    r0, c0 = (image.shape[1] - crop[0]) // 2, (image.shape[2] - crop[1]) // 2
    return np.ascontiguousarray(image[:, r0 : r0 + crop[0], c0 : c0 + crop[1]])


def write_fastmri(path: Path, kspace: np.ndarray, *, crop: tuple[int, int] | None = None, **kwargs) -> Path:
    """A fully sampled fastMRI file of ``kspace`` with its RSS reference (other items via kwargs)."""
    height, width = kspace.shape[-2:]
    crop = crop or (height, width)
    header = kwargs.pop(
        "header_xml",
        build_ismrmrd_header(encoded_matrix=(height, width, 1), recon_matrix=(crop[0], crop[1], 1)),
    )
    target = kwargs.pop("reconstruction_rss", rss_target(kspace, crop) if kspace.ndim == 4 else None)
    kwargs.setdefault("attrs", {"acquisition": "AXT1", "patient_id": path.stem})
    return write_volume(path, kspace=kspace, header_xml=header, reconstruction_rss=target, **kwargs)


def raw_h5(path: Path, **datasets: object) -> Path:
    """An HDF5 file with exactly the given datasets (for malformed inputs)."""
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f.create_dataset(name, data=value)
    return path


# ------------------------------------------------------------------ ISMRMRD raw


def write_ismrmrd(
    path: Path,
    coil_images: np.ndarray,
    *,
    lines: np.ndarray,
    e1_center: int,
    noise_covariance: np.ndarray | None = None,
    noise_samples: int = 512,
    calibration: set[int] = frozenset(),  # type: ignore[assignment]
    reverse: set[int] = frozenset(),  # type: ignore[assignment]
    seed: int = 0,
    position: tuple[float, float, float] = (1.0, 2.0, 3.0),
) -> np.ndarray:
    """An ISMRMRD raw file of 2× readout-oversampled coil images ``(C, 2X, Y)``.

    Args:
        lines: Encoding indices ``e1`` measured (counter values, before the partial Fourier shift).
        e1_center: The encoding-limits centre; line ``e1`` sits at ``e1 + Y/2 − e1_center``.
        noise_covariance: ``(C, C)``: coil noise added to every readout and one noise readout
            (dwell 4× the imaging dwell); None for noiseless data without a noise readout.
        calibration: Lines flagged calibration-only.
        reverse: Lines stored reversed (flag ACQ_IS_REVERSE).

    Returns:
        The coil k-space ``(C, 2X, Y)`` written (noise included), on the full grid.
    """
    coils, size_x, size_y = coil_images.shape
    kspace = fft2c(torch.from_numpy(coil_images.astype(np.complex64))).numpy()
    rng = np.random.default_rng(seed)
    if noise_covariance is not None:
        factor = np.linalg.cholesky(noise_covariance)
        white = rng.standard_normal((2, coils, size_x, size_y))
        kspace = kspace + (factor @ ((white[0] + 1j * white[1]) / np.sqrt(2)).reshape(coils, -1)).reshape(
            kspace.shape
        ).astype(np.complex64)
    xml = build_ismrmrd_header(
        encoded_matrix=(size_x, size_y, 1),
        recon_matrix=(size_x // 2, size_y, 1),
        encoded_fov_mm=(2 * 200.0, 150.0, 5.0),
        recon_fov_mm=(200.0, 150.0, 5.0),
        e1_limits=EncodingLimits(0, int(max(lines)), e1_center),
        patient_id="RAW-1",
        protocol_name="TESTRAW",
        receiver_channels=coils,
    )
    xml = rewrite_encoding(
        xml,
        encoded_matrix=(size_x, size_y, 1),
        encoded_fov_mm=(400.0, 150.0, 5.0),
        recon_matrix=(size_x // 2, size_y, 1),
        recon_fov_mm=(200.0, 150.0, 5.0),
    )
    offset = size_y // 2 - e1_center
    path.unlink(missing_ok=True)
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    dataset.write_xml_header(xml)
    if noise_covariance is not None:
        factor = np.linalg.cholesky(noise_covariance / 4.0)  # dwell 4× longer: a quarter of the power
        white = rng.standard_normal((2, coils, noise_samples))
        noise = (factor @ ((white[0] + 1j * white[1]) / np.sqrt(2))).astype(np.complex64)
        acq = ismrmrd.Acquisition.from_array(noise)
        acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        acq.sample_time_us = 10.0
        dataset.append_acquisition(acq)
    for e1 in lines:
        data = kspace[:, :, int(e1) + offset]
        if e1 in reverse:
            data = data[:, ::-1]
        acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(data))
        acq.idx.kspace_encode_step_1 = int(e1)
        acq.center_sample = size_x // 2  # in forward order, also for reversed readouts
        acq.sample_time_us = 2.5
        acq.position[:] = position
        acq.read_dir[:] = (1.0, 0.0, 0.0)
        acq.phase_dir[:] = (0.0, 1.0, 0.0)
        acq.slice_dir[:] = (0.0, 0.0, 1.0)
        if e1 in reverse:
            acq.set_flag(ismrmrd.ACQ_IS_REVERSE)
        if e1 in calibration:
            acq.set_flag(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
        dataset.append_acquisition(acq)
    dataset.close()
    return kspace


# ------------------------------------------------------------------ images


def rewrite_acquisitions(
    path: Path, rewrite: Callable[[list[ismrmrd.Acquisition]], list[ismrmrd.Acquisition]]
) -> None:
    """Write the ISMRMRD file ``path`` again: its header, and the acquisitions ``rewrite`` makes of
    its own (moved to other frames, duplicated, changed)."""
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    xml = dataset.read_xml_header()
    acquisitions = [dataset.read_acquisition(n) for n in range(dataset.number_of_acquisitions())]
    dataset.close()
    path.unlink()
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    dataset.write_xml_header(xml)
    for acq in rewrite(acquisitions):
        dataset.append_acquisition(acq)
    dataset.close()


def save_png(path: Path, image: np.ndarray) -> Path:
    """Write a magnitude image as an 8-bit grey PNG (min-max scaled)."""
    import matplotlib.pyplot as plt

    plt.imsave(path, image, cmap="gray")
    return path


def _lag_correlation(image: np.ndarray) -> float:
    centred = image - image.mean()
    rows = (centred[:-1] * centred[1:]).mean()
    cols = (centred[:, :-1] * centred[:, 1:]).mean()
    return float((rows + cols) / 2 / max(centred.var(), 1e-12))


def image_statistics(image: np.ndarray) -> dict[str, float]:
    """Neighbour correlation, object fraction and object/background contrast of an image in [0, 1]."""
    low, high = np.percentile(image, 1), np.percentile(image, 99)
    threshold = low + 0.25 * (high - low)
    bright = image > threshold
    return {
        "std": float(image.std()),
        "neighbour_correlation": _lag_correlation(image),
        "object_fraction": float(bright.mean()),
        "contrast": float(image[bright].mean() / max(image[~bright].mean(), 1e-3)) if bright.any() else 0.0,
    }


def assert_plausible_png(path: Path) -> dict[str, float]:
    """The PNG is neither blank nor noise: an object on a dark background, spatially smooth.

    Its statistics are compared with those of a noise image of the same histogram (the pixels
    shuffled): neighbouring pixels of a real image are strongly correlated, of noise not at all.
    """
    import matplotlib.pyplot as plt

    image = plt.imread(path)[..., :3].mean(axis=-1)
    stats = image_statistics(image)
    shuffled = np.random.default_rng(0).permutation(image.reshape(-1)).reshape(image.shape)
    noise_stats = image_statistics(shuffled)
    assert stats["std"] > 0.05, f"the image is blank: {stats}"
    assert stats["neighbour_correlation"] > 0.8, f"the image looks like noise: {stats}"
    assert abs(noise_stats["neighbour_correlation"]) < 0.1, noise_stats
    assert 0.05 < stats["object_fraction"] < 0.9, f"no object on a background: {stats}"
    assert stats["contrast"] > 3.0, f"object and background hardly differ: {stats}"
    return stats
