"""Real HTTP servers on loopback for the download tests: an NBIA REST API (TCIA) and an
S3-compatible bucket (IDC), serving synthetic series, with faults injected on request.

What they send is what the real services send (NBIA's ``V1_getImage`` and
``V1_getImageWithMD5Hash`` resources, the same under v4; S3's ListObjectsV2 and GetObject):

- the zips are streamed (Jersey's StreamingOutput) with chunked transfer encoding and no
  Content-Length; their entries are renamed ``00000001.dcm``, ``00000002.dcm``, ...;
  getImage puts a ``LICENSE`` entry first, getImageWithMD5Hash none but a closing
  ``md5hashes.csv`` (``Filename,MD5Hash``, rows in hash-map order, not sorted); neither
  ever holds LIDC's XML (only ``getDCMImage?IncludeAnnotation=true`` adds it);
- IDC's objects are keyed ``<crdc_series_uuid>/<crdc_instance_uuid>.dcm``; an object above
  ``Archive.multipart_above`` bytes was uploaded in parts and its ETag is
  ``"<md5 of the parts' MD5s>-<parts>"``, not its MD5 (8 MiB: the AWS CLI's threshold).

Faults are consumed in order, one per request of the series (``faults[series_uid]``):
``500`` (HTTP 500), ``drop`` (headers and half the body, then the connection closes),
``slow`` (no answer for ``slow_s`` seconds), ``corrupt`` (bytes flipped mid-body). Lasting
content faults (``tamper[series_uid]``) change what the series is: ``bad-md5``,
``short`` (one instance missing), ``traversal`` (a ``../`` entry), ``absolute``,
``symlink``; ``redirect`` answers 302 to another host; ``429`` and ``503`` answer with
``Retry-After: Archive.retry_after``. Every request is logged with its Host header and path.
"""

from __future__ import annotations

import hashlib
import io
import json
import ssl
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import numpy as np

from lidcseg import config
from lidcseg.data.synthetic.synthesize import STORAGES, SeriesIds, to_stored, write_ct_series
from tests.support.paths import REPO


@dataclass
class ServedSeries:
    patient_id: str
    study_uid: str
    series_uid: str
    files: dict[str, bytes]  # name -> bytes of the DICOM files, in the archive's order
    uuid: str = ""  # IDC's crdc_series_uuid

    @property
    def n_instances(self) -> int:
        return sum(1 for name in self.files if name.endswith(".dcm"))

    def instance_key(self, name: str) -> str:
        """IDC's key of one file: ``<crdc_series_uuid>/<crdc_instance_uuid>.dcm``."""
        return f"{self.uuid}/{_uuid_of(self.series_uid + '/' + name)}.dcm"


def _uuid_of(text: str) -> str:
    """A stable UUID in IDC's form (a CRDC uuid is a random UUID, 8-4-4-4-12 hex)."""
    return str(uuid.UUID(bytes=hashlib.md5(text.encode()).digest(), version=4))


