"""De-identification beyond the DICOM series: the ISMRMRD header kept in a reconstruction, the output
names, and text that mentions an input's path.

With ``--deidentify`` everything a run writes is de-identified, not only the DICOM:

- :func:`deidentify_header`: the ISMRMRD XML header copied into the reconstruction HDF5 loses every
  identifying element (the list below); the patient ID becomes the pseudonym the DICOM series has;
- :func:`file_pseudonym`: output files and DICOM folders are named ``ANON<hash>`` of the input's name
  and the secret salt (input names are often the patient's name or MRN), the same in every run;
  the mapping back is written only where the user asks (``--deid-mapping``);
- :func:`scrub`: error messages, records and notices that name an input's path name its pseudonym
  instead;
- :func:`deidentified_acquisition`: the ``acquisition`` attribute is kept only when it is one of the
  fixed codes of fastMRI and mrirecon's simulators (an ISMRMRD input's is its protocol name, free
  text).

Removed from the header: ``subjectInformation`` (name, weight, height, birth date, sex;
``patientID`` replaced), ``studyInformation`` (dates, times, ID, accession number, referring
physician, description, instance UID), ``measurementInformation``'s measurement ID, its
measurement dependencies (each names another measurement by its ID: on Siemens, the scanner's
serial number and patient and study numbers), series date, time and description, protocol name
(free text), frame-of-reference and series UID roots and referenced images,
``acquisitionSystemInformation``'s institution, station, device ID and serial number, and every
text ``userParameterString`` and ``userParameterBase64``, wherever it is (the top-level user
parameters, a trajectory description's, a waveform's).
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

from mrirecon.data.header import NAMESPACE

__all__ = [
    "ACQUISITION_CODES",
    "IDENTIFYING_ELEMENTS",
    "deidentified_acquisition",
    "deidentify_header",
    "file_pseudonym",
    "scrub",
]

#: ``(section, element)`` pairs of the ISMRMRD header removed when de-identifying.
IDENTIFYING_ELEMENTS = (
    ("subjectInformation", "patientName"),
    ("subjectInformation", "patientWeight_kg"),
    ("subjectInformation", "patientHeight_m"),
    ("subjectInformation", "patientBirthdate"),
    ("subjectInformation", "patientGender"),
    ("studyInformation", "studyDate"),
    ("studyInformation", "studyTime"),
    ("studyInformation", "studyID"),
    ("studyInformation", "accessionNumber"),
    ("studyInformation", "referringPhysicianName"),
    ("studyInformation", "studyDescription"),
    ("studyInformation", "studyInstanceUID"),
    ("measurementInformation", "measurementID"),
    ("measurementInformation", "measurementDependency"),  # (type, measurementID) pairs
    ("measurementInformation", "seriesDate"),
    ("measurementInformation", "seriesTime"),
    ("measurementInformation", "frameOfReferenceUID"),
    ("measurementInformation", "seriesInstanceUIDRoot"),
    ("measurementInformation", "referencedImageSequence"),
    ("measurementInformation", "seriesDescription"),
    ("measurementInformation", "protocolName"),
    ("acquisitionSystemInformation", "institutionName"),
    ("acquisitionSystemInformation", "stationName"),
    ("acquisitionSystemInformation", "deviceID"),
    ("acquisitionSystemInformation", "deviceSerialNumber"),
)


#: ``acquisition`` attributes that are fixed codes, not free text: fastMRI's and those of mrirecon's
#: simulators. A de-identified run keeps these (they give the body part) and removes any other value.
ACQUISITION_CODES = frozenset(
    {"CORPD_FBK", "CORPDFS_FBK", "AXFLAIR", "AXT1", "AXT1PRE", "AXT1POST", "AXT2", "AXPD", "AXMIXED"}
)


def deidentified_acquisition(acquisition: str) -> str:
    """``acquisition`` when it is one of :data:`ACQUISITION_CODES`, else "" (for an ISMRMRD input it
    is the protocol name, free text that the header loses too)."""
    return acquisition if acquisition in ACQUISITION_CODES else ""


def _tag(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def deidentify_header(xml: str, pseudonym: str) -> str:
    """The ISMRMRD header without its identifying elements, ``patientID`` set to ``pseudonym``.

    A header that does not parse (it came from the input as it was) is dropped entirely: an
    unreadable header cannot be checked for identifiers.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return ""
    for section_name, element_name in IDENTIFYING_ELEMENTS:
        for section in root.findall(_tag(section_name)):
            for element in section.findall(_tag(element_name)):
                section.remove(element)
    # a measurement ID nested anywhere else (it holds the scanner serial and patient/study numbers),
    # and free text and free payloads (base64: anything, a name included) wherever a user-parameter
    # list is (the top level, a trajectory description, a waveform); numbers stay
    anywhere = {
        _tag(name)
        for name in ("measurementID", "measurementDependency", "userParameterString", "userParameterBase64")
    }
    for parent in list(root.iter()):
        for element in [child for child in parent if child.tag in anywhere]:
            parent.remove(element)
    for subject in root.findall(_tag("subjectInformation")):
        for element in subject.findall(_tag("patientID")):
            element.text = pseudonym
    ET.register_namespace("", NAMESPACE)
    return ET.tostring(root, encoding="unicode")


def file_pseudonym(name: str, salt: str) -> str:
    """``ANON<12 hex>``: the stable output name of the input named ``name`` (its file name), which
    nobody without the salt can map back."""
    digest = hashlib.sha256("\0".join(("file", salt, name)).encode("utf-8")).hexdigest()
    return "ANON" + digest[:12].upper()


def scrub(text: str, names: dict[str, str]) -> str:
    """``text`` with every input path (and its name and stem) replaced by its pseudonym.

    Args:
        text: An error message, a record.
        names: Input path (as text) → pseudonym.
    """
    from pathlib import PurePath

    for original, pseudonym in sorted(names.items(), key=lambda item: -len(item[0])):
        path = PurePath(original)
        for form in (original, str(path.parent / path.name), path.name, path.stem):
            if len(form) >= 4 and form in text:
                text = text.replace(form, pseudonym)
    return text
