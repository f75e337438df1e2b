"""Data sources of a run: the checksum checkpoints record, and synthetic data under several ranks."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from mrirecon.errors import ConfigError
from mrirecon.training.config import DataSection, SyntheticSection
from mrirecon.training.sources import _wait_for, data_checksum, ensure_synthetic, launched_rank


def test_checksum_of_a_manifest_is_its_sha256_and_of_folders_their_listing(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,sha256,shape,coils,acquisition,split\n")
    assert (
        data_checksum(DataSection(manifest=str(manifest)))
        == hashlib.sha256(manifest.read_bytes()).hexdigest()
    )
    assert data_checksum(DataSection(train=str(tmp_path / "none"), val=str(tmp_path / "none"))) is None
    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "a.h5").write_bytes(b"12")
    section = DataSection(train=str(folder), val=str(folder))
    first = data_checksum(section)
    assert first == data_checksum(section)
    (folder / "a.h5").write_bytes(b"123")
    assert data_checksum(section) != first


def test_other_ranks_wait_for_rank_zero_to_simulate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    assert launched_rank() == 1
    manifest = tmp_path / "manifest.csv"
    with pytest.raises(ConfigError, match="waited 0 s for rank 0"):
        _wait_for(manifest, timeout=0.1)
    manifest.write_text("")
    section = DataSection(manifest=str(manifest), synthetic=SyntheticSection())
    assert ensure_synthetic(section) == manifest  # present: nothing to do on any rank
    monkeypatch.delenv("RANK")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert launched_rank() == 0


def test_simulation_on_the_fly_builds_seeded_streams_and_checks_its_settings() -> None:
    from mrirecon.config import from_mapping, to_mapping
    from mrirecon.data.stream import SimulatedSliceDataset
    from mrirecon.training.config import MaskSection, SimulationSection
    from mrirecon.training.samplers import SeededDataset
    from mrirecon.training.sources import build_datasets

    options = {"rows": [64, 64], "aspect": [1.0, 1.0], "coils": [4, 4], "multiple": 8}
    section = from_mapping(
        SimulationSection, {"train_slices": 3, "val_slices": 2, "seed": 5, "options": options}
    )
    data = DataSection(simulation=section, mask=MaskSection("mixed", (0.0, 0.0), (4.0, 8.0)))
    datasets = build_datasets(data)
    assert set(datasets) == {"train", "val"}
    assert isinstance(datasets["train"], SimulatedSliceDataset) and len(datasets["val"]) == 2
    seeded = SeededDataset(datasets["train"], seed=1)
    first, again, next_epoch = seeded[(0, 1)], seeded[(0, 1)], seeded[(1, 1)]
    assert torch.equal(first.masked_kspace, again.masked_kspace)
    assert not torch.equal(first.target, next_epoch.target)
    assert datasets["val"][0].fname == "sim_val_s5_000000.h5"
    # validation (and test) slices are no training stream's: with seed + 1 they were seed 6's first
    # training slices, so a seed sweep trained on the other runs' validation and test sets
    later = build_datasets(dataclasses.replace(data, simulation=dataclasses.replace(section, seed=6)))
    val = datasets["val"].volume(0).read_target(0)
    assert all(
        not np.array_equal(val, other["train"].volume((0, i)).read_target(0))
        for other in (datasets, later)
        for i in range(3)
    )
    with pytest.raises(ConfigError, match=r"'data\.simulation\.seed' must be at least 0, got -1"):
        from_mapping(SimulationSection, {"seed": -1})
    assert data_checksum(data) == data_checksum(data) and data_checksum(data) != data_checksum(
        DataSection(simulation=SimulationSection(seed=6, options=section.options), mask=data.mask)
    )
    assert datasets["train"].target == datasets["val"].target == "noisy"
    quiet = from_mapping(SimulationSection, {**to_mapping(section), "train_target": "expected"})
    quiet_sets = build_datasets(dataclasses.replace(data, simulation=quiet))
    assert quiet_sets["train"].target == "expected" and quiet_sets["val"].target == "noisy"
    assert data_checksum(dataclasses.replace(data, simulation=quiet)) != data_checksum(data)
    with pytest.raises(ConfigError, match="train_target"):
        from_mapping(SimulationSection, {"train_target": "clean"})
    with pytest.raises(ConfigError, match="cannot be given with it"):
        DataSection(simulation=section, manifest="m.csv")
    with pytest.raises(ConfigError, match="must be 1 when the simulated rows and aspect and coils vary"):
        DataSection(simulation=SimulationSection(), batch_size=2)
    # a fixed matrix with the default range of coils: the first batch could not be stacked either
    fixed = from_mapping(SimulationSection, {"options": {"rows": [32, 32], "aspect": [1, 1]}})
    with pytest.raises(ConfigError, match=r"simulated coils vary.*options.coils: \[N, N\]"):
        DataSection(simulation=fixed, val_batch_size=2)
    stackable = from_mapping(
        SimulationSection, {"options": {"rows": [32, 32], "aspect": [1, 1], "coils": [4, 4]}}
    )
    DataSection(simulation=stackable, batch_size=2, val_batch_size=2)


def test_a_synthetic_section_with_lesions_simulates_what_simulate_lesions_does(tmp_path: Path) -> None:
    """``data.synthetic.lesions: true`` writes the files ``mrirecon simulate --lesions`` writes
    (lesion labels included); without it, the files have no labels."""
    from mrirecon.data.simulate import LesionOptions, simulate_dataset
    from mrirecon.data.volume import open_volume

    section = SyntheticSection(volumes=2, slices=2, size=48, coils=2, seed=3)
    with_lesions = tmp_path / "with" / "manifest.csv"
    ensure_synthetic(
        DataSection(manifest=str(with_lesions), synthetic=dataclasses.replace(section, lesions=True))
    )
    cli = simulate_dataset(
        tmp_path / "cli",
        volumes=2,
        slices=2,
        coils=2,
        size=(48, 48),
        seed=3,
        lesions=LesionOptions(),
        progress=False,
    )
    plain = tmp_path / "plain" / "manifest.csv"
    ensure_synthetic(DataSection(manifest=str(plain), synthetic=section))
    labelled = 0
    for path in cli:
        with open_volume(with_lesions.parent / path.name) as ours, open_volume(path) as theirs:
            for s in range(ours.num_slices):
                target, reference = ours.read_target(s), theirs.read_target(s)
                assert target is not None and reference is not None
                assert np.array_equal(target, reference)
                labels, expected = ours.read_lesion_labels(s), theirs.read_lesion_labels(s)
                assert labels is not None and expected is not None
                assert np.array_equal(labels, expected)
                labelled += int(labels.any())
        with open_volume(plain.parent / path.name) as bare:
            assert bare.read_lesion_labels(0) is None
    assert labelled > 0


# ------------------------------------------------------------------ FFT convention and references


def _uncentred_files(folder: Path, count: int = 2) -> list[Path]:
    """fastMRI-layout files of uncentred k-space (Calgary-Campinas convention) with their references."""
    from mrirecon.physics import fftnc
    from tests.data.helpers import disc_image, write_fastmri

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        image = torch.from_numpy(disc_image(2, 32, 24, seed=k)[:, None].repeat(2, axis=1))
        kspace = fftnc(image, 2, centered=False).numpy()
        target = image.abs().pow(2).sum(1).sqrt().numpy().astype(np.float32)
        path = folder / f"cc{k}.h5"
        paths.append(write_fastmri(path, kspace, reconstruction_rss=target, centered=False))
    return paths


def test_a_null_convention_takes_the_files_and_refuses_a_model_of_the_other(tmp_path: Path) -> None:
    from mrirecon.training.sources import build_datasets, data_convention
    from tests.data.helpers import multicoil_kspace, write_fastmri

    _uncentred_files(tmp_path / "cc")
    section = DataSection(train=str(tmp_path / "cc"), val=str(tmp_path / "cc"))
    datasets = build_datasets(section)
    assert data_convention(section, datasets, model_centered=False) is False
    assert data_convention(section, datasets, model_centered=None) is False
    with pytest.raises(ConfigError, match=r"uncentred .*fft_centered is true") as error:
        data_convention(section, datasets, model_centered=True)
    assert "fft_centered: false" in str(error.value.hint)
    # a centred file beside them: the run cannot have one convention
    write_fastmri(tmp_path / "cc" / "fastmri.h5", multicoil_kspace(2))
    with pytest.raises(ConfigError, match=r"mix centred .*fastmri\.h5.* and uncentred"):
        data_convention(section, build_datasets(section), model_centered=False)
    # an explicit data.centered opens every file with that convention
    forced = dataclasses.replace(section, centered=False)
    forced_sets = build_datasets(forced)
    assert data_convention(forced, forced_sets, model_centered=False) is False
    assert {fact.centered for fact in forced_sets["train"].file_facts().values()} == {False}


def test_explicit_uncentred_arrays_get_their_reference_from_the_uncentred_transform(tmp_path: Path) -> None:
    """`data.centered: false` reaches the volumes: the reference of a NumPy file is not rolled by half."""
    from mrirecon.physics import fftnc
    from mrirecon.training.sources import build_datasets
    from tests.data.helpers import disc_image

    image = torch.from_numpy(disc_image(1, 32, 24)[:, None].repeat(2, axis=1))
    np.save(tmp_path / "cc.npy", fftnc(image, 2, centered=False).numpy()[0])  # (C, H, W)
    section = DataSection(train=str(tmp_path / "cc.npy"), val=str(tmp_path / "cc.npy"), centered=False)
    sample = build_datasets(section)["val"][0]
    expected = image.abs().pow(2).sum(1).sqrt()[0]
    torch.testing.assert_close(sample.target * sample.scale, expected, rtol=1e-4, atol=1e-5)


def test_training_and_validation_files_need_a_reference(tmp_path: Path) -> None:
    from mrirecon.training.sources import build_datasets, data_convention
    from tests.data.helpers import multicoil_kspace, write_fastmri

    write_fastmri(tmp_path / "full.h5", multicoil_kspace(2))
    kspace = multicoil_kspace(2)
    kspace[..., 1::2] = 0  # prospectively undersampled: no reference
    write_fastmri(tmp_path / "prospective.h5", kspace, reconstruction_rss=None)
    section = DataSection(train=str(tmp_path / "full.h5"), val=str(tmp_path / "prospective.h5"))
    message = r"1 val file\(s\) have no fully sampled reference, e\.g\. .*prospective"
    with pytest.raises(ConfigError, match=message):
        data_convention(section, build_datasets(section), model_centered=None)


def test_manifest_files_are_probed_without_reading_kspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest spares the scan from opening its files; the convention and reference checks read
    only the files' structure (opening a file without a mask reads a whole slice)."""
    from mrirecon.data import dataset as dataset_module
    from mrirecon.data.dataset import SliceDataset, VolumeFacts
    from mrirecon.data.manifest import build_manifest
    from tests.data.helpers import multicoil_kspace, write_fastmri

    paths = _uncentred_files(tmp_path / "cc")
    mask = np.zeros(24, dtype=bool)
    mask[::2] = True  # a prospectively undersampled file stores its mask
    paths.append(
        write_fastmri(
            tmp_path / "cc" / "plain.h5", multicoil_kspace(2) * mask, reconstruction_rss=None, mask=mask
        )
    )
    manifest = tmp_path / "m.csv"
    build_manifest(paths, manifest, fractions=(1, 0, 0), progress=False)
    dataset = SliceDataset(manifest, split="train")

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("a volume was opened")

    monkeypatch.setattr(dataset_module, "open_volume", no_open)
    facts = dataset.file_facts()
    assert [facts[p] for p in sorted(facts)] == [
        VolumeFacts(centered=False, has_target=True, own_mask=False, slice_shape=(2, 32, 24)),
        VolumeFacts(centered=False, has_target=True, own_mask=False, slice_shape=(2, 32, 24)),
        VolumeFacts(centered=True, has_target=False, own_mask=True, slice_shape=(4, 32, 24)),
    ]


