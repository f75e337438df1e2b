"""The real raw files of ../shared/data through ``infer --dicom``: a prospectively Poisson-undersampled
NumPy brain and a Siemens ISMRMRD raw file, whose acquisition geometry must reach the DICOM series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from mrirecon.export import read_reconstruction
from mrirecon.inference import RunOptions, load_reconstructor, run_inference
from mrirecon.physics import ifft2c, rss
from tests.export.tools import dciodvfy

pytestmark = pytest.mark.slow


def _infer(path: Path, out: Path, **kwargs) -> Path:
    options = RunOptions(output_dir=out, dicom=True, workers=0, progress=False, device="cpu", **kwargs)
    run_inference(load_reconstructor("zero_filled"), path, options)
    return out / f"{path.stem}.h5"


def test_poisson_undersampled_numpy_brain(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "sigpy_tutorial_brain_poisson" / "cartesian_ksp.npy"
    recon = read_reconstruction(_infer(source, tmp_path, npy_axes="coils,kx,ky"))
    assert recon.shape == (1, 230, 180) and recon.undersampling == "prospective"
    assert recon.acceleration == pytest.approx(1 / 0.124, rel=0.02)  # 12.4 % of the samples
    kspace = torch.from_numpy(np.load(source))
    measured = rss(ifft2c(kspace[None]), dim=1)[0].numpy()  # the input's own intensity scale
    assert recon.zero_filled is not None
    np.testing.assert_allclose(recon.zero_filled[0], measured, atol=1e-5 * measured.max())
    image = recon.reconstruction[0]
    centre, corner = image[90:140, 65:115].mean(), image[:20, :20].mean()
    assert np.isfinite(image).all() and centre > 4 * corner  # a head in the middle, not noise
    ds = pydicom.dcmread(tmp_path / "dicom" / "cartesian_ksp" / "IM_0001.dcm")
    assert "synthetic geometry" in ds.SeriesDescription  # a .npy carries no geometry


def test_ismrmrd_raw_file_keeps_its_scanner_geometry(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "nhlbi_ismrmrd_snr_r3" / "meas_MID00349_FID09273_SNR_R3.h5"
    recon = read_reconstruction(_infer(source, tmp_path))
    assert recon.undersampling == "prospective" and recon.geometry is not None and recon.ismrmrd_header
    files = sorted((tmp_path / "dicom" / source.stem).glob("IM_*.dcm"))
    assert len(files) == recon.shape[0]
    ds = pydicom.dcmread(files[0])
    assert "synthetic" not in ds.SeriesDescription
    np.testing.assert_allclose(
        ds.ImageOrientationPatient, [*recon.geometry.phase_dir[0], *recon.geometry.read_dir[0]], atol=1e-5
    )
    verdict = dciodvfy(files[0])
    assert verdict.errors == [], verdict.output
