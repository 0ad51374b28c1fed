"""What every download source shares after the transfer: verified, atomic series in place.

A source (``tcia``, ``idc``) resolves patients to :class:`RemoteSeries` and knows how to fetch
one series into a temporary folder (through :mod:`lidcseg.data.sources.remote`); this module
does the rest the same way for both:

- :func:`lidcseg.data.sources.unzip.safe_extract` refuses a zip whose entries would land
  outside the target folder (``../``, absolute paths, drive letters) or are links, before
  writing anything.
- :func:`download_cohort` fetches series in parallel into ``<root>/.partial/``, moves each
  into ``<root>/<PatientID>/<StudyUID>/<SeriesUID>/`` only when verified (files whose source
  gave no MD5 are named in a warning and in the series' ``.lidcseg-download.json``,
  ``unverified``: file -> why), and writes the
  patient's ``series.json`` last. The three ids come from the archive's answer, so each is
  checked against its pattern (:func:`unsafe_ids`) before it names a folder. A series
  already in place is never fetched again; a partial one is. One failed series is named in
  the error; the others still finish.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from lidcseg.core.series_manifest import SeriesManifest
from lidcseg.data.sources.ids import unsafe_ids
from lidcseg.data.sources.remote import CorruptSeries, DownloadError
from lidcseg.io import read_json, write_json

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"


@dataclass(frozen=True)
class RemoteSeries:
    """One CT series as the archive lists it: who, which, how many files, where."""

    patient_id: str
    study_uid: str
    series_uid: str
    n_instances: int
    size_bytes: int | None = None
    location: str = ""  # the source's handle: TCIA's series UID, IDC's bucket/prefix

    def describe(self) -> str:
        return f"series {self.series_uid} of {self.patient_id}"


@dataclass
class FetchedSeries:
    """What a source fetched and checked, in ``folder`` (not yet in place). ``unverified``:
    file name -> why its MD5 could not be checked (no MD5 from the source); every other
    file's MD5 matched the source's."""

    folder: Path
    n_instances: int
    n_bytes: int
    unverified: dict[str, str]
    left_out: list[str] = field(default_factory=list)

    @property
    def md5_verified(self) -> bool:
        return not self.unverified


def empty_folder(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def check_instances(folder: Path, series: RemoteSeries, what: str) -> None:
    """As many DICOM files as the archive lists, and of the series that was asked for."""
    from lidcseg.data.dicom.files import series_identity
    from lidcseg.errors import ScanError

    n_files = sum(1 for p in folder.iterdir() if p.suffix.lower() == ".dcm")
    if n_files != series.n_instances:
        raise CorruptSeries(
            f"{what}: {n_files} DICOM files arrived, the archive lists {series.n_instances}"
        )
    try:
        _, series_uid = series_identity(folder)
    except ScanError as exc:
        raise CorruptSeries(f"{what}: {exc}") from exc
    if series_uid != series.series_uid:
        raise DownloadError(f"{what}: the files are of series {series_uid}, not the one asked for")


def series_folder(root: Path, series: RemoteSeries) -> Path:
    return root / series.patient_id / series.study_uid / series.series_uid


def partial_folder(root: Path, series: RemoteSeries) -> Path:
    """Where a series is fetched before it is verified: outside every patient folder, so
    nothing downstream ever reads a half-fetched series."""
    return root / PARTIAL_DIR / series.series_uid


FetchOne = Callable[[RemoteSeries, Path, "tqdm | None"], FetchedSeries]


@dataclass
class CohortResult:
    placed: list[dict]
    skipped: list[str]
    failed: dict[str, str]


def download_cohort(
    series: list[RemoteSeries],
    root: str | os.PathLike,
    fetch_one: FetchOne,
    source: str,
    parallel: int,
    primary: Callable[[str], str | None] = lambda patient: None,
    origin: str = "",
    refused: dict[str, str] | None = None,
) -> CohortResult:
    """Fetch every series not yet in place, ``parallel`` at a time; a patient's
    ``series.json`` is written as soon as all its series are in place. A series whose ids are
    unsafe, or ``refused`` (series UID -> reason), is not fetched. Raises DownloadError naming
    every failed or refused series, after the others are done."""
    root = Path(root)
    refused = {**(refused or {}), **{s.series_uid: why for s in series if (why := unsafe_ids(s))}}
    series = [s for s in series if s.series_uid not in refused]
    todo = [s for s in series if not series_folder(root, s).is_dir()]
    result = CohortResult(
        [],
        [s.series_uid for s in series if s not in todo],
        {uid: f"refused: {why}" for uid, why in refused.items()},
    )
    for uid in result.skipped:
        log.info("series %s: already verified in place, not fetched again", uid)
    manifests = _PatientManifests(series, root, primary)
    manifests.write_complete()
    progress = tqdm(
        total=sum(s.size_bytes or 0 for s in todo) or None,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc="download",
        disable=not todo,
        mininterval=1.0 if os.isatty(2) else 30.0,
    )
    lock = threading.Lock()

    def work(item: RemoteSeries) -> None:
        try:
            record = _fetch_and_place(item, root, fetch_one, progress, source, origin)
            with lock:
                result.placed.append(record)
                manifests.write_complete(item.patient_id)
        except (DownloadError, OSError) as exc:  # OSError: a full or unwritable disk, named
            failure = str(exc) if isinstance(exc, DownloadError) else _disk_failure(exc, item)
            log.error("%s", failure)
            _discard(partial_folder(root, item))
            with lock:
                result.failed[item.series_uid] = failure

    with progress, ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        list(pool.map(work, todo))
    if result.failed:
        listing = "; ".join(f"{uid}: {reason}" for uid, reason in result.failed.items())
        raise DownloadError(
            f"{len(result.failed)} of {len(series) + len(refused)} series failed ({listing})"
        )
    return result


def _fetch_and_place(
    series: RemoteSeries, root: Path, fetch_one: FetchOne, progress, source: str, origin: str
) -> dict:
    started = time.perf_counter()
    work_dir = partial_folder(root, series)
    work_dir.mkdir(parents=True, exist_ok=True)
    fetched = fetch_one(series, work_dir, progress)
    seconds = time.perf_counter() - started
    record = {
        **asdict(series),
        "source": source,
        "origin": origin,
        "n_files": fetched.n_instances,
        "bytes": fetched.n_bytes,
        "md5_verified": fetched.md5_verified,
        "unverified": fetched.unverified,
        "left_out": fetched.left_out,
        "seconds": round(seconds, 2),
    }
    write_json(record, fetched.folder / ".lidcseg-download.json")
    final = series_folder(root, series)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(fetched.folder, final)
    _discard(work_dir)
    if fetched.unverified:  # placed, but never silently: here and in .lidcseg-download.json
        log.warning(
            "%s: %d of %d files not verified by MD5 (%s); their sizes, the instance count and the "
            "series identity were checked",
            series.describe(),
            len(fetched.unverified),
            fetched.n_instances,
            "; ".join(sorted(set(fetched.unverified.values()))),
        )
    log.info(
        "%s %s: %d instances, %.1f MB, %s, %.1f s (%.1f MB/s)",
        series.patient_id,
        series.series_uid,
        fetched.n_instances,
        fetched.n_bytes / 1e6,
        "MD5 verified" if fetched.md5_verified else "not all MD5-verified",
        seconds,
        fetched.n_bytes / 1e6 / max(seconds, 1e-6),
    )
    return record


def _disk_failure(exc: OSError, series: RemoteSeries) -> str:
    """One line for a file operation that failed while placing ``series``, naming the file
    (the ones that stream bytes name theirs themselves: remote.py, unzip.py)."""
    where = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name)
    return f"{series.describe()}: {where or 'placing it'}: {exc.strerror or exc}"


def _discard(work_dir: Path) -> None:
    """Remove a series' temporary folder, and ``.partial`` itself once it is empty."""
    shutil.rmtree(work_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # another series is still being fetched
        work_dir.parent.rmdir()


class _PatientManifests:
    """``<patient>/series.json``, written once all of a patient's series are in place: the
    marker that the patient is complete (what the workflow's later rules wait for)."""

    def __init__(
        self, series: Iterable[RemoteSeries], root: Path, primary: Callable[[str], str | None]
    ):
        self.root = root
        self.primary = primary
        self.by_patient: dict[str, list[RemoteSeries]] = {}
        for item in series:
            self.by_patient.setdefault(item.patient_id, []).append(item)

    def write_complete(self, patient: str | None = None) -> None:
        for name in [patient] if patient else list(self.by_patient):
            items = self.by_patient[name]
            if all(series_folder(self.root, item).is_dir() for item in items):
                main = next(
                    (item for item in items if item.series_uid == self.primary(name)), items[0]
                )
                patient_manifest(self.root, main, items).save(self.root / name / "series.json")


def patient_manifest(root: Path, main: RemoteSeries, items: list[RemoteSeries]) -> SeriesManifest:
    """The patient's series.json (core/series_manifest.py), with where the files came from."""
    placed = series_folder(root, main)
    details = _read_download_record(placed)
    return SeriesManifest(
        patient_id=main.patient_id,
        study_instance_uid=main.study_uid,
        series_instance_uid=main.series_uid,
        series_dir=os.path.relpath(placed, root / main.patient_id),
        n_instances=main.n_instances,
        source=details.get("source", ""),
        origin=details.get("origin", ""),
        md5_verified=details.get("md5_verified", False),
        other_series=[
            os.path.relpath(series_folder(root, s), root / main.patient_id)
            for s in items
            if s is not main
        ],
    )


def _read_download_record(folder: Path) -> dict:
    path = folder / ".lidcseg-download.json"
    return read_json(path) if path.is_file() else {}