def tiny_series(
    patient_id: str, study_uid: str, series_uid: str, n: int = 4, size: int = 16, seed: int = 0
) -> ServedSeries:
    """A small real CT series (pydicom files) with the identity of a real LIDC scan."""
    import tempfile

    rng = np.random.default_rng(seed)
    hu = rng.integers(-1000, 400, size=(n, size, size)).astype(np.float64)
    storage = STORAGES["signed-1024"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_ct_series(
            Path(tmp),
            SeriesIds(patient_id, study_uid, series_uid, 0.7, 2.5),
            -100 + 2.5 * np.arange(n),
            to_stored(hu, storage),
            storage,
        )
        files = {p.name: p.read_bytes() for p in paths}
    return ServedSeries(patient_id, study_uid, series_uid, files, uuid=_uuid_of(series_uid))


def series_from_folder(
    folder: Path, patient_id: str, study_uid: str, series_uid: str
) -> ServedSeries:
    files = {p.name: p.read_bytes() for p in sorted(folder.glob("*.dcm"))}
    return ServedSeries(patient_id, study_uid, series_uid, files, uuid=_uuid_of(series_uid))


@dataclass
class Archive:
    """What a server serves, its faults, and what it was asked."""

    series: dict[str, ServedSeries] = field(default_factory=dict)
    faults: dict[str, list[str]] = field(default_factory=dict)
    tamper: dict[str, str] = field(default_factory=dict)
    listing: dict[str, dict] = field(
        default_factory=dict
    )  # series uid -> fields getSeries reports instead
    requests: list[tuple[str, str]] = field(default_factory=list)  # (Host header, path)
    slow_s: float = 2.0
    throttle_s: dict[str, float] = field(default_factory=dict)  # series uid -> seconds per kB
    retry_after: str = (
        "1"  # what a 429 or 503 fault says (RFC 9110 10.2.3: seconds or an HTTP-date)
    )
    multipart_above: int = (
        8 << 20
    )  # objects larger than this were uploaded in parts (AWS CLI default)
    part_bytes: int = 8 << 20  # and in parts of this size
    lock: threading.Lock = field(default_factory=threading.Lock)
    zips: dict = field(default_factory=dict)
    # a hostile archive: a request whose path and query hold the marker (``getSeries``,
    # ``list-type=2``) is answered by the function, which writes the whole answer itself
    answers: dict[str, Callable[[BaseHTTPRequestHandler], None]] = field(default_factory=dict)

    def add(self, item: ServedSeries) -> None:
        self.series[item.series_uid] = item

    def next_fault(self, series_uid: str) -> str | None:
        with self.lock:
            queue = self.faults.get(series_uid) or []
            return queue.pop(0) if queue else None

    def zipped(self, item: ServedSeries, with_md5: bool) -> bytes:
        """The series as NBIA zips it, built once per (series, endpoint, tamper)."""
        key = (item.series_uid, with_md5, self.tamper.get(item.series_uid))
        with self.lock:
            if key not in self.zips:
                self.zips[key] = _zip_series(item, with_md5, key[2])
            return self.zips[key]

    def nbia_files(self, series_uid: str) -> dict[str, bytes]:
        """The series' files as NBIA names them in its zip, without md5hashes.csv."""
        with zipfile.ZipFile(io.BytesIO(self.zipped(self.series[series_uid], True))) as z:
            return {name: z.read(name) for name in z.namelist() if name.endswith(".dcm")}

    def fetches(self, series_uid: str, marker: str) -> int:
        return sum(1 for _, path in self.requests if marker in path and series_uid in path)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    archive: Archive

    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass

    def do_GET(self) -> None:
        with self.archive.lock:
            self.archive.requests.append((self.headers.get("Host", ""), self.path))
        hostile = [answer for marker, answer in self.archive.answers.items() if marker in self.path]
        if hostile:
            return hostile[0](self)
        url = urlsplit(self.path)
        self.route(url.path, {k: v[0] for k, v in parse_qs(url.query).items()})

    def send_body(
        self,
        body: bytes,
        content_type: str,
        fault: str | None = None,
        extra: dict | None = None,
        throttle_s: float = 0.0,
        chunked: bool = False,
    ) -> None:
        """``body`` with Content-Length, or, ``chunked``, streamed as NBIA streams its zips."""
        if fault == "500":
            return self.send_plain(500, b"internal error")
        if fault in ("429", "503"):
            return self.send_plain(
                int(fault), b"slow down", {"Retry-After": self.archive.retry_after}
            )
        if fault == "redirect":
            self.send_response(302)
            self.send_header(
                "Location", "http://198.51.100.7/elsewhere"
            )  # TEST-NET-2: never routable
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fault == "slow":
            time.sleep(self.archive.slow_s)
        if fault == "corrupt":
            middle = len(body) // 2
            body = (
                body[:middle]
                + bytes(b ^ 0xFF for b in body[middle : middle + 64])
                + body[middle + 64 :]
            )
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header(
            *(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(len(body))))
        )
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        end = len(body) // 2 if fault == "drop" else len(body)
        chunk = 1024 if throttle_s else 1 << 16
        for start in range(0, end, chunk):
            time.sleep(throttle_s)
            piece = body[start : min(start + chunk, end)]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if fault == "drop":  # the connection closes mid-body: no last chunk, or short of the length
            self.wfile.flush()
            self.close_connection = True
        elif chunked:
            self.wfile.write(b"0\r\n\r\n")

    def send_plain(self, status: int, text: bytes, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(text)


class _NbiaHandler(_Handler):
    """``/<version>/getSeries`` and ``/<version>/getImage[WithMD5Hash]``."""

    def route(self, path: str, query: dict) -> None:
        endpoint = path.rstrip("/").rsplit("/", 1)[-1]
        if endpoint == "getSeries":
            listed = self.archive.listing
            rows = [
                {**_series_row(s), **listed.get(s.series_uid, {})}
                for s in self.archive.series.values()
                if query.get("PatientID") in (None, s.patient_id)
                and query.get("Collection") == "LIDC-IDRI"
                and query.get("Modality") == "CT"
            ]
            return self.send_body(json.dumps(rows).encode(), "application/json")
        if endpoint in ("getImage", "getImageWithMD5Hash"):
            item = self.archive.series.get(query.get("SeriesInstanceUID", ""))
            if item is None:
                return self.send_plain(404, b"no such series")
            body = self.archive.zipped(item, with_md5=endpoint == "getImageWithMD5Hash")
            return self.send_body(
                body,
                "application/octet-stream",
                self.archive.next_fault(item.series_uid),
                {"Content-Disposition": f'attachment; filename="{item.series_uid}.zip"'},
                throttle_s=self.archive.throttle_s.get(item.series_uid, 0.0),
                chunked=True,
            )
        self.send_plain(404, b"unknown endpoint")


def _series_row(item: ServedSeries) -> dict:
    """getSeries' fields (v4 adds the licence and release date to v1's; we read neither)."""
    return {
        "Collection": "LIDC-IDRI",
        "PatientID": item.patient_id,
        "StudyInstanceUID": item.study_uid,
        "SeriesInstanceUID": item.series_uid,
        "Modality": "CT",
        "ImageCount": item.n_instances,
        "FileSize": sum(len(b) for b in item.files.values()),
        "Manufacturer": "GE MEDICAL SYSTEMS",
        "LicenseName": "Creative Commons Attribution 3.0 Unported License",
        "LicenseURI": "https://creativecommons.org/licenses/by/3.0/",
        "DateReleased": "2011-09-05 00:00:00.0",
    }


def _zip_series(item: ServedSeries, with_md5: bool, tamper: str | None) -> bytes:
    """NBIA's zip: getImage writes LICENSE, then each file as ``%08d`` + its suffix;
    getImageWithMD5Hash the files, then md5hashes.csv."""
    files = {f"{i:08d}.dcm": data for i, data in enumerate(item.files.values(), start=1)}
    if tamper == "short":
        files.pop(max(files))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if not with_md5:
            archive.writestr("LICENSE", "Creative Commons Attribution 3.0 Unported License")
        for name, data in files.items():
            archive.writestr(name, data)
        if with_md5:
            archive.writestr("md5hashes.csv", _md5_list(files, tamper == "bad-md5"))
        _add_bad_entry(archive, tamper)
    return buffer.getvalue()


def _md5_list(files: dict[str, bytes], wrong: bool) -> str:
    """``Filename,MD5Hash`` rows in a Java HashMap's order (not the zip's): reversed here.
    ``wrong`` gives 00000001.dcm a wrong hash."""
    rows = [
        f"{name},{'0' * 32 if wrong and name == '00000001.dcm' else hashlib.md5(data).hexdigest()}"
        for name, data in reversed(files.items())
    ]
    return "Filename,MD5Hash\n" + "\n".join(rows) + "\n"


def _add_bad_entry(archive: zipfile.ZipFile, tamper: str | None) -> None:
    if tamper == "traversal":
        archive.writestr("../../escaped.dcm", b"outside")
    elif tamper == "absolute":
        archive.writestr("/tmp/lidcseg-absolute.dcm", b"outside")
    elif tamper == "symlink":
        info = zipfile.ZipInfo("link.dcm")
        info.external_attr = 0o120777 << 16  # S_IFLNK
        archive.writestr(info, "/etc/passwd")


class S3Handler(_Handler):
    """Path-style S3 REST: ``GET /<bucket>?list-type=2&prefix=..`` (ListObjectsV2, paged) and
    ``GET /<bucket>/<key>`` (with Content-Length and the object's ETag)."""

    page_size = 3

    def listed_etag(self, key: str, data: bytes) -> str:
        return _listed_etag(self.archive, key, data)

    def route(self, path: str, query: dict) -> None:
        parts = path.lstrip("/").split("/", 1)
        if len(parts) == 1 or not parts[1]:
            return self.list_objects(query)
        key = parts[1]
        series_uuid = key.partition("/")[0]
        item = next((s for s in self.archive.series.values() if s.uuid == series_uuid), None)
        objects = dict(_objects(item, self.archive.tamper.get(item.series_uid))) if item else {}
        if key not in objects:
            return self.send_plain(404, b"<Error><Code>NoSuchKey</Code></Error>")
        data = objects[key]
        fault = self.archive.next_fault(item.series_uid)
        self.send_body(
            data,
            "application/dicom",
            fault,
            {"ETag": f'"{object_etag(self.archive, data)}"'},
            throttle_s=self.archive.throttle_s.get(item.series_uid, 0.0),
        )

    def list_objects(self, query: dict) -> None:
        prefix = query.get("prefix", "")
        listed = sorted(
            (key, data)
            for s in self.archive.series.values()
            for key, data in _objects(s, self.archive.tamper.get(s.series_uid))
            if key.startswith(prefix)
        )
        start = int(query.get("continuation-token", "0"))
        page = listed[start : start + self.page_size]
        more = start + self.page_size < len(listed)
        items = "".join(
            f"<Contents><Key>{escape(key)}</Key><Size>{len(data)}</Size>"
            f"<ETag>&quot;{self.listed_etag(key, data)}&quot;</ETag></Contents>"
            for key, data in page
        )
        token = (
            f"<NextContinuationToken>{start + self.page_size}</NextContinuationToken>"
            if more
            else ""
        )
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
            f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Prefix>{escape(prefix)}</Prefix>'
            f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>"
            f"{items}{token}</ListBucketResult>"
        )
        self.send_body(body.encode(), "application/xml")


