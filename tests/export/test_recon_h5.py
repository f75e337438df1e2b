"""The reconstruction HDF5: round trip, atomic writes, disk full, no permission, killed writers."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
from pathlib import Path

import h5py
import numpy as np
import pytest

from mrirecon.atomic import partial_name
from mrirecon.data.header import build_ismrmrd_header
from mrirecon.errors import DataError, ExportError, Notice
from mrirecon.export import recon_h5
from mrirecon.export.recon_h5 import read_input_metadata, read_reconstruction, write_reconstruction
from tests.export.tools import oblique_geometry, phantom, run_python, unprivileged, volume


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip(tmp_path: Path) -> None:
    header = build_ismrmrd_header(encoded_matrix=(80, 32, 1), recon_matrix=(40, 32, 1), patient_id="P1")
    written = volume(
        zero_filled=phantom(seed=3),
        ismrmrd_header=header,
        geometry=oblique_geometry(),
        patient_id="P1",
        extra_attrs={"note": "x", "seed": 3},
    )
    path = write_reconstruction(tmp_path / "out" / "file1000007.h5", written)
    assert sorted(p.name for p in path.parent.iterdir()) == ["file1000007.h5"]
    read = read_reconstruction(path)
    np.testing.assert_array_equal(read.reconstruction, written.reconstruction)
    np.testing.assert_array_equal(read.zero_filled, written.zero_filled)
    assert read.reconstruction.dtype == np.float32 and read.ismrmrd_header == header
    for name in ("model", "checkpoint_sha256", "mrirecon_version", "input_file", "acquisition", "patient_id"):
        assert getattr(read, name) == getattr(written, name), name
    assert (read.undersampling, read.mask_type, read.acceleration) == ("retrospective", "equispaced", 4.0)
    assert read.extra_attrs == {"note": "x", "seed": 3}
    assert read.geometry is not None and written.geometry is not None
    for name in ("position", "read_dir", "phase_dir", "slice_dir", "patient_table_position"):
        np.testing.assert_allclose(getattr(read.geometry, name), getattr(written.geometry, name), atol=1e-4)
    assert read.geometry.slice_thickness_mm == 4.0
    # fastMRI's layout: the header is a bytes scalar, the reconstruction float32 (slices, h, w)
    with h5py.File(path) as f:
        assert isinstance(f["ismrmrd_header"][()], bytes)
        assert f["reconstruction"].shape == (3, 40, 32)
        assert f.attrs["model"] == "cirim"


def test_a_plain_fastmri_file_reads(tmp_path: Path) -> None:
    path = tmp_path / "file1.h5"
    with h5py.File(path, "w") as f:
        f["reconstruction"] = phantom()
    read = read_reconstruction(path)
    assert read.shape == (3, 40, 32) and read.geometry is None and read.ismrmrd_header is None
    assert read.model == "" and read.mrirecon_version == ""


def test_input_metadata(tmp_path: Path) -> None:
    path = tmp_path / "in.h5"
    header = build_ismrmrd_header(encoded_matrix=(80, 32, 1))
    with h5py.File(path, "w") as f:
        f["kspace"] = np.zeros((3, 2, 80, 32), dtype=np.complex64)
        f["ismrmrd_header"] = np.bytes_(header.encode())
        f.attrs["acquisition"] = "CORPD_FBK"
        f.attrs["patient_id"] = "abc"
        oblique_geometry().write(f.create_group("geometry"))
    meta = read_input_metadata(path)
    assert meta.ismrmrd_header == header and meta.acquisition == "CORPD_FBK" and meta.patient_id == "abc"
    assert meta.geometry is not None and meta.geometry.num_slices == 3


def _malformed(path: Path, **entries: np.ndarray | None) -> None:
    """A reconstruction file whose named entries are replaced: an array, or a group for None."""
    with h5py.File(path, "w") as f:
        f["reconstruction"] = np.ones((2, 4, 4), np.float32)
        for key, value in entries.items():
            if key in f:
                del f[key]
            if value is None:
                f.create_group(key)
            else:
                f[key] = value


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        (lambda p: None, "no such reconstruction HDF5"),
        (lambda p: p.write_text("not hdf5"), "not a readable HDF5 file"),
        (lambda p: h5py.File(p, "w").close(), r"no 'reconstruction' dataset \(datasets: none\)"),
        (lambda p: _malformed(p, reconstruction=None), "'reconstruction' is a group, not a dataset"),
        (
            lambda p: _malformed(p, reconstruction=np.array([[[b"x"]]])),
            r"'reconstruction' holds \|S1, not numbers",
        ),
        (
            lambda p: _malformed(p, reconstruction=np.ones((2, 4))),
            r"'reconstruction' must have the axes \(slices, h, w\), got shape \(2, 4\)",
        ),
        (
            lambda p: _malformed(p, reconstruction=np.ones((2, 3, 4, 5))),
            r"'reconstruction' must have the axes \(slices, h, w\), got shape \(2, 3, 4, 5\)",
        ),
        (lambda p: _malformed(p, zero_filled=None), "'zero_filled' is a group, not a dataset"),
        (lambda p: _malformed(p, ismrmrd_header=None), "'ismrmrd_header' is a group, not a dataset"),
        (lambda p: _malformed(p, geometry=np.zeros(3)), "'geometry' must be a group of per-slice vectors"),
    ],
)
def test_bad_files(tmp_path: Path, setup, words: str) -> None:
    path = tmp_path / "r.h5"
    setup(path)
    with pytest.raises(DataError, match=words) as info:
        read_reconstruction(path)
    assert info.value.path == path


def test_a_partial_file_never_reads_as_finished(tmp_path: Path) -> None:
    partial = partial_name(tmp_path / "r.h5")
    with h5py.File(partial, "w") as f:
        f["reconstruction"] = phantom()
    with pytest.raises(DataError, match="incomplete"):
        read_reconstruction(partial)


def test_disk_full_keeps_the_complete_file_and_removes_the_temporary(tmp_path: Path, monkeypatch) -> None:
    final = write_reconstruction(tmp_path / "r.h5", volume())
    before = _sha(final)
    real = recon_h5._write_contents

    def fill_the_disk(path: Path, vol) -> None:
        real(path, vol)  # a large temporary exists, then the device is full
        assert path.exists()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(recon_h5, "_write_contents", fill_the_disk)
    with pytest.raises(ExportError) as info:
        write_reconstruction(final, volume(reconstruction=phantom(seed=9)))
    message = str(info.value)
    assert message.startswith(
        f"{final}: could not write the reconstruction HDF5: no space left on the device"
    )
    assert "free disk space" in message
    assert _sha(final) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]


WRITE = """
from pathlib import Path
from mrirecon.export.recon_h5 import write_reconstruction
from tests.export.tools import phantom, volume
try:
    write_reconstruction(Path({target!r}), volume(reconstruction=phantom({shape})))
