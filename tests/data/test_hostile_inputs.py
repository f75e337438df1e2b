"""Small files that declare what they do not hold, or point elsewhere: each is one DataError,
before anything large is allocated or any other file is read."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from mrirecon.data import hdf5_inputs
from mrirecon.data.bart import read_cfl, write_cfl
from mrirecon.data.header import build_ismrmrd_header, parse_ismrmrd_header
from mrirecon.data.volume import open_volume
from mrirecon.errors import ConfigError, DataError
from mrirecon.evaluation.volumes import read_target
from mrirecon.inference.inputs import output_paths
from tests.data.helpers import multicoil_kspace, write_ismrmrd

KSPACE = multicoil_kspace(2, coils=2, height=16, width=16)


def _file(path: Path, **datasets: object) -> Path:
    with h5py.File(path, "w") as f:
        f["kspace"] = KSPACE
        for name, value in datasets.items():
            f[name] = value
    return path


def test_data_stored_outside_the_file_is_refused(tmp_path: Path) -> None:
    other = _file(tmp_path / "patient_b.h5")
    with h5py.File(tmp_path / "extlink.h5", "w") as f:  # another patient's k-space under this file
        f["kspace"] = h5py.ExternalLink(str(other), "/kspace")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"x" * 1024)
    with h5py.File(tmp_path / "external.h5", "w") as f:  # any host file (or a pipe) as k-space
        f.create_dataset("kspace", shape=(1, 1, 8, 16), dtype=np.complex64, external=[(str(secret), 0, 1024)])
    layout = h5py.VirtualLayout(shape=(4, 2, 16, 16), dtype=np.complex64)
    layout[0] = h5py.VirtualSource(str(other), "kspace", shape=(2, 2, 16, 16))[0]
    with h5py.File(tmp_path / "virtual.h5", "w") as f:
        f.create_virtual_dataset("kspace", layout, fillvalue=1 + 1j)
    with h5py.File(tmp_path / "mask_link.h5", "w") as f:
        f["kspace"] = KSPACE
        f["mask"] = h5py.ExternalLink(str(other), "/kspace")
    with h5py.File(other, "a") as f:  # its geometry attributes were copied into this file's outputs
        f.create_group("geometry").attrs["field_of_view_mm"] = np.array([123.0, 456.0, 7.0])
    with h5py.File(tmp_path / "geometry_link.h5", "w") as f:
        f["kspace"] = KSPACE
        f["geometry"] = h5py.ExternalLink(str(other), "/geometry")
    for name, said in [
        ("extlink", r"'kspace' is a link \(ExternalLink"),
        ("external", "keeps its data outside the file"),
        ("virtual", "keeps its data outside the file"),
        ("mask_link", r"'mask' is a link"),
        ("geometry_link", r"'geometry' is a link \(ExternalLink"),
    ]:
        with pytest.raises(DataError, match=said):
            open_volume(tmp_path / f"{name}.h5")


def test_declared_sizes_are_checked_before_anything_is_read(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "overflow.h5", "w") as f:  # 2³² × 2³² complex: int64 products wrap to 0
        f.create_dataset("kspace", shape=(2**32, 2**32, 1), dtype=np.complex64, chunks=(1, 1, 1))
    with h5py.File(tmp_path / "big_slice.h5", "w") as f:  # one 8 GiB slice, stored compressed
        f.create_dataset("kspace", shape=(1, 512, 512, 4096), dtype=np.complex64, chunks=(1, 1, 512, 4096))
    with h5py.File(tmp_path / "big_chunk.h5", "w") as f:  # 16 × 16 data in one 1 GiB chunk
        unlimited = (None, None, None, None)
        f.create_dataset(
            "kspace", shape=(2, 2, 16, 16), maxshape=unlimited, dtype=np.complex64, chunks=(4, 64, 512, 1024)
        )
    _file(tmp_path / "mask_bomb.h5")
    with h5py.File(tmp_path / "mask_bomb.h5", "a") as f:
        f.create_dataset("mask", shape=(2**40,), dtype=np.uint8, chunks=(2**20,))
    with h5py.File(_file(tmp_path / "header_bomb.h5"), "a") as f:
        f.create_dataset("ismrmrd_header", shape=(2**36,), dtype="S1", chunks=(2**20,))
    with h5py.File(_file(tmp_path / "geometry_bomb.h5"), "a") as f:
        f.create_dataset("geometry/position", shape=(2**36, 3), dtype=np.float64, chunks=(2**16, 3))
    _file(tmp_path / "text_mask.h5", mask=np.array([b"no"] * 16))
    for name, said in [
        ("overflow", "more than the 64 GiB"),
        ("big_slice", "declares slices of 8 GiB"),
        ("big_chunk", "chunks of 1024 MiB"),
        ("mask_bomb", r"'mask' declares \(1099511627776,\)"),
        ("header_bomb", r"'ismrmrd_header' declares \(68719476736,\)"),
        ("geometry_bomb", r"'geometry/position' declares"),
        ("text_mask", "the mask holds |S2 values, not numbers"),
    ]:
        with pytest.raises(DataError, match=said):
            open_volume(tmp_path / f"{name}.h5")


def test_header_sizes_and_bart_dimensions_that_cannot_be_allocated_are_refused(tmp_path: Path) -> None:
    huge = build_ismrmrd_header(encoded_matrix=(100000, 100000, 1))
    with pytest.raises(
        DataError, match=r"matrixSize is \(100000, 100000, 1\); mrirecon reads matrices up to 16384"
    ):
        parse_ismrmrd_header(huge)
    infinite = build_ismrmrd_header(encoded_matrix=(64, 64, 1)).replace("<x>64</x>", "<x>inf</x>", 1)
    with pytest.raises(DataError, match="every size must be at least 1"):
        parse_ismrmrd_header(infinite)
    (tmp_path / "big.hdr").write_text("# Dimensions\n4294967296 4294967296 1 1 1\n")
    (tmp_path / "big.cfl").write_bytes(b"")
    with pytest.raises(DataError, match="need 147573952589676412928"):
        read_cfl(tmp_path / "big.cfl")


def test_output_names_stay_in_their_folder_and_differ_regardless_of_case(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="starts with a dot"):
        output_paths([tmp_path / "in" / "...npy"], tmp_path / "out")  # stem '..': dicom/.. is out/
    with pytest.raises(ConfigError, match="regardless of case"):
        output_paths([tmp_path / "a" / "Scan01.h5", tmp_path / "b" / "scan01.h5"], tmp_path / "out")
    paths = output_paths([tmp_path / "a" / "scan01.h5", tmp_path / "a" / "scan02.h5"], tmp_path / "out")
    assert [p.recon.name for p in paths] == ["scan01.h5", "scan02.h5"]
    assert all(os.path.commonpath([p.dicom, tmp_path / "out"]) == str(tmp_path / "out") for p in paths)


def test_an_empty_file_is_said_to_be_empty(tmp_path: Path) -> None:
    """A 0-byte input (an interrupted copy) was "corrupt or not HDF5" or a NumPy EOF message."""
    for name in ("scan.h5", "scan.npy"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(DataError, match=rf"{name}: the file is empty \(0 bytes\).*copy or export"):
            open_volume(tmp_path / name)


def test_a_dataset_without_values_is_named(tmp_path: Path) -> None:
    """A null-dataspace dataset (h5py.Empty) has no shape: the readers stopped on a TypeError (an
    internal error that aborted a whole batch) instead of refusing the one file."""
    empty = h5py.Empty("<f4")
    with h5py.File(tmp_path / "kspace.h5", "w") as f:
        f.create_dataset("kspace", data=h5py.Empty("<c8"))
    cases = {
        "kspace": tmp_path / "kspace.h5",
        "mask": _file(tmp_path / "mask.h5", mask=empty),
        "reconstruction_rss": _file(tmp_path / "target.h5", reconstruction_rss=empty),
    }
    for key, path in cases.items():
        words = rf"{path.name}: '{key}' holds no values \(an empty, null-dataspace"
        with pytest.raises(DataError, match=words):
            open_volume(path).read_target(0)  # the target is opened at first use
    ismrmrd = tmp_path / "raw.h5"
    write_ismrmrd(ismrmrd, np.ones((2, 32, 16), np.complex64), lines=np.arange(16), e1_center=8)
    with h5py.File(ismrmrd, "r+") as f:
        del f["dataset/data"]
        f.create_dataset("dataset/data", data=empty)
    with pytest.raises(DataError, match=r"raw.h5: 'dataset/data' holds no values"):
        open_volume(ismrmrd)
    with pytest.raises(DataError, match=r"target.h5: 'reconstruction_rss' holds no values"):
        read_target(cases["reconstruction_rss"])  # evaluate's reader


def test_a_header_nested_thousands_deep_is_refused(tmp_path: Path) -> None:
    """ElementTree parses any depth, but its serialiser recurses per level: a 5,000-deep header
    stopped a de-identifying batch on a RecursionError (an internal error for the whole run)."""
    deep = "<a>" * 5000 + "</a>" * 5000
    header = build_ismrmrd_header(encoded_matrix=(16, 16, 1)).replace(
        "</ismrmrdHeader>", deep + "</ismrmrdHeader>"
    )
    path = _file(tmp_path / "deep.h5", ismrmrd_header=np.bytes_(header.encode()))
    with pytest.raises(DataError, match=r"deep.h5: the ISMRMRD header nests its elements 5001 levels deep"):
        open_volume(path)
    shallow = build_ismrmrd_header(encoded_matrix=(16, 16, 1))
    nested = shallow.replace("</ismrmrdHeader>", "<a>" * 62 + "</a>" * 62 + "</ismrmrdHeader>")
    assert parse_ismrmrd_header(nested).encoded_matrix == (16, 16, 1)  # 64 levels: read


def test_the_kspace_size_limit_applies_to_numpy_and_bart_arrays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MRIRECON_MAX_KSPACE_GB bounded HDF5 inputs only: a NumPy or BART array of any size was read
    (whole, where memory maps are off or the data are 3-D)."""
    kspace = KSPACE.astype(np.complex64)  # (2, 2, 16, 16): 8 KiB
    np.save(tmp_path / "scan.npy", kspace)
    write_cfl(tmp_path / "scan", np.ascontiguousarray(kspace.transpose(2, 3, 0, 1)))
    monkeypatch.setenv("MRIRECON_MAX_KSPACE_GB", str(4096 / 2**30))  # 4 KiB
    with pytest.raises(
        DataError, match=r"scan.npy: the array declares \(2, 2, 16, 16\) complex64 .*MRIRECON_MAX"
    ):
        open_volume(tmp_path / "scan.npy", npy_axes="slices,coils,kx,ky")
    with pytest.raises(
        DataError, match=r"scan.hdr: the header declares \(16, 16, 2, 2\) .*more than the 3.8147e-06 GiB"
    ):
        read_cfl(tmp_path / "scan")
    monkeypatch.setenv("MRIRECON_MAX_KSPACE_GB", str(8192 / 2**30))  # exactly its size: read
    assert open_volume(tmp_path / "scan.npy", npy_axes="slices,coils,kx,ky").num_slices == 2
    assert read_cfl(tmp_path / "scan").shape == (16, 16, 2, 2)