def _listed_etag(archive: Archive, key: str, data: bytes) -> str:
    """The object's ETag, or a wrong MD5 for the first object of a ``bad-md5`` series."""
    item = next(s for s in archive.series.values() if key.startswith(s.uuid + "/"))
    if archive.tamper.get(item.series_uid) == "bad-md5" and key == _objects(item, None)[0][0]:
        return "0" * 32
    return object_etag(archive, data)


def object_etag(archive: Archive, data: bytes) -> str:
    """S3's ETag: the MD5 of a single-part upload; for a multipart one, the MD5 of the
    parts' binary MD5s, a dash and the number of parts (no MD5 of the whole object)."""
    if len(data) <= archive.multipart_above:
        return hashlib.md5(data).hexdigest()
    parts = [data[i : i + archive.part_bytes] for i in range(0, len(data), archive.part_bytes)]
    return (
        f"{hashlib.md5(b''.join(hashlib.md5(p).digest() for p in parts)).hexdigest()}-{len(parts)}"
    )


def _objects(item: ServedSeries, tamper: str | None) -> list[tuple[str, bytes]]:
    """IDC's objects of a series: its DICOM files (IDC has no LIDC XML), keyed by UUID."""
    names = [n for n in item.files if n.endswith(".dcm")]
    if tamper == "short":
        names = names[:-1]
    objects = [(item.instance_key(name), item.files[name]) for name in names]
    if tamper == "traversal":
        objects.append((f"{item.uuid}/../escaped.dcm", b"outside"))
    return objects


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up mid-transfer (a killed download) is part of the tests