except ExportError as error:
    print(error.one_line())
    sys.exit(3)
"""


def test_real_file_size_limit_through_hdf5(tmp_path: Path) -> None:
    """The kernel refuses to grow the file (EFBIG) inside HDF5's own writes: a genuine I/O failure."""
    final = write_reconstruction(tmp_path / "r.h5", volume())
    before = _sha(final)
    result = run_python(
        WRITE.format(target=str(final), shape="slices=4, h=256, w=256"),
        file_limit=final.stat().st_size + 4096,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith(
        f"{final}: could not write the reconstruction HDF5: the file grew too large"
    )
    assert _sha(final) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]


def test_a_file_size_limit_mid_file_exits_cleanly(tmp_path: Path) -> None:
    """The limit falls inside the datasets: the writer must fail with the error, not crash the
    interpreter later (HDF5 segfaulted closing a file whose flush had failed)."""
    result = run_python(
        WRITE.format(target=str(tmp_path / "r.h5"), shape="slices=4, h=64, w=64"), file_limit=64 * 1024
    )
    assert result.returncode == 3, (result.returncode, result.stderr)
    assert "the file grew too large" in result.stdout
    assert sorted(tmp_path.iterdir()) == []


def test_folder_without_write_permission(tmp_path: Path) -> None:
    """A real EACCES from the kernel (as root, the writer runs without CAP_DAC_OVERRIDE)."""
    folder = tmp_path / "out"
    final = write_reconstruction(folder / "r.h5", volume())
    before = _sha(final)
    folder.chmod(0o555)
    try:
        result = run_python(WRITE.format(target=str(final), shape="seed=5"), prefix=unprivileged())
    finally:
        folder.chmod(0o755)
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith(f"{folder}: could not write the reconstruction HDF5: permission denied")
    assert "make the output folder writable" in result.stdout
    assert _sha(final) == before
    assert sorted(p.name for p in folder.iterdir()) == ["r.h5"]


