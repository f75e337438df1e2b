"""``mrirecon export-dicom``: a reconstruction HDF5 → one DICOM series (MR Image Storage)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export-dicom")
@click.argument("recon", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--output-dir",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the series (one per volume): IM_0001.dcm, IM_0002.dcm, ...",
)
@click.option(
    "--deidentify",
    is_flag=True,
    help="Replace or remove every identifying attribute (names, IDs, dates, site; UIDs hashed).",
)
@click.option(
    "--deid-salt",
    envvar="MRIRECON_DEID_SALT",
    default="",
    show_envvar=True,
    help="Secret mixed into pseudonyms and UIDs with --deidentify (prefer the environment variable).",
)
@click.option(
    "--allow-unsalted",
    is_flag=True,
    help="Allow --deidentify without a salt (pseudonyms anyone can recompute from the patient ID).",
)
@click.option("--patient-id", help="PatientID to write (a pseudonym with --deidentify).")
@click.option("--patient-name", help="PatientName to write, DICOM style: FAMILY^GIVEN.")
@click.option("--patient-birth-date", help="PatientBirthDate, YYYYMMDD.")
@click.option("--patient-sex", type=click.Choice(["M", "F", "O"], case_sensitive=False), help="PatientSex.")
@click.option("--study-description", help="StudyDescription.")
@click.option("--study-id", help="StudyID (at most 16 characters; refused, never cut, when longer).")
@click.option(
    "--accession-number", help="AccessionNumber (at most 16 characters; refused, never cut, when longer)."
)
@click.option("--referring-physician", help="ReferringPhysicianName, FAMILY^GIVEN.")
@click.option("--institution", help="InstitutionName.")
@click.option("--body-part", help="BodyPartExamined (DICOM defined term: BRAIN, KNEE, ...).")
@click.option(
    "--laterality", type=click.Choice(["L", "R"], case_sensitive=False), help="Side of a paired body part."
)
@click.option(
    "--series-number",
    type=click.IntRange(0, 2**31 - 1),
    default=1001,
    show_default=True,
    help="SeriesNumber.",
)
@click.option("--series-description", help="Replaces the generated SeriesDescription (provenance).")
@click.option(
    "--uid-root",
    default="1.2.826.0.1.3680043.8.498.",
    show_default=True,
    help="Your organisation's UID root for the generated UIDs.",
)
@click.option(
    "--bits", type=click.IntRange(8, 16), default=16, show_default=True, help="Significant bits per pixel."
)
@click.option("--overwrite", is_flag=True, help="Replace another series already in the output folder.")
def export_dicom(
    recon: Path,
    output_dir: Path,
    deidentify: bool,
    deid_salt: str,
    allow_unsalted: bool,
    patient_id: str | None,
    patient_name: str | None,
    patient_birth_date: str | None,
    patient_sex: str | None,
    study_description: str | None,
    study_id: str | None,
    accession_number: str | None,
    referring_physician: str | None,
    institution: str | None,
    body_part: str | None,
    laterality: str | None,
    series_number: int,
    series_description: str | None,
    uid_root: str,
    bits: int,
    overwrite: bool,
) -> None:
    """Export the reconstruction RECON (HDF5) as one DICOM series for PACS and viewers."""
    from mrirecon.export.dicom import DicomOptions, export_dicom
    from mrirecon.export.identity import IdentityOverrides

    options = DicomOptions(
        deidentify=deidentify,
        salt=deid_salt,
        allow_unsalted=allow_unsalted,
        identity=IdentityOverrides(
            patient_name=patient_name,
            patient_id=patient_id,
            patient_birth_date=patient_birth_date,
            patient_sex=patient_sex,
            study_description=study_description,
            study_id=study_id,
            accession_number=accession_number,
            referring_physician=referring_physician,
            institution_name=institution,
            body_part=body_part,
            laterality=laterality,
        ),
        series_number=series_number,
        series_description=series_description,
        uid_root=uid_root,
        bits_stored=bits,
        overwrite=overwrite,
    )
    series = export_dicom(recon, output_dir, options)
    # no identifiers in what is printed: counts, folder, geometry kind
    geometry = "synthetic geometry (the input has none)" if series.synthetic_geometry else "scanner geometry"
    click.echo(f"Wrote {len(series.files)} DICOM file(s) to {series.folder} ({geometry}).")