def test_a_filter_hdf5_cannot_decode_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Blosc-compressed k-space (hdf5plugin not installed) failed its first read with HDF5's
    "can't open directory (/usr/local/lib/plugin)", reported as a truncated or corrupt file."""
    assert not h5py.h5z.filter_avail(32001)  # Blosc is not part of h5py
    monkeypatch.setattr(hdf5_inputs, "_register_plugins", lambda: False)  # as without hdf5plugin
    path = tmp_path / "blosc.h5"
    with h5py.File(path, "w") as f:  # chunks written as Blosc would (HDF5 needs the filter to read them)
        pipeline = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        pipeline.set_chunk((1, 1, 8, 8))
        pipeline.set_filter(32001, h5py.h5z.FLAG_OPTIONAL, (2, 2, 8, 512, 5, 1, 1))
        space = h5py.h5s.create_simple((1, 2, 8, 8))
        data = h5py.h5d.create(f.id, b"kspace", h5py.h5t.py_create(np.complex64), space, dcpl=pipeline)
        for coil in range(2):
            data.write_direct_chunk((0, coil, 0, 0), b"\x02\x01\x13\x08" + bytes(60), filter_mask=0)
    with pytest.raises(
        DataError, match=r"blosc.h5: 'kspace' is compressed with an HDF5 filter .*: Blosc \(id 32001\)"
    ):
        open_volume(path)
    gzip = _file(tmp_path / "gzip.h5")  # filters h5py has are read as before
    with h5py.File(gzip, "a") as f:
        del f["kspace"]
        f.create_dataset("kspace", data=KSPACE, chunks=(1, 1, 16, 16), compression="gzip", shuffle=True)
    assert open_volume(gzip).num_slices == 2
