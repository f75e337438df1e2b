"""The simulator: determinism, the file layout, normalised coil maps, the SNR asked for, lesions
where their labels say, and anatomy that looks like a brain (tissue contrasts, smooth phase)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import ndimage

from mrirecon.data.lesions import Lesion
from mrirecon.data.manifest import read_manifest, verify_manifest
from mrirecon.data.phantom import TISSUES
from mrirecon.data.simulate import LesionOptions, simulate_dataset, simulate_volume
from mrirecon.data.volume import open_volume
from mrirecon.errors import ConfigError
from mrirecon.evaluation.volumes import read_target

PLANE = np.ones((1, 3, 3), dtype=bool)  # morphology within slices


def test_files_follow_the_fastmri_layout(sim_dataset: list[Path]) -> None:
    assert [p.name for p in sim_dataset] == [f"sim_AXFLAIR_s11_v{i:03d}.h5" for i in range(3)]
    with h5py.File(sim_dataset[0]) as f:
        assert set(f) == {"kspace", "reconstruction_rss", "ismrmrd_header", "lesion_labels"}
        assert f["kspace"].shape == (3, 4, 64, 64) and f["kspace"].dtype == np.complex64
        assert f["reconstruction_rss"].shape == (3, 64, 64) and f["lesion_labels"].dtype == np.int16
        assert f.attrs["max"] == pytest.approx(float(f["reconstruction_rss"][()].max()))
        assert f.attrs["acquisition"] == "AXFLAIR" and f.attrs["patient_id"] == "SIM11-000"
        table = [Lesion(**{**d, "center": tuple(d["center"])}) for d in json.loads(f.attrs["lesion_table"])]
        assert len(table) >= 1 and int(f["lesion_labels"][()].max()) == len(table)
    target = read_target(sim_dataset[0])  # the evaluation layer reads what the simulator writes
    assert target.labels is not None and target.image.shape == (3, 64, 64)
    manifest = read_manifest(sim_dataset[0].parent / "manifest.csv")
    assert [e.path for e in manifest] == [p.resolve() for p in sim_dataset]
    assert {e.split for e in manifest} == {"train", "val", "test"} and all(
        e.shape == (3, 4, 64, 64) for e in manifest
    )
    assert verify_manifest(sim_dataset[0].parent / "manifest.csv", progress=False).passed


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = simulate_volume(slices=2, coils=3, size=(48, 40), seed=5, index=1)
    b = simulate_volume(slices=2, coils=3, size=(48, 40), seed=5, index=1)
    c = simulate_volume(slices=2, coils=3, size=(48, 40), seed=6, index=1)
    np.testing.assert_array_equal(a.kspace, b.kspace)
    assert not np.allclose(a.kspace, c.kspace)
    # volume v does not depend on how many volumes are made
    few = simulate_dataset(
        tmp_path / "few", volumes=1, slices=2, coils=2, size=(32, 32), seed=2, progress=False
    )
    many = simulate_dataset(
        tmp_path / "many", volumes=3, slices=2, coils=2, size=(32, 32), seed=2, progress=False
    )
    with h5py.File(few[0]) as f, h5py.File(many[0]) as g:
        np.testing.assert_array_equal(f["kspace"][()], g["kspace"][()])
    with h5py.File(many[1]) as f, h5py.File(many[2]) as g:
        assert not np.allclose(f["kspace"][()], g["kspace"][()])


def test_coil_maps_are_normalised() -> None:
    sim = simulate_volume(slices=1, coils=8, size=(64, 48), seed=0)
    np.testing.assert_allclose((np.abs(sim.coil_maps) ** 2).sum(0), 1.0, rtol=1e-5)
    magnitudes = np.abs(sim.coil_maps)
    assert magnitudes.max() / magnitudes.min() > 3  # they still vary in space, as receive coils do


@pytest.mark.parametrize("snr", [10.0, 40.0])
def test_measured_snr_matches_the_requested(tmp_path: Path, snr: float) -> None:
    """SNR measured on the written file: noise from the air outside the head (RSS of C coils of pure
    noise has mean σ·Γ(C+½)/Γ(C)), signal from the brain of the noisy reference."""
    coils = 6
    path = simulate_dataset(
        tmp_path, volumes=1, slices=4, coils=coils, size=(128, 128), seed=3, snr=snr, progress=False
    )[0]
    sim = simulate_volume(slices=4, coils=coils, size=(128, 128), seed=3, snr=snr)
    with h5py.File(path) as f:
        target = f["reconstruction_rss"][()]
    air = ~ndimage.binary_dilation(sim.phantom.tissue > 0, structure=PLANE, iterations=4)
    sigma = target[air].mean() * math.exp(math.lgamma(coils) - math.lgamma(coils + 0.5))
    brain = ndimage.binary_erosion(sim.phantom.brain, structure=PLANE)
    measured = target[brain].mean() / sigma
    assert measured == pytest.approx(snr, rel=0.05)
    assert sim.noise_std == pytest.approx(sigma, rel=0.03)


def test_lesions_are_where_their_labels_say() -> None:
    options = LesionOptions(count=(3, 3), radius_mm=(4.0, 5.0), contrast=1.8)
    sim = simulate_volume(slices=6, coils=4, size=(128, 128), seed=4, lesions=options, snr=1000.0)
    plain = simulate_volume(slices=6, coils=4, size=(128, 128), seed=4, lesions=None, snr=1000.0)
    assert sim.labels is not None and len(sim.lesions) == 3
    assert set(np.unique(sim.labels)) == {0, 1, 2, 3}
    # only the lesions differ: everywhere else the image (and the noise) are the same
    changed = np.abs(sim.image - plain.image) > 1e-6
    near = ndimage.binary_dilation(sim.labels > 0, iterations=3)
    assert changed.any() and not (changed & ~near).any()
    wm = sim.phantom.tissue == TISSUES["wm"]
    for k, lesion in enumerate(sim.lesions, start=1):
        inside = sim.labels == k
        assert wm[inside].mean() > 0.9  # placed in white matter
        s = int(lesion.center[0])
        assert inside[s, int(lesion.center[1]), int(lesion.center[2])]
        ring = (
            ndimage.binary_dilation(inside, iterations=4)
            & ~ndimage.binary_dilation(inside, iterations=2)
            & wm
        )
        ratio = sim.target[inside].mean() / plain.target[inside].mean()
        assert 1.5 < ratio <= 1.8 + 1e-3  # partial volume at the edge lowers the mean a little
        assert sim.target[inside].mean() > 1.4 * sim.target[ring].mean()


@pytest.mark.parametrize(
    ("contrast", "order"),
    [("flair", ("gm", "wm", "csf")), ("t1", ("wm", "gm", "csf")), ("t2", ("csf", "gm", "wm"))],
)
def test_tissue_contrast_is_brain_like(contrast: str, order: tuple[str, str, str]) -> None:
    sim = simulate_volume(slices=4, coils=4, size=(128, 128), seed=1, contrast=contrast)
    means = {
        name: float(
            sim.target[ndimage.binary_erosion(sim.phantom.tissue == TISSUES[name], structure=PLANE)].mean()
        )
        for name in order
    }
    assert means[order[0]] > 1.1 * means[order[1]] > 1.1 * 1.1 * means[order[2]], means
    fractions = {name: float((sim.phantom.tissue == TISSUES[name]).mean()) for name in ("wm", "gm", "csf")}
    assert all(f > 0.03 for f in fractions.values()), fractions  # every class is present


def test_volumes_vary_and_phase_is_smooth() -> None:
    ratios, sizes = [], []
    for index in range(3):
        sim = simulate_volume(slices=3, coils=2, size=(96, 96), seed=9, index=index)
        tissue = sim.phantom.tissue
        ratios.append(sim.phantom.contrast.gm / sim.phantom.contrast.wm)
        sizes.append(int((tissue > 0).sum()))
        head = ndimage.binary_erosion(tissue > 0, structure=PLANE, iterations=2)
        phase = np.angle(sim.image)
        steps = np.abs(np.angle(np.exp(1j * np.diff(phase, axis=-1))))[head[..., 1:] & head[..., :-1]]
        assert np.median(steps) < 0.1 and np.ptp(phase[head]) > 0.5  # smooth, but not constant
    assert np.ptp(ratios) > 0.02 and len(set(sizes)) == 3  # contrast and anatomy vary


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="unknown contrast 'pd'"):
        simulate_volume(slices=1, coils=1, size=(32, 32), seed=0, contrast="pd")
    with pytest.raises(ConfigError, match=r"size must be two numbers from 16 to 1024"):
        simulate_volume(slices=1, coils=1, size=(8, 32), seed=0)
    # a size or coil count that allocated until MemoryError (an internal-error traceback), and a
    # negative seed (NumPy's ValueError, the same)
    with pytest.raises(ConfigError, match=r"size must be two numbers from 16 to 1024"):
        simulate_volume(slices=1, coils=1, size=(60000, 60000), seed=0)
    with pytest.raises(ConfigError, match=r"coils from 1 to 64, got 1 and 5000"):
        simulate_volume(slices=1, coils=5000, size=(32, 32), seed=0)
    with pytest.raises(ConfigError, match="the seed must be at least 0, got -1"):
        simulate_volume(slices=1, coils=1, size=(32, 32), seed=-1)
    with pytest.raises(ConfigError, match="snr must be positive"):
        simulate_volume(slices=1, coils=1, size=(32, 32), seed=0, snr=0)
    with pytest.raises(ConfigError, match="lesion radius"):
        LesionOptions(radius_mm=(3.0, 1.0))


@pytest.mark.slow
def test_installed_cli_writes_a_small_dataset(tmp_path: Path) -> None:
    """``mrirecon simulate`` from the installed console script (4 volumes × 4 slices × 4 coils × 64²)."""
    script = Path(sys.executable).with_name("mrirecon")
    result = subprocess.run(
        [str(script), "simulate", str(tmp_path / "d"), "--volumes", "4", "--slices", "4", "--coils", "4",
         "--size", "64", "64", "--seed", "1", "--lesions", "--no-progress"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "wrote 4 volume(s)" in result.stdout
    files = sorted((tmp_path / "d").glob("*.h5"))
    assert len(files) == 4
    with open_volume(files[0]) as volume:
        assert volume.kspace_shape == (4, 64, 64) and volume.num_slices == 4
    bad = subprocess.run(
        [str(script), "simulate", str(tmp_path / "e"), "--snr", "-1"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Invalid value for '--snr': -1.0 is not in the range x>0" in bad.stderr


def test_simulate_refuses_a_folder_that_holds_a_dataset(tmp_path: Path) -> None:
    first = simulate_dataset(tmp_path, volumes=1, slices=1, coils=2, size=(32, 32), seed=0, progress=False)
    manifest = (tmp_path / "manifest.csv").read_bytes()
    with pytest.raises(ConfigError, match=r"already holds a dataset.*sim_AXFLAIR_s0_v000\.h5"):
        simulate_dataset(tmp_path, volumes=2, slices=1, coils=2, size=(32, 32), seed=1, progress=False)
    assert (tmp_path / "manifest.csv").read_bytes() == manifest and first[0].exists()
    again = simulate_dataset(
        tmp_path, volumes=1, slices=1, coils=2, size=(32, 32), seed=1, progress=False, overwrite=True
    )
    assert again[0].exists()
    # a smaller dataset in its place leaves none of the old one's volumes beside it; other files stay
    simulate_dataset(tmp_path, volumes=3, slices=1, coils=2, size=(32, 32), progress=False, overwrite=True)
    (tmp_path / "mine.h5").write_bytes(b"kept")
    smaller = simulate_dataset(
        tmp_path, volumes=1, slices=1, coils=2, size=(32, 32), contrast="t1", progress=False, overwrite=True
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["manifest.csv", "mine.h5", smaller[0].name])
    # an interrupted run's volumes (no manifest lists them) went on beside the new ones: 84 slices read
    (tmp_path / "manifest.csv").unlink()
    (tmp_path / "sim_AXFLAIR_s0_v004.h5").write_bytes(b"old")
    (tmp_path / ".sim_AXFLAIR_s0_v005.h5.partial").write_bytes(b"old")
    fresh = simulate_dataset(
        tmp_path, volumes=1, slices=1, coils=2, size=(32, 32), seed=3, progress=False, overwrite=True
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["manifest.csv", "mine.h5", fresh[0].name])


def test_train_with_a_mistyped_manifest_writes_nothing(tmp_path: Path) -> None:
    from mrirecon.training.config import DataSection, SyntheticSection
    from mrirecon.training.sources import ensure_synthetic

    data = tmp_path / "data"
    data.mkdir()
    (data / "mine.h5").write_bytes(b"")
    typo = DataSection(manifest=str(data / "manfest.csv"), synthetic=SyntheticSection(volumes=2, size=32))
    with pytest.raises(ConfigError, match=r"does not exist.*writes manifest\.csv"):
        ensure_synthetic(typo)
    elsewhere = DataSection(
        manifest=str(data / "manifest.csv"), synthetic=SyntheticSection(volumes=2, size=32)
    )
    with pytest.raises(ConfigError, match="its folder holds other files"):
        ensure_synthetic(elsewhere)
    assert sorted(p.name for p in data.iterdir()) == ["mine.h5"]


def test_the_cli_lesion_defaults_are_the_library_defaults() -> None:
    """``mrirecon simulate`` spells out LesionOptions' defaults (it imports the library lazily)."""
    from mrirecon_cli.simulate import simulate

    helps = {param.name: getattr(param, "help", "") for param in simulate.params}
    library = LesionOptions()
    assert f"default: {library.count[0]} {library.count[1]}]" in helps["lesion_count"]
    assert f"default: {library.radius_mm[0]:g} {library.radius_mm[1]:g}]" in helps["lesion_radius"]
    assert library.contrast is None and "default per contrast" in helps["lesion_contrast"]


