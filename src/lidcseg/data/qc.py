"""Scan quality control: which scans of the cohort can be used, and why not.

``inspect`` runs every check of the conversion on one scan and records the verdict instead
of failing, and ``screen`` gathers the verdicts into one table. The workflow continues with
the accepted scans only, so one corrupt scan is a row in a report, not a crashed run.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from lidcseg.data.dicom import SeriesChecks, read_series
from lidcseg.data.volume import read_json, write_json
from lidcseg.errors import LidcsegError

SCAN_TABLE_FIELDS = ("patient_id", "status", "n_slices", "spacing_mm", "reason", "warnings")


def inspect_series(series_dir: str | os.PathLike, out_json: str | os.PathLike,
                   checks: SeriesChecks = SeriesChecks(), patient_id: str | None = None) -> dict:
    """Check one scan; write and return ``{"status": "accepted" | "rejected", ...}``."""
    record: dict = {"patient_id": patient_id or Path(series_dir).name, "series_dir": str(series_dir)}
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
    out = Path(out_tsv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, SCAN_TABLE_FIELDS, delimiter="\t", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "warnings": "; ".join(row.get("warnings", []))})


def accepted_patients(scan_table: str | os.PathLike) -> list[str]:
    """Patients whose scan passed inspection, from the table ``write_scan_table`` wrote."""
    with Path(scan_table).open(newline="") as f:
        return [row["patient_id"] for row in csv.DictReader(f, delimiter="\t") if row["status"] == "accepted"]
