"""DICOM image planes from the header and the geometry group, and the synthetic default."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from mrirecon.data.header import build_ismrmrd_header, parse_ismrmrd_header
from mrirecon.errors import DataError
from mrirecon.export.geometry import DEFAULT_SPACING_MM, SliceGeometry, centre_index, image_planes
from mrirecon.shapes import center_crop
from tests.export.tools import oblique_geometry

HEADER = parse_ismrmrd_header(
    build_ismrmrd_header(
        encoded_matrix=(80, 32, 1),
        recon_matrix=(40, 32, 1),
        encoded_fov_mm=(160.0, 80.0, 4.0),
        recon_fov_mm=(80.0, 80.0, 4.0),
    )
)


def voxel_centre(planes, s: int, row: int, col: int) -> np.ndarray:
    """Where DICOM puts pixel (row, col) of slice s: IPP + col·Δc·rowdir + row·Δr·coldir."""
    dr, dc = planes.pixel_spacing
    iop = planes.orientation[s]
    return planes.position[s] + col * dc * iop[:3] + row * dr * iop[3:]


def test_scanner_geometry_puts_the_fov_centre_at_the_slice_position() -> None:
    geometry = oblique_geometry(slices=3, spacing=5.0)
    planes = image_planes((3, 40, 32), HEADER, geometry)
    assert not planes.synthetic and planes.notes == ()
    assert planes.pixel_spacing == (2.0, 2.5)  # reconSpace: 80 mm / 40 rows, 80 mm / 32 columns
    assert planes.slice_thickness == 4.0 and planes.spacing_between_slices == pytest.approx(5.0)
    for s in range(3):
        # the centred FFT puts the FOV centre at pixel (h//2, w//2)
        np.testing.assert_allclose(voxel_centre(planes, s, 20, 16), geometry.position[s], atol=1e-9)
        # rows run along the readout, columns along the phase encode
        np.testing.assert_allclose(planes.orientation[s, :3], geometry.phase_dir[s], atol=1e-9)
        np.testing.assert_allclose(planes.orientation[s, 3:], geometry.read_dir[s], atol=1e-9)
        step_down = voxel_centre(planes, s, 21, 16) - voxel_centre(planes, s, 20, 16)
        np.testing.assert_allclose(step_down, 2.0 * geometry.read_dir[s], atol=1e-9)
    # IPPs of neighbouring slices differ by the spacing along the normal (= −slice_dir here)
    np.testing.assert_allclose(planes.normal, -geometry.slice_dir, atol=1e-9)
    steps = np.diff(planes.position, axis=0)
    np.testing.assert_allclose(np.abs(steps @ planes.normal[0]), 5.0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(steps, axis=1), 5.0, atol=1e-9)
    np.testing.assert_allclose(np.diff(planes.slice_location), -5.0, atol=1e-9)


def test_odd_sizes_use_the_centre_pixel() -> None:
    geometry = oblique_geometry(slices=1)
    planes = image_planes((1, 41, 33), HEADER, geometry, kspace_matrix=(41, 33))  # not cropped
    np.testing.assert_allclose(voxel_centre(planes, 0, 20, 16), geometry.position[0], atol=1e-9)


@pytest.mark.parametrize(
    ("grid", "crop", "centre"),
    [
        ((32, 24), (31, 23), (16, 12)),  # even grid, odd crop: one past the crop's middle
        ((32, 24), (30, 22), (15, 11)),
        ((33, 25), (31, 23), (15, 11)),
        ((33, 25), (30, 22), (15, 11)),
        ((32, 24), (32, 24), (16, 12)),
    ],
)
def test_the_fov_centre_is_where_the_centre_crop_leaves_it(grid, crop, centre) -> None:
    # the reconstruction is fastMRI's centre crop (offset (H - h) // 2) of an H x W image whose
    # field-of-view centre is the pixel (H // 2, W // 2): that pixel of the crop is the slice position
    full = np.zeros(grid)
    full[grid[0] // 2, grid[1] // 2] = 1.0
    cropped = center_crop(full, crop)
    assert np.unravel_index(np.argmax(cropped), crop) == centre
    assert (centre_index(crop[0], grid[0]), centre_index(crop[1], grid[1])) == centre
    geometry = oblique_geometry(slices=2)
    for header in (HEADER, None):
        planes = image_planes((2, *crop), header, geometry, kspace_matrix=grid)
        for s in range(2):
            np.testing.assert_allclose(voxel_centre(planes, s, *centre), geometry.position[s], atol=1e-9)
    # a reconstruction that does not record its grid: the header's encoded matrix stands for it
    encoded = parse_ismrmrd_header(build_ismrmrd_header(encoded_matrix=(*grid, 1), recon_matrix=(*crop, 1)))
    planes = image_planes((2, *crop), encoded, geometry)
    np.testing.assert_allclose(voxel_centre(planes, 1, *centre), geometry.position[1], atol=1e-9)


def test_synthetic_default_without_geometry() -> None:
    planes = image_planes((4, 40, 32), HEADER, None)
    assert planes.synthetic and any("synthetic geometry" in note for note in planes.notes)
    np.testing.assert_array_equal(planes.orientation, np.tile([1.0, 0, 0, 0, 1.0, 0], (4, 1)))
    assert planes.spacing_between_slices == planes.slice_thickness == 4.0
    np.testing.assert_allclose(planes.position[:, 2], [-6.0, -2.0, 2.0, 6.0])
    # the middle of the stack is at the origin
    np.testing.assert_allclose(voxel_centre(planes, 0, 20, 16)[:2], [0.0, 0.0])


def test_nothing_known_gives_1_mm_and_says_so() -> None:
    planes = image_planes((2, 8, 8))
    assert planes.pixel_spacing == (DEFAULT_SPACING_MM, DEFAULT_SPACING_MM)
    assert planes.slice_thickness == DEFAULT_SPACING_MM
    assert any("pixel spacing unknown" in n for n in planes.notes)
    assert any("slice thickness unknown" in n for n in planes.notes)


def test_geometry_fov_without_header() -> None:
    geometry = oblique_geometry(slices=2)
    geometry = SliceGeometry(
        geometry.position,
        geometry.read_dir,
        geometry.phase_dir,
        geometry.slice_dir,
        field_of_view_mm=(200.0, 120.0, 3.0),  # rows along the readout's 200 mm, columns 120 mm
    )
    planes = image_planes((2, 100, 80), None, geometry)
    assert planes.pixel_spacing == (2.0, 1.5) and any("thickness unknown" in n for n in planes.notes)


def test_slice_count_mismatch_and_bad_vectors() -> None:
    with pytest.raises(DataError, match="describes 3 slices but the reconstruction has 2"):
        image_planes((2, 40, 32), HEADER, oblique_geometry(slices=3))
    g = oblique_geometry(slices=1)
    with pytest.raises(DataError, match="not unit length"):
        image_planes((1, 40, 32), HEADER, SliceGeometry(g.position, g.read_dir * 2, g.phase_dir, g.slice_dir))
    with pytest.raises(DataError, match="not orthogonal"):
        image_planes((1, 40, 32), HEADER, SliceGeometry(g.position, g.read_dir, g.read_dir, g.slice_dir))
    with pytest.raises(DataError, match="shape"):
        SliceGeometry(g.position, g.read_dir[:, :2], g.phase_dir, g.slice_dir)


def test_group_round_trip(tmp_path: Path) -> None:
    g = oblique_geometry()
    g = SliceGeometry(
        g.position, g.read_dir, g.phase_dir, g.slice_dir, g.patient_table_position, (1.0, 2.0, 3.0), 4.0
    )
    with h5py.File(tmp_path / "g.h5", "w") as f:
        g.write(f.create_group("geometry"))
    with h5py.File(tmp_path / "g.h5") as f:
        assert f["geometry/position"].dtype == np.float32
        back = SliceGeometry.read(f["geometry"])
    np.testing.assert_allclose(back.position, g.position, atol=1e-4)
    assert back.field_of_view_mm == (1.0, 2.0, 3.0) and back.slice_thickness_mm == 4.0
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.create_group("geometry")["position"] = np.zeros((2, 3))
    with h5py.File(tmp_path / "bad.h5") as f, pytest.raises(DataError, match="lacks read_dir"):
        SliceGeometry.read(f["geometry"])


def test_spacing_between_slices_follows_space_not_the_slice_indices() -> None:
    import dataclasses

    geometry = oblique_geometry(slices=3, spacing=5.0)
    interleaved = dataclasses.replace(geometry, position=geometry.position[[2, 0, 1]])  # 10, 0, 5 mm
    planes = image_planes((3, 40, 32), HEADER, interleaved)
    assert planes.spacing_between_slices == pytest.approx(5.0)  # not the median of |10|, |5|


def test_pixel_spacing_is_the_acquired_grids_when_the_scanner_interpolates() -> None:
    # the ISMRMRD FAQ's case: 48 phase lines acquired over 150 mm, a 64-pixel reconstruction matrix;
    # mrirecon's image is the inverse FFT of the 48 lines: 3.125 mm pixels, not 150 / 64
    header = parse_ismrmrd_header(
        build_ismrmrd_header(
            encoded_matrix=(128, 48, 1),
            recon_matrix=(64, 64, 1),
            encoded_fov_mm=(400.0, 150.0, 5.0),
            recon_fov_mm=(200.0, 150.0, 5.0),
        )
    )
    planes = image_planes((1, 64, 48), header, oblique_geometry(slices=1))
    assert planes.pixel_spacing == (3.125, 3.125)