KILLED = """
import os, signal
from pathlib import Path
import h5py
from mrirecon.export import recon_h5
from tests.export.tools import volume

def killed_half_way(path, vol):
    with h5py.File(path, "w") as f:
        f.create_dataset("reconstruction", data=vol.reconstruction)
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

recon_h5._write_contents = killed_half_way
recon_h5.write_reconstruction(Path({target!r}), volume())
"""


def test_sigkill_half_way_leaves_only_a_partial_and_the_next_run_finishes(tmp_path: Path) -> None:
    final = tmp_path / "r.h5"
    result = run_python(KILLED.format(target=str(final)))
    assert result.returncode == -signal.SIGKILL
    assert not final.exists() and partial_name(final).exists()
    write_reconstruction(final, volume())
    assert read_reconstruction(final).shape == (3, 40, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("slice_thickness_mm", "x"),
        ("slice_thickness_mm", np.complex128(2 + 1j)),
        ("field_of_view_mm", "abc"),
        ("field_of_view_mm", np.array([1.0, 2.0, 3.0], dtype=np.complex128)),
        ("field_of_view_mm", np.array([1.0, 2.0])),
        ("field_of_view_mm", np.array([1.0, np.nan, 3.0])),
    ],
)
def test_a_malformed_geometry_attribute_is_a_data_error(tmp_path: Path, name: str, value: object) -> None:
    path = tmp_path / "r.h5"
    write_reconstruction(path, volume(geometry=oblique_geometry()))
    with h5py.File(path, "a") as f:
        f["geometry"].attrs[name] = value
    with pytest.raises(DataError, match=name) as info:
        read_reconstruction(path)
    assert info.value.path == path


def test_other_tools_files_read_as_slices(tmp_path: Path) -> None:
    """ATOMMIC's stacked predictions (S, 1, h, w) complex, and a trailing channel, are the (S, h, w)
    images (refused before); a file whose images have another name lists what it holds; a
    zero_filled of another shape (used for pictures only) is left out with a note instead of
    stopping the scoring."""
    images = phantom()  # (S, h, w)
    for name, stored in (("atommic", images[:, None].astype(np.complex64)), ("channel", images[..., None])):
        with h5py.File(tmp_path / f"{name}.h5", "w") as f:
            f["reconstruction"] = stored
        np.testing.assert_allclose(
            read_reconstruction(tmp_path / f"{name}.h5").reconstruction, images, rtol=1e-6
        )
    with h5py.File(tmp_path / "direct.h5", "w") as f:
        f["recon"] = images
    with pytest.raises(DataError, match=r"no 'reconstruction' dataset \(datasets: 'recon'\)"):
        read_reconstruction(tmp_path / "direct.h5")
    with h5py.File(tmp_path / "zf.h5", "w") as f:
        f["reconstruction"] = images
        f["zero_filled"] = np.ones((images.shape[0], 3, 3), np.float32)
    with pytest.warns(Notice, match="'zero_filled' has shape"):
        volume = read_reconstruction(tmp_path / "zf.h5")
    assert volume.zero_filled is None
    np.testing.assert_array_equal(volume.reconstruction, images)


def test_geometry_and_images_must_be_the_files_own(tmp_path: Path) -> None:
    """A geometry group or vector linked to another file, or external raw storage, put another
    file's values into the DICOM; a few KB declaring gigabytes of unwritten images were read into
    memory until the process was killed."""
    write_reconstruction(tmp_path / "other.h5", volume(geometry=oblique_geometry()))
    for name, plant in (
        (
            "group",
            lambda f: f.__setitem__("geometry", h5py.ExternalLink(str(tmp_path / "other.h5"), "/geometry")),
        ),
        (
            "vector",
            lambda f: f["geometry"].__setitem__(
                "position", h5py.ExternalLink(str(tmp_path / "other.h5"), "/geometry/position")
            ),
        ),
    ):
        path = tmp_path / f"{name}.h5"
        write_reconstruction(path, volume(geometry=oblique_geometry()))
        with h5py.File(path, "a") as f:
            if name == "group":
                del f["geometry"]
            else:
                del f["geometry/position"]
            plant(f)
        with pytest.raises(DataError, match=r"is a link \(ExternalLink"):
            read_reconstruction(path)
    huge = tmp_path / "huge.h5"
    with h5py.File(huge, "w") as f:
        f.create_dataset("reconstruction", shape=(16, 8192, 8192), dtype="f4", chunks=(1, 256, 256))
    with pytest.raises(DataError, match="reconstruction"):
        read_reconstruction(huge)
