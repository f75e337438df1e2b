"""What inference copies from an input (mrirecon.inference.components.input_metadata): malformed
geometry values are the input's fault (a DataError naming the file), never a traceback."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from mrirecon.errors import DataError
from mrirecon.export import InputMetadata
from mrirecon.inference.components import RawVolumeLike, input_metadata
from tests.export.tools import oblique_geometry


@dataclass
class _Volume:
    """The parts of an open input that input_metadata reads."""

    geometry: dict[str, Any] | None
    attrs: dict[str, Any] = field(default_factory=dict)
    header_xml: str | None = None


def _metadata(volume: _Volume, source: Path | None = None) -> InputMetadata:
    return input_metadata(cast(RawVolumeLike, volume), source=source)


def _geometry(**changes: Any) -> dict[str, Any]:
    g = oblique_geometry(slices=2)
    arrays: dict[str, Any] = {
        name: getattr(g, name) for name in ("position", "read_dir", "phase_dir", "slice_dir")
    }
    return {**arrays, "field_of_view_mm": np.array([80.0, 80.0, 8.0]), "slice_thickness_mm": 4.0, **changes}


def test_well_formed_geometry_and_the_3d_flag_are_copied() -> None:
    meta = _metadata(_Volume(_geometry(), {"acquisition": "AXT2", "mrirecon_decoupled_3d": True}))
    assert meta.geometry is not None and meta.geometry.slice_thickness_mm == 4.0
    assert meta.geometry.field_of_view_mm == (80.0, 80.0, 8.0)
    assert (meta.acquisition, meta.decoupled_3d) == ("AXT2", True)
    assert not _metadata(_Volume(None, {"mrirecon_decoupled_3d": "yes"})).decoupled_3d


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"slice_thickness_mm": "x"}, "slice_thickness_mm must be a finite real number"),
        ({"slice_thickness_mm": np.complex128(2 + 1j)}, "slice_thickness_mm must be a finite real"),
        ({"slice_thickness_mm": np.array([1.0, 2.0])}, "slice_thickness_mm must be a finite real"),
        ({"slice_thickness_mm": np.nan}, "slice_thickness_mm holds non-finite values"),
        ({"field_of_view_mm": "abc"}, "field_of_view_mm must be 3 finite real numbers"),
        ({"field_of_view_mm": np.array([1, 2, 3], dtype=np.complex64)}, "field_of_view_mm must be 3"),
        ({"field_of_view_mm": np.array([1.0, 2.0])}, "field_of_view_mm must be 3"),
        ({"position": np.array([["a", "b", "c"]] * 2)}, "position must be"),
        ({"read_dir": np.full((2, 3), 1 + 1j)}, "read_dir must be"),
        ({"patient_table_position": [[None, 1, 2]] * 2}, "patient_table_position must be"),
        ({"slice_dir": np.zeros((3, 3))}, r"slice_dir must have shape \(2, 3\)"),
    ],
)
def test_malformed_geometry_values_are_a_data_error_naming_the_file(changes: dict, words: str) -> None:
    source = Path("/archive/scan_0001.h5")
    with pytest.raises(DataError, match=words) as info:
        _metadata(_Volume(_geometry(**changes)), source=source)
    assert info.value.path == source


def test_the_inference_transform_reads_no_reference(tmp_path: Path) -> None:
    """A reconstruction never uses the reference: for NumPy, BART and ISMRMRD input it is an RSS
    image computed from the k-space, about as costly as the rest of the slice."""
    from mrirecon.data.volume import open_volume
    from mrirecon.inference.components import make_sample, make_transform
    from tests.data.helpers import multicoil_kspace

    path = tmp_path / "scan.npy"
    np.save(path, multicoil_kspace(2, coils=2, height=16, width=16))
    volume = open_volume(path, npy_axes="slices,coils,kx,ky")
    assert volume.has_target

    def no_reference(index: int) -> None:
        raise AssertionError("the reference was read")

    volume.read_target = no_reference  # type: ignore[method-assign]
    sample = make_sample(make_transform(mask_func=None, coil_maps="acs"), volume, 0)
    assert sample.masked_kspace.shape == (2, 16, 16) and float(sample.target.abs().max()) == 0.0


def test_text_attributes_lose_their_nul_padding_and_a_nul_inside_is_refused() -> None:
    meta = _metadata(_Volume(None, {"acquisition": "AXT2\0\0", "patient_id": "P1\0"}))
    assert (meta.acquisition, meta.patient_id) == ("AXT2", "P1")
    with pytest.raises(DataError, match=r"scan.h5: the 'acquisition' attribute holds a NUL character"):
        _metadata(_Volume(None, {"acquisition": "AX\0T2"}), Path("scan.h5"))
