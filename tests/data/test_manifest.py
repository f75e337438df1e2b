"""Manifests: create → read round trip, splits per patient, verify catching missing, changed and
unreadable files, and the manifest CLI's exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mrirecon.data.manifest import (
    ManifestEntry,
    assign_splits,
    create_manifest,
    read_manifest,
    sha256_file,
    verify_manifest,
    write_manifest,
)
from mrirecon.errors import ConfigError, DataError
from mrirecon_cli.main import cli
from tests.conftest import skip_or_fail
from tests.data.helpers import multicoil_kspace, raw_h5, write_fastmri


@pytest.fixture
def folder(sim_dataset: list[Path], tmp_path: Path) -> Path:
    out = tmp_path / "data"
    (out / "sub").mkdir(parents=True)
    for path in sim_dataset[:2]:
        shutil.copy(path, out / path.name)
    shutil.copy(sim_dataset[2], out / "sub" / sim_dataset[2].name)
    np.save(out / "extra.npy", multicoil_kspace(slices=1, coils=2)[0])
    return out


def test_create_and_read_round_trip(folder: Path, tmp_path: Path) -> None:
    output = tmp_path / "lists" / "manifest.csv"
    entries, bad = create_manifest(folder, output, fractions=(0.5, 0.25, 0.25), seed=3, progress=False)
    assert bad == [] and len(entries) == 4
    text = output.read_text().splitlines()
    assert text[0] == "path,sha256,shape,coils,acquisition,split"
    assert all(line.startswith("../data/") for line in text[1:])  # relative to the manifest's folder
    read = read_manifest(output)
    assert read == entries
    by_name = {e.path.name: e for e in read}
    assert by_name["extra.npy"].shape == (1, 2, 32, 24) and by_name["extra.npy"].acquisition == ""
    sim = by_name["sim_AXFLAIR_s11_v002.h5"]
    assert sim.path == (folder / "sub" / sim.path.name).resolve() and sim.path.is_absolute()
    assert (
        sim.shape == (3, 4, 64, 64)
        and sim.coils == 4
        and sim.acquisition == "AXFLAIR"
        and sim.num_slices == 3
    )
    assert sim.sha256 == sha256_file(sim.path)
    assert sorted(e.split for e in read) == ["test", "train", "train", "val"]
    again, _ = create_manifest(
        folder, tmp_path / "again.csv", fractions=(0.5, 0.25, 0.25), seed=3, progress=False
    )
    assert [e.split for e in again] == [e.split for e in entries]  # reproducible for a seed


def test_splits_are_drawn_per_patient() -> None:
    groups = [f"patient{i // 3}" for i in range(30)]  # ten patients, three files each
    splits = assign_splits(groups, (0.8, 0.1, 0.1), seed=0)
    assert sorted(splits.values()).count("train") == 8 and set(splits.values()) == {"train", "val", "test"}
    assert assign_splits(groups, (0.8, 0.1, 0.1), seed=0) == splits
    assert assign_splits(groups, (0.8, 0.1, 0.1), seed=1) != splits
    small = assign_splits(["a", "b", "c", "d"], (0.8, 0.1, 0.1), seed=0)
    assert sorted(small.values()) == ["test", "train", "train", "val"]  # every split gets someone
    with pytest.raises(ConfigError, match="sum to 1"):
        assign_splits(groups, (0.8, 0.1, 0.2), seed=0)
    with pytest.raises(ConfigError, match="three numbers"):
        assign_splits(groups, (0.9, 0.1), seed=0)


def test_verify_reports_missing_changed_and_unreadable(folder: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    entries, _ = create_manifest(folder, manifest, progress=False)
    assert verify_manifest(manifest, progress=False).passed
    files = sorted(e.path for e in entries)
    files[0].unlink()  # missing
    with open(files[1], "r+b") as handle:  # changed: one byte in the k-space
        handle.seek(-100, 2)
        byte = handle.read(1)
        handle.seek(-100, 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    # unreadable: a file whose checksum is right but that is not a volume
    broken = raw_h5(folder / "broken.h5", nothing=np.zeros(2))
    listed = [
        *read_manifest(manifest),
        ManifestEntry(broken.resolve(), sha256_file(broken), (1, 1, 2, 2), 1, "", "test"),
    ]
    write_manifest(manifest, listed)
    problems: list[str] = []
    check = verify_manifest(manifest, progress=False, on_problem=problems.append)
    assert not check.passed
    assert [e.path for e in check.missing] == [files[0]]
    assert [(e.path, why) for e, why in check.changed] == [(files[1], "sha256 differs")]
    assert [e.path for e, _ in check.unreadable] == [broken.resolve()]
    assert len(check.ok) == 2 and len(problems) == 3
    result = CliRunner().invoke(cli, ["manifest", "verify", str(manifest), "--no-progress"])
    assert result.exit_code == 1
    assert "2 ok, 1 missing, 1 changed, 1 unreadable" in result.output
    assert f"missing: {files[0]}" in result.output and "has no 'kspace' dataset" in result.output


def test_cli_create_and_verify(folder: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "cli.csv"
    result = CliRunner().invoke(
        cli,
        [
            "manifest",
            "create",
            str(folder),
            "-o",
            str(manifest),
            "--split",
            "0.5,0.25,0.25",
            "--seed",
            "4",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "4 file(s) (train 2, val 1, test 1)" in result.output
    result = CliRunner().invoke(cli, ["manifest", "verify", str(manifest), "--no-progress"])
    assert result.exit_code == 0 and "4 ok, 0 missing, 0 changed, 0 unreadable" in result.output
    bad_split = CliRunner().invoke(
        cli, ["manifest", "create", str(folder), "-o", str(manifest), "--split", "1,1,1"]
    )
    assert bad_split.exit_code == 2 and "--split must be three numbers >= 0 that sum to 1" in bad_split.output


def test_create_with_bad_files(folder: Path, tmp_path: Path) -> None:
    (folder / "bad.h5").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"bad\.h5: cannot open the file as HDF5"):
        create_manifest(folder, tmp_path / "m.csv", progress=False)
    entries, bad = create_manifest(folder, tmp_path / "m.csv", skip_bad=True, progress=False)
    assert len(entries) == 4 and [p.name for p, _ in bad] == ["bad.h5"]


def test_malformed_manifests(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("path,sha256\nx.h5,abc\n")
    with pytest.raises(DataError, match="lacks the column"):
        read_manifest(path)
    path.write_text("path,sha256,shape,coils,acquisition,split\nx.h5,abc,2x3,4,,train\n")
    with pytest.raises(DataError, match="line 2: shape must be slices x coils x H x W"):
        read_manifest(path)
    path.write_text("path,sha256,shape,coils,acquisition,split\nx.h5,abc,1x2x3x4,2,,holdout\n")
    with pytest.raises(DataError, match="line 2: split must be one of train, val, test"):
        read_manifest(path)
    with pytest.raises(DataError, match="no such manifest"):
        read_manifest(tmp_path / "none.csv")
    header = "path,sha256,shape,coils,acquisition,split\n"
    row = "x.h5,abc,1x2x3x4,2,,{split}\n"
    path.write_text(header + row.format(split="train") + row.format(split="test"))  # one file, two splits
    with pytest.raises(DataError, match=r"line 3: x\.h5 is listed on line 2 already"):
        read_manifest(path)
    path.write_text("\ufeff" + header + row.format(split="train"), encoding="utf-8")  # saved by a spreadsheet
    assert [e.split for e in read_manifest(path)] == ["train"]


def test_a_name_with_spaces_round_trips_and_npy_axes_verify(tmp_path: Path) -> None:
    from mrirecon.data.manifest import create_manifest, verify_manifest

    data = tmp_path / "d"
    data.mkdir()
    kspace = multicoil_kspace(slices=2, coils=3)
    np.save(data / " lead.npy", kspace)  # a name beginning with a space
    manifest = data / "m.csv"
    create_manifest(data, manifest, npy_axes="slices,coils,kx,ky", progress=False)
    assert [e.path.name for e in read_manifest(manifest)] == [" lead.npy"]
    assert verify_manifest(manifest, npy_axes="slices,coils,kx,ky", progress=False).passed
    assert not verify_manifest(manifest, progress=False).passed  # a 4-D array needs its axis order


def test_shipped_manifest_of_the_real_test_files(shared_data: Path) -> None:
    """data_manifests/shared_data.csv lists ../shared/data with checksums (CI always has the folder)."""
    manifest = Path(__file__).resolve().parents[2] / "data_manifests" / "shared_data.csv"
    entries = read_manifest(manifest)
    assert {e.path.name for e in entries} == {"meas_MID00349_FID09273_SNR_R3.h5", "cartesian_ksp.npy"}
    if not all(e.path.is_file() for e in entries):
        skip_or_fail(f"the manifest's files are not beside this checkout ({entries[0].path.parent.parent})")
    assert verify_manifest(manifest, progress=False).passed


def test_fastmri_file_entry(tmp_path: Path) -> None:
    path = write_fastmri(tmp_path / "one.h5", multicoil_kspace(slices=2, coils=3))
    entries, _ = create_manifest(tmp_path, tmp_path / "m.csv", progress=False)
    assert entries[0].path == path.resolve() and entries[0].acquisition == "AXT1"


def test_evaluation_lists_targets_from_a_real_manifest(sim_dataset: list[Path]) -> None:
    from mrirecon.evaluation.volumes import list_targets

    manifest = sim_dataset[0].parent / "manifest.csv"
    entries = read_manifest(manifest)
    for split in ("train", "val", "test"):
        assert list_targets(manifest, split=split) == [e.path for e in entries if e.split == split]


def test_a_patients_files_share_one_split(tmp_path: Path) -> None:
    """`build_manifest` draws splits per patient (the files' `patient_id`), so no patient is in two
    splits, whatever the seed: four patients of three files each."""
    from mrirecon.data.fastmri_writer import write_volume
    from mrirecon.data.header import build_ismrmrd_header
    from mrirecon.data.manifest import build_manifest

    header = build_ismrmrd_header(encoded_matrix=(16, 12, 1))
    files = []
    for index in range(12):
        kspace = multicoil_kspace(slices=1, coils=2, height=16, width=12, seed=index)
        attrs = {"patient_id": f"P{index % 4}"}
        files.append(
            write_volume(tmp_path / f"scan{index:02d}.h5", kspace=kspace, header_xml=header, attrs=attrs)
        )
    for seed in range(4):
        entries, _ = build_manifest(
            files, tmp_path / f"m{seed}.csv", fractions=(0.5, 0.25, 0.25), seed=seed, progress=False
        )
        splits: dict[str, set[str]] = {}
        for entry in entries:
            patient = f"P{int(entry.path.stem[4:]) % 4}"
            splits.setdefault(patient, set()).add(entry.split)
        assert all(len(s) == 1 for s in splits.values()), splits
        assert {next(iter(s)) for s in splits.values()} == {"train", "val", "test"}


def test_rows_are_named_by_their_line_and_checked_for_missing_values(tmp_path: Path) -> None:
    """A short row after a blank line was "line 3: 'NoneType' object has no attribute 'strip'"
    for line 4; a header with spaces after the commas "lacked" its columns."""
    path = tmp_path / "m.csv"
    header = "path, sha256, shape, coils, acquisition, split\n"
    path.write_text(header + "\nx.h5,abc,1x2x3x4,2,,train\ny.h5,abc,1x2x3x4\n")
    with pytest.raises(DataError, match=r"line 4: no value for coils, split$"):
        read_manifest(path)
    path.write_text(header + "x.h5,abc,1x2x3x4,2,,train\n   \n")  # a row of spaces
    with pytest.raises(DataError, match=r"line 3: no value for path, sha256, shape, coils, split$"):
        read_manifest(path)
    path.write_text(header + "x.h5,abc,1x4x3x4,9,,train\n")  # coils that the shape does not have
    with pytest.raises(DataError, match=r"line 2: coils 9 differs from the 4 coils of the shape 1x4x3x4"):
        read_manifest(path)
    path.write_text(header + "x.h5,abc,1x4x3x4,two,,train\n")
    with pytest.raises(DataError, match=r"line 2: coils must be an integer, got 'two'"):
        read_manifest(path)


def test_one_bart_array_under_its_three_names_is_listed_once(tmp_path: Path) -> None:
    """``a``, ``a.cfl`` and ``a.hdr`` are one array: listed three times it served its slices three
    times (in two splits, the same data in training and test)."""
    path = tmp_path / "m.csv"
    header = "path,sha256,shape,coils,acquisition,split\n"
    rows = "".join(f"{name},abc,1x2x3x4,2,,{split}\n" for name, split in [("a.cfl", "train"), ("a", "test")])
    path.write_text(header + rows)
    with pytest.raises(DataError, match=r"line 3: a is listed on line 2 already"):
        read_manifest(path)
    path.write_text(header + "a.hdr,abc,1x2x3x4,2,,train\na.CFL,abc,1x2x3x4,2,,val\n")
    (tmp_path / "a.CFL").write_bytes(b"")  # the .CFL exists, no .cfl: it is the array's file
    with pytest.raises(DataError, match=r"line 3: a\.CFL is listed on line 2 already"):
        read_manifest(path)


def test_a_linked_file_keeps_the_name_it_is_listed_under(tmp_path: Path) -> None:
    """A manifest of ``scans/patient_001.npy`` → ``store/blob_9f2c.npy`` listed the blob, so the
    outputs were named after it; a link and its target listed both are one file."""
    (tmp_path / "store").mkdir()
    (tmp_path / "scans").mkdir()
    np.save(tmp_path / "store" / "blob_9f2c.npy", multicoil_kspace(slices=1, coils=2)[0])
    (tmp_path / "scans" / "patient_001.npy").symlink_to(tmp_path / "store" / "blob_9f2c.npy")
    manifest = tmp_path / "m.csv"
    entries, _ = create_manifest(tmp_path / "scans", manifest, fractions=(1, 0, 0), progress=False)
    assert [e.path for e in entries] == [tmp_path / "scans" / "patient_001.npy"]
    assert manifest.read_text().splitlines()[1].startswith("scans/patient_001.npy,")
    assert [e.path.name for e in read_manifest(manifest)] == ["patient_001.npy"]
    assert verify_manifest(manifest, progress=False).passed
    lines = manifest.read_text().splitlines()
    target = lines[1].replace("scans/patient_001.npy", "store/blob_9f2c.npy").replace(",train", ",test")
    manifest.write_text("\n".join([*lines, target]) + "\n")
    with pytest.raises(DataError, match=r"line 3: store/blob_9f2c\.npy is listed on line 2 already"):
        read_manifest(manifest)
