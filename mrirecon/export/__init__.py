"""export layer: the reconstruction HDF5 and the DICOM series a radiologist sees.

- :mod:`~mrirecon.export.recon_h5`: write/read the reconstruction HDF5 (docs/interfaces.md §5);
- :mod:`~mrirecon.export.dicom`: one MR Image Storage file per slice, one series per volume
  (docs/dicom.md), with :mod:`~mrirecon.export.geometry`, :mod:`~mrirecon.export.identity` and
  :mod:`~mrirecon.export.pixels` for the image planes, identifiers/UIDs and pixel scaling;
- :mod:`~mrirecon.atomic`: every output is written as ``.NAME.partial`` and renamed when
  complete; I/O failures become :class:`~mrirecon.errors.ExportError`.
"""

from mrirecon.export.dicom import DicomOptions, DicomSeries, export_dicom, export_volume_dicom
from mrirecon.export.identity import IdentityOverrides
from mrirecon.export.recon_h5 import (
    InputMetadata,
    ReconVolume,
    read_input_metadata,
    read_reconstruction,
    write_reconstruction,
)

__all__ = [
    "DicomOptions",
    "DicomSeries",
    "IdentityOverrides",
    "InputMetadata",
    "ReconVolume",
    "export_dicom",
    "export_volume_dicom",
    "read_input_metadata",
    "read_reconstruction",
    "write_reconstruction",
]