def test_the_cli_refuses_lesion_options_without_lesions_and_a_negative_seed(tmp_path: Path) -> None:
    """--lesion-count without --lesions wrote files without lesions, silently."""
    from click.testing import CliRunner

    from mrirecon_cli.main import cli

    runner = CliRunner()
    result = runner.invoke(
        cli, ["simulate", str(tmp_path / "a"), "--lesion-count", "3", "6", "--volumes", "1"]
    )
    assert result.exit_code == 2 and "--lesion-count set the lesions, which --lesions adds" in result.output
    result = runner.invoke(cli, ["simulate", str(tmp_path / "b"), "--seed", "-1"])
    assert result.exit_code == 2 and "Invalid value for '--seed'" in result.output
    result = runner.invoke(cli, ["simulate", str(tmp_path / "c"), "--anatomy", "mni", "--coils", "91"])
    assert result.exit_code == 2 and "Invalid value for '--coils'" in result.output
    assert not any(tmp_path.iterdir())


def test_lesions_that_do_not_fit_are_said(tmp_path: Path) -> None:
    """A 30-40 mm radius placed no lesion in any volume, and said nothing."""
    from mrirecon.errors import Notice

    with pytest.warns(
        Notice, match=r"0 of the \d+ lesions drawn fit in the white matter \(radius 30-40 mm\)"
    ):
        sim = simulate_volume(
            slices=2, coils=2, size=(64, 64), seed=0, lesions=LesionOptions(radius_mm=(30.0, 40.0))
        )
    assert not sim.lesions
