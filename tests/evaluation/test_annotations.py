"""fastMRI+ annotation CSVs: the up-down flip, study-level rows, degenerate boxes, labels, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mrirecon.errors import DataError
from mrirecon.evaluation.annotations import normalize_label, read_fastmri_plus

HEADER = "file,slice,study_level,x,y,width,height,label\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_flip_puts_the_box_on_the_structure_it_was_drawn_on(tmp_path: Path) -> None:
    """A bright block at array rows 5–10, columns 20–27 of a 40-row image; the annotator saw the image
    flipped up-down (as fastMRI+ DICOMs were), so there it spans rows 29–34: the CSV says y = 29."""
    image = np.zeros((40, 32), dtype=np.float32)
    image[5:11, 20:28] = 1.0
    flipped = np.flipud(image)
    rows = np.nonzero(flipped.any(axis=1))[0]
    y, height = int(rows.min()), int(rows.max() - rows.min() + 1)
    assert (y, height) == (29, 6)
    csv = _write(tmp_path / "brain.csv", HEADER + f"file_brain_1,3,No,20,{y},8,{height},Nonspecific lesion\n")
    (box,) = read_fastmri_plus(csv)["file_brain_1"]
    assert box.slice == 3
    assert box.rows(40) == (5, 11)  # row0 = H − y − height
    np.testing.assert_array_equal(box.mask((40, 32)), image > 0)
    # and the unflipped coordinates would have missed it entirely
    assert not image[y : y + height, 20:28].any()


def test_study_level_rows_degenerate_boxes_and_labels(tmp_path: Path) -> None:
    csv = _write(
        tmp_path / "knee.csv",
        HEADER
        + "file1000001,0,Yes,,,,,Artifact\n"  # study level: no box
        + "file1000001,12,No,100,120,18,14,Joint Effusion \n"  # trailing space in the label
        + "file1002097,27,No,150,160,18,0,Meniscus Tear\n"  # zero height: skipped
        + "file1000002.h5,5,No,10,20,4,4,  MENISCUS   tear\n",
    )
    boxes = read_fastmri_plus(csv)
    assert sorted(boxes) == ["file1000001", "file1000002"]
    assert [b.label for b in boxes["file1000001"]] == ["joint effusion"]
    assert boxes["file1000002"][0].label == "meniscus tear"
    only = read_fastmri_plus(csv, labels=["Meniscus Tear"])
    assert list(only) == ["file1000002"]
    assert normalize_label("  Joint  Effusion ") == "joint effusion"


def test_boxes_at_the_image_border_are_clipped(tmp_path: Path) -> None:
    csv = _write(tmp_path / "a.csv", HEADER + "f,0,No,300,0,30,10,x\n")
    (box,) = read_fastmri_plus(csv)["f"]
    mask = box.mask((320, 320))
    assert mask.sum() == 20 * 10 and mask[310:320, 300:320].all()


def test_malformed_files_raise_data_errors_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing column"):
        read_fastmri_plus(_write(tmp_path / "bad.csv", "file,slice,x,y\nf,0,1,2\n"))
    with pytest.raises(DataError, match="line 2"):
        read_fastmri_plus(_write(tmp_path / "bad2.csv", HEADER + "f,zero,No,1,2,3,4,x\n"))
    with pytest.raises(DataError, match=r"missing\.csv"):
        read_fastmri_plus(tmp_path / "missing.csv")
    binary = tmp_path / "scan.h5"
    binary.write_bytes(b"\x89HDF\r\n\x1a\n\xff\xfe\x00" * 8)
    with pytest.raises(DataError, match=r"scan\.h5: not a text \(UTF-8\) CSV file"):
        read_fastmri_plus(binary)
    with pytest.raises(DataError, match="line 2: slice, x, y, width and height must be integers"):
        read_fastmri_plus(_write(tmp_path / "huge.csv", HEADER + "f,0,No,1,2,1e400,4,x\n"))
    # a box with some of its coordinates blank is a broken row, not a row without a box
    with pytest.raises(DataError, match="line 2: slice, x, y, width and height must be integers"):
        read_fastmri_plus(_write(tmp_path / "blank.csv", HEADER + "f,0,No,1,2,,4,x\n"))
