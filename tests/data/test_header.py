"""ISMRMRD header parsing against the real Siemens file and round trips of the header we write."""

from __future__ import annotations

import h5py
import pytest

from mrirecon.data.header import EncodingLimits, build_ismrmrd_header, parse_ismrmrd_header
from mrirecon.errors import DataError


def test_real_siemens_header(shared_data) -> None:
    path = shared_data / "nhlbi_ismrmrd_snr_r3" / "meas_MID00349_FID09273_SNR_R3.h5"
    with h5py.File(path, "r") as f:
        header = parse_ismrmrd_header(f["dataset/xml"][0], source=path)
    assert header.encoded_matrix == (384, 144, 1)
    assert header.recon_matrix == (192, 144, 1)
    assert header.encoded_fov_mm == (560.0, 210.0, 8.0)
    assert header.recon_fov_mm == (280.0, 210.0, 8.0)
    assert header.e1_limits == EncodingLimits(0, 105, 54)
    assert header.acceleration_e1 == 3 and header.calibration_mode == "embedded"
    assert header.vendor == "SIEMENS" and header.model == "Skyra"
    assert header.field_strength_t == pytest.approx(2.89362)
    assert header.tr_ms == pytest.approx(219.64) and header.te_ms == pytest.approx(1.62)
    assert header.sequence_type == "SSFP" and header.patient_position == "HFS"
    assert header.frame_of_reference_uid.startswith("1.3.12.2.1107.5.2.19.45387")
    assert header.study_date == "2019-03-14" and header.receiver_channels == 14
    # partial Fourier: line i belongs at i + (144/2 − 54) = i + 18; lines 18..123 were acquired
    assert header.padding(144) == (18, 124)


def test_round_trip_of_a_written_header() -> None:
    xml = build_ismrmrd_header(
        encoded_matrix=(256, 232, 1),
        recon_matrix=(256, 232, 1),
        encoded_fov_mm=(240.0, 217.5, 4.0),
        e1_limits=EncodingLimits(0, 220, 110),
        patient_id="SIM-0001",
        tr_ms=9000.0,
        te_ms=100.0,
        sequence_type="FLAIR",
        receiver_channels=8,
    )
    header = parse_ismrmrd_header(xml)
    assert header.encoded_matrix == (256, 232, 1) and header.crop_size == (256, 232)
    assert header.encoded_fov_mm == (240.0, 217.5, 4.0) and header.recon_fov_mm == (240.0, 217.5, 4.0)
    assert header.padding(232) == (6, 227)
    assert header.patient_id == "SIM-0001" and header.receiver_channels == 8
    assert header.tr_ms == 9000.0 and header.sequence_type == "FLAIR"


def test_padding_of_an_odd_matrix_puts_the_limits_centre_on_the_zero_frequency() -> None:
    """Line e1 sits at column e1 + W // 2 − centre (fastMRI's formula): with an odd W of 15 and
    limits 2 … 14 centred on 7, the acquired columns are 2 … 14."""
    from mrirecon.data.header import EncodingLimits

    header = parse_ismrmrd_header(
        build_ismrmrd_header(encoded_matrix=(32, 15, 1), e1_limits=EncodingLimits(2, 14, 7))
    )
    assert header.padding(15) == (2, 15)


def test_fastmri_style_padding_default() -> None:
    header = parse_ismrmrd_header(
        build_ismrmrd_header(encoded_matrix=(640, 368, 1), recon_matrix=(320, 320, 1))
    )
    assert header.padding(368) == (0, 368)
    assert header.crop_size == (320, 320)


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<not-closed", "unreadable ISMRMRD header"),
        ("<root/>", "not an ISMRMRD header"),
        ('<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding/></ismrmrdHeader>', "matrix sizes"),
    ],
)
def test_bad_headers_are_data_errors(xml: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_ismrmrd_header(xml, source="x.h5")