class LoopbackServer:
    """A threading HTTP server on 127.0.0.1 (a free port), stopped on exit; HTTPS with ``tls``."""

    def __init__(
        self, handler: type[_Handler], archive: Archive, tls: ssl.SSLContext | None = None
    ):
        handler_class = type(handler.__name__, (handler,), {"archive": archive})
        self.archive = archive
        self.httpd = _QuietServer(("127.0.0.1", 0), handler_class)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def nbia_server(archive: Archive, tls: ssl.SSLContext | None = None) -> LoopbackServer:
    return LoopbackServer(_NbiaHandler, archive, tls)


def s3_server(archive: Archive) -> LoopbackServer:
    return LoopbackServer(S3Handler, archive)


def write_idc_index(path: Path, archive: Archive, bucket: str = "idc-open-data") -> Path:
    """A parquet file with idc-index's columns for the served series."""
    import duckdb

    rows = [
        (
            s.patient_id,
            s.study_uid,
            s.series_uid,
            s.n_instances,
            sum(map(len, s.files.values())) / 1e6,
            bucket,
            s.uuid,
            f"s3://{bucket}/{s.uuid}/*",
        )
        for s in archive.series.values()
    ]
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE idx (collection_id VARCHAR, PatientID VARCHAR, StudyInstanceUID VARCHAR, "
        "SeriesInstanceUID VARCHAR, Modality VARCHAR, instanceCount BIGINT, series_size_MB DOUBLE, "
        "aws_bucket VARCHAR, crdc_series_uuid VARCHAR, series_aws_url VARCHAR)"
    )
    con.executemany("INSERT INTO idx VALUES ('lidc_idri', ?, ?, ?, 'CT', ?, ?, ?, ?, ?)", rows)
    con.execute(f"COPY idx TO '{path}' (FORMAT PARQUET)")
    return path


# No retry, no wait, no proxy: a hostile answer is refused at once.
AT_ONCE = {"retries": 0, "backoff_s": 0, "max_wait_s": 0, "timeout_s": 5, "proxy": None}


def download_settings(base_url: str, source: str = "tcia", **download) -> str:
    """--settings for `lidcseg download`: the default download and execution sections,
    reaching ``base_url`` at once (``download`` overrides execution.download's keys)."""
    data = config.load_sections(str(REPO / "config.yaml"), ("download", "execution"))
    if source == "tcia":
        data["download"]["tcia"]["base_url"] = base_url
    else:
        data["download"]["idc"]["endpoint"] = base_url
    data["execution"]["download"].update(AT_ONCE, **download)
    return json.dumps(data)