def test_an_existing_manifest_of_other_data_than_data_synthetic_is_said(tmp_path: Path) -> None:
    """The folder of a synthetic recipe already holding another simulation (the README's own
    `mrirecon simulate data/synthetic ...`, say): it is used as it is, and a note says so."""
    import warnings

    from mrirecon.errors import Notice

    manifest = tmp_path / "synthetic" / "manifest.csv"
    small = SyntheticSection(volumes=3, slices=1, size=16, coils=2, seed=1)
    ensure_synthetic(DataSection(manifest=str(manifest), synthetic=small), echo=lambda _: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Notice)
        assert ensure_synthetic(DataSection(manifest=str(manifest), synthetic=small)) == manifest
    larger = dataclasses.replace(small, volumes=5, size=24)
    with pytest.warns(Notice, match=r"lists 3 volume\(s\) of 1×2×16×16, not the 5 of 1×2×24×24"):
        ensure_synthetic(DataSection(manifest=str(manifest), synthetic=larger))


def test_an_interrupted_first_simulation_is_made_again(tmp_path: Path) -> None:
    """Stopped before it wrote manifest.csv, the first-use simulation left volumes that made the same
    command refuse the folder ("holds other files") and --resume find nothing: its own volumes
    (and partial files) are removed and simulated again; a folder with anything else stays refused."""
    section = SyntheticSection(volumes=2, slices=1, size=32, coils=2, seed=3)
    manifest = tmp_path / "data" / "manifest.csv"
    manifest.parent.mkdir()
    (manifest.parent / "sim_AXT2_s3_v000.h5").write_bytes(b"half")
    (manifest.parent / ".sim_AXT2_s3_v001.h5.partial").write_bytes(b"half")
    said: list[str] = []
    assert (
        ensure_synthetic(DataSection(manifest=str(manifest), synthetic=section), echo=said.append) == manifest
    )
    assert "interrupted before it wrote manifest.csv: simulating again" in said[0]
    assert not list(manifest.parent.glob(".*.partial"))
    other = tmp_path / "other" / "manifest.csv"
    other.parent.mkdir()
    (other.parent / "sim_AXT2_s3_v000.h5").write_bytes(b"half")
    (other.parent / "scan.h5").write_bytes(b"someone's data")
    with pytest.raises(ConfigError, match="its folder holds other files"):
        ensure_synthetic(DataSection(manifest=str(other), synthetic=section), echo=said.append)
    assert (other.parent / "scan.h5").read_bytes() == b"someone's data"


def test_a_fully_sampled_file_without_its_rss_is_told_to_convert(tmp_path: Path) -> None:
    """It was told to reconstruct the file with `mrirecon infer`, as a prospective scan is."""
    from mrirecon.training.sources import build_datasets, data_convention
    from tests.data.helpers import multicoil_kspace, write_fastmri

    write_fastmri(tmp_path / "full.h5", multicoil_kspace(2))
    write_fastmri(tmp_path / "no_rss.h5", multicoil_kspace(2), reconstruction_rss=None)
    section = DataSection(train=str(tmp_path / "full.h5"), val=str(tmp_path / "no_rss.h5"))
    with pytest.raises(ConfigError, match=r"no_rss.h5 \(.*`mrirecon convert no_rss.h5 -o NEW.h5`"):
        data_convention(section, build_datasets(section), model_centered=None)


def test_an_empty_list_of_files_is_refused_in_the_config() -> None:
    """``data.val=[]`` was an IndexError (an internal error) when the datasets were built."""
    for split in ("train", "val", "test"):
        with pytest.raises(ConfigError, match=rf"'data.{split}' is an empty list"):
            DataSection(**{split: []})  # type: ignore[arg-type]
