"""The real files of ../shared/data: the Siemens ISMRMRD phantom and SigPy's Poisson-disc brain.

Acceptance: both convert/load and reconstruct zero-filled to a plausible image (a PNG written in
the test's temporary folder is neither blank nor noise).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mrirecon.data.dataset import SliceDataset
from mrirecon.data.ismrmrd_raw import whitening_matrix
from mrirecon.data.transforms import ReconTransform
from mrirecon.data.volume import open_volume
from mrirecon.masks import describe_mask
from mrirecon.physics import ifft2c, rss
from mrirecon_cli.main import cli
from tests.data.helpers import assert_plausible_png, save_png

NHLBI = Path("nhlbi_ismrmrd_snr_r3") / "meas_MID00349_FID09273_SNR_R3.h5"
BRAIN = Path("sigpy_tutorial_brain_poisson") / "cartesian_ksp.npy"


def _zero_filled(kspace: np.ndarray) -> np.ndarray:
    return rss(ifft2c(torch.from_numpy(kspace)), dim=0).numpy()


def test_siemens_ismrmrd_converts_and_reconstructs(shared_data: Path, tmp_path: Path) -> None:
    output = tmp_path / "nhlbi.h5"
    result = CliRunner().invoke(cli, ["convert", str(shared_data / NHLBI), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert "1 slice(s) × 14 coil(s) × 192 × 144, undersampled (1d mask" in result.output
    with open_volume(output) as volume:
        assert volume.kspace_shape == (14, 192, 144) and volume.num_slices == 1
        assert volume.mask is not None
        lines = np.flatnonzero(volume.mask)
        # lines 0..105 placed at +18 (partial Fourier); R = 3 outside the 48 embedded calibration lines
        assert lines[0] == 18 and lines[-1] == 123 and volume.padding == (18, 124)
        assert set(range(18 + 30, 18 + 78)) <= set(lines) and 18 + 1 not in lines
        assert describe_mask(volume.mask).num_low_frequencies >= 48
        header = volume.header
        assert (
            header is not None and header.encoded_matrix == (192, 144, 1) and header.crop_size == (192, 144)
        )
        assert header.vendor == "SIEMENS" and header.frame_of_reference_uid.startswith("1.3.12.2.1107.5.2.19")
        assert header.study_date == "2019-03-14" and volume.acquisition == "SNR_R3"
        assert volume.geometry is not None
        np.testing.assert_allclose(volume.geometry["read_dir"], [[-1.0, 0.0, 0.0]], atol=1e-6)
        np.testing.assert_allclose(volume.geometry["position"], [[20.048, 66.570, 0.0]], atol=1e-3)
        image = _zero_filled(volume.read_kspace(0))
    with h5py.File(output) as f:
        assert f["geometry/slice_dir"].shape == (1, 3) and f.attrs["mrirecon_prewhitened"]
    assert_plausible_png(save_png(tmp_path / "nhlbi_zero_filled.png", image))


def test_siemens_noise_is_whitened(shared_data: Path) -> None:
    """The one noise readout (14 × 384 samples, condition number about 5.7) becomes white."""
    with h5py.File(shared_data / NHLBI) as f:
        row = f["dataset/data"][0]
    noise = row["data"].view(np.complex64).reshape(14, 384)
    covariance = noise @ noise.conj().T / 384
    assert 4.0 < np.linalg.cond(covariance) < 8.0
    matrix = whitening_matrix(noise)
    white = matrix @ noise
    np.testing.assert_allclose(white @ white.conj().T / 384, np.eye(14), atol=1e-3)


def test_sigpy_poisson_brain_loads_with_its_own_mask(shared_data: Path, tmp_path: Path) -> None:
    with open_volume(shared_data / BRAIN) as volume:
        assert (
            volume.kspace_shape == (8, 230, 180)
            and volume.mask is not None
            and volume.mask.shape == (230, 180)
        )
        info = describe_mask(volume.mask)
        assert info.kind == "2d" and info.sampled_fraction == pytest.approx(0.124, abs=0.002)
        assert info.acs_shape[0] >= 20 and info.acs_shape[1] >= 20  # the fully sampled calibration region
        kspace = volume.read_kspace(0)
        assert ((kspace != 0).any(axis=0) == volume.mask).all()
        image = _zero_filled(kspace)
        sample = ReconTransform(coil_maps="acs")(volume, 0)
    # the sample keeps the measured samples (scaled) and the prospective mask
    assert sample.mask.shape == (1, 230, 180) and sample.acceleration == pytest.approx(8.04, abs=0.01)
    restored = sample.masked_kspace.numpy() * sample.scale
    np.testing.assert_allclose(restored, kspace, rtol=1e-5, atol=1e-6 * np.abs(kspace).max())
    assert sample.target.abs().sum() == 0 and sample.max_value == 0  # no reference exists
    maps = sample.coil_maps
    energy = (maps.abs() ** 2).sum(0)
    assert torch.allclose(energy[energy > 0], torch.ones(()), atol=1e-4)
    assert_plausible_png(save_png(tmp_path / "brain_zero_filled.png", image))


@pytest.mark.slow
def test_sigpy_brain_espirit_maps(shared_data: Path) -> None:
    """ESPIRiT from the Poisson-disc calibration region, served through a dataset."""
    dataset = SliceDataset(shared_data / BRAIN, ReconTransform(coil_maps="espirit"))
    sample = dataset[0]
    energy = (sample.coil_maps.abs() ** 2).sum(0)
    inside = energy > 0
    assert 0.3 < inside.float().mean() < 0.95  # the head, not the background
    assert torch.allclose(energy[inside], torch.ones(()), atol=1e-4)
