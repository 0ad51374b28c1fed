"""Ids from an archive's answer, checked before they name a folder.

A download places a series at ``<root>/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/``
with the three ids the archive reports; an id holding ``/`` or ``..`` would place it outside
the root or under another patient, so each must match its pattern first.
"""

from __future__ import annotations

import re

PATIENT_ID = re.compile(r"LIDC-IDRI-[0-9]{4}")
DICOM_UID = re.compile(r"[0-9]+(\.[0-9]+)*")  # PS3.5 9.1: digits and dots, at most 64 characters


def unsafe_ids(series) -> str | None:
    """Why the archive's ids of ``series`` cannot name its folders, or None when they can: an
    id with ``/`` or ``..`` would place a series outside the root or under another patient."""
    if not PATIENT_ID.fullmatch(series.patient_id):
        return f"PatientID {series.patient_id!r} is not an LIDC-IDRI id"
    for tag, uid in (
        ("StudyInstanceUID", series.study_uid),
        ("SeriesInstanceUID", series.series_uid),
    ):
        if len(uid) > 64 or not DICOM_UID.fullmatch(uid):
            return f"{tag} {uid!r} is not a DICOM UID"
    return None
