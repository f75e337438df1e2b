"""What de-identification removes from the ISMRMRD header and the attributes (mrirecon.export.deidentify)."""

from __future__ import annotations

from pathlib import Path

import h5py

from mrirecon.data.header import parse_ismrmrd_header
from mrirecon.export.deidentify import deidentified_acquisition, deidentify_header
from tests.export.tools import IDENTIFIERS, rich_header

# as in the real Siemens file of ../shared/data: each dependency names another measurement by its ID
# (scanner serial number _ patient number _ study number _ measurement number)
DEPENDENCIES = (
    "<measurementDependency><dependencyType>SenMap</dependencyType>"
    "<measurementID>45387_1079885_1079904_343</measurementID></measurementDependency>"
    "<measurementDependency><dependencyType>Noise</dependencyType>"
    "<measurementID>45387_1079885_1079904_342</measurementID></measurementDependency>"
)


def test_measurement_dependencies_and_their_ids_are_removed() -> None:
    xml = rich_header().replace("<patientPosition>", DEPENDENCIES + "<patientPosition>", 1)
    assert "45387_1079885" in xml
    scrubbed = deidentify_header(xml, "ANON0000000001")
    for needle in ("45387", "1079885", "measurementDependency", "SenMap", "77123459_1_2_349"):
        assert needle not in scrubbed, needle
    header = parse_ismrmrd_header(scrubbed)
    assert header.patient_id == "ANON0000000001" and header.patient_position == "HFS"  # still valid
    assert header.protocol_name == "" and header.measurement_id == ""


def test_the_real_scanner_header_keeps_no_measurement_id(shared_data: Path) -> None:
    path = shared_data / "nhlbi_ismrmrd_snr_r3" / "meas_MID00349_FID09273_SNR_R3.h5"
    with h5py.File(path, "r") as f:
        raw = f["dataset/xml"][0]
    xml = raw.decode() if isinstance(raw, bytes) else str(raw)
    assert "45387_1079885_1079904" in xml and "<protocolName>SNR_R3" in xml
    scrubbed = deidentify_header(xml, "ANON0000000001")
    for needle in ("45387", "1079885", "SNR_R3", "NIH", "1.3.12.2.1107.5.2.19.45387"):
        assert needle not in scrubbed, needle
    assert parse_ismrmrd_header(scrubbed).encoded_matrix == parse_ismrmrd_header(xml).encoded_matrix


def test_only_fixed_acquisition_codes_survive() -> None:
    for code in ("CORPD_FBK", "CORPDFS_FBK", "AXFLAIR", "AXT1POST", "AXT2"):
        assert deidentified_acquisition(code) == code
    for text in (IDENTIFIERS["protocol"], "SNR_R3", "t1_mprage_DOE", ""):
        assert deidentified_acquisition(text) == ""


def test_every_identifying_element_and_user_string_is_removed_and_the_rest_kept() -> None:
    """A header with a planted value in each element the list names (and a user parameter string,
    free text a scanner may fill with anything): none survives; patientID is the pseudonym; the
    acquisition's own description (vendor, position, encoding, numeric user parameters) stays."""
    from mrirecon.export.deidentify import IDENTIFYING_ELEMENTS

    # what PS3.15's basic profile removes, named here (not taken from the list under test)
    required = [
        ("subjectInformation", name)
        for name in (
            "patientName",
            "patientBirthdate",
            "patientWeight_kg",
            "patientHeight_m",
            "patientGender",
        )
    ]
    required += [
        ("studyInformation", name)
        for name in (
            "studyDate",
            "studyTime",
            "studyID",
            "accessionNumber",
            "referringPhysicianName",
            "studyInstanceUID",
        )
    ]
    required += [
        ("acquisitionSystemInformation", name)
        for name in ("institutionName", "stationName", "deviceSerialNumber")
    ]
    required += [
        ("measurementInformation", name) for name in ("measurementID", "frameOfReferenceUID", "protocolName")
    ]
    sections: dict[str, str] = {}
    for section, element in dict.fromkeys([*required, *IDENTIFYING_ELEMENTS]):
        sections[section] = sections.get(section, "") + f"<{element}>PLANTED_{element}</{element}>"
    sections["subjectInformation"] += "<patientID>MRN42</patientID>"
    sections["measurementInformation"] += "<patientPosition>HFS</patientPosition>"
    sections["acquisitionSystemInformation"] += "<systemVendor>SIEMENS</systemVendor>"
    body = "".join(f"<{name}>{content}</{name}>" for name, content in sections.items())
    user = (
        "<userParameters><userParameterLong><name>EmbeddedRefLinesE1</name><value>24</value></userParameterLong>"
        "<userParameterString><name>Comment</name><value>PLANTED_user_string</value></userParameterString>"
        "<userParameterBase64><name>Note</name><value>UExBTlRFRF9iYXNlNjQ=</value></userParameterBase64>"
        "</userParameters>"
    )
    # user parameters nested elsewhere: a trajectory description's, a waveform's
    nested = (
        "<encoding><trajectoryDescription><identifier>spiral</identifier>"
        "<userParameterString><name>n</name><value>PLANTED_trajectory_text</value></userParameterString>"
        "</trajectoryDescription></encoding>"
        "<waveformInformation><waveformName>ecg</waveformName><userParameters>"
        "<userParameterString><name>w</name><value>PLANTED_waveform_text</value></userParameterString>"
        "</userParameters></waveformInformation>"
    )
    xml = f'<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">{body}{nested}{user}</ismrmrdHeader>'
    scrubbed = deidentify_header(xml, "ANON0000000007")
    assert "PLANTED" not in scrubbed and "MRN42" not in scrubbed
    assert "UExBTlRFRF9iYXNlNjQ=" not in scrubbed  # base64 of "PLANTED_base64": a payload of anything
    for kept in ("ANON0000000007", "HFS", "SIEMENS", "EmbeddedRefLinesE1", "spiral", "ecg"):
        assert kept in scrubbed, kept


def test_file_pseudonyms_need_the_salt_and_scrub_replaces_every_form_of_a_name() -> None:
    from mrirecon.export.deidentify import file_pseudonym, scrub

    assert file_pseudonym("Jane_Doe.h5", "a") != file_pseudonym("Jane_Doe.h5", "b")
    assert file_pseudonym("Jane_Doe.h5", "a") == file_pseudonym("Jane_Doe.h5", "a")
    text = "/in/Jane_Doe.h5: slice 3; wrote out/Jane_Doe_sl3.png for Jane_Doe.h5"
    scrubbed = scrub(text, {"/in/Jane_Doe.h5": "ANON1"})
    assert "Jane_Doe" not in scrubbed and scrubbed.count("ANON1") == 3
