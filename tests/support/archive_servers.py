"""Real HTTP servers on loopback for the download tests: an NBIA REST API (TCIA) and an
S3-compatible bucket (IDC), serving synthetic series, with faults injected on request.

Faults are consumed in order, one per request of the series (``faults[series_uid]``):
``500`` (HTTP 500), ``drop`` (headers and half the body, then the connection closes),
``slow`` (no answer for ``slow_s`` seconds), ``corrupt`` (bytes flipped mid-body). Lasting
content faults (``tamper[series_uid]``) change what the series is: ``bad-md5``,
``short`` (one instance missing), ``traversal`` (a ``../`` entry), ``absolute``,
``symlink``; ``redirect`` answers 302 to another host. Every request is logged with its Host header and path.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import numpy as np

from lidcseg.data.synthetic.synthesize import STORAGES, SeriesIds, to_stored, write_ct_series


@dataclass
class ServedSeries:
    patient_id: str
    study_uid: str
    series_uid: str
    files: dict[str, bytes]  # name -> bytes (DICOM and the LIDC XML)
    uuid: str = ""  # IDC's crdc_series_uuid

    @property
    def n_instances(self) -> int:
        return sum(1 for name in self.files if name.endswith(".dcm"))


def tiny_series(patient_id: str, study_uid: str, series_uid: str, n: int = 4, size: int = 16,
                seed: int = 0) -> ServedSeries:
    """A small real CT series (pydicom files) with the identity of a real LIDC scan."""
    import tempfile

    rng = np.random.default_rng(seed)
    hu = rng.integers(-1000, 400, size=(n, size, size)).astype(np.float64)
    storage = STORAGES["signed-1024"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_ct_series(Path(tmp), SeriesIds(patient_id, study_uid, series_uid, 0.7, 2.5),
                                -100 + 2.5 * np.arange(n), to_stored(hu, storage), storage)
        files = {p.name: p.read_bytes() for p in paths}
    files["069.xml"] = b"<LidcReadMessage><ResponseHeader/></LidcReadMessage>"
    return ServedSeries(patient_id, study_uid, series_uid, files,
                        uuid=hashlib.md5(series_uid.encode()).hexdigest())


def series_from_folder(folder: Path, patient_id: str, study_uid: str, series_uid: str) -> ServedSeries:
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    return ServedSeries(patient_id, study_uid, series_uid, files, uuid=hashlib.md5(series_uid.encode()).hexdigest())


@dataclass
class Archive:
    """What a server serves, its faults, and what it was asked."""

    series: dict[str, ServedSeries] = field(default_factory=dict)
    faults: dict[str, list[str]] = field(default_factory=dict)
    tamper: dict[str, str] = field(default_factory=dict)
    listing: dict[str, dict] = field(default_factory=dict)  # series uid -> fields getSeries reports instead
    requests: list[tuple[str, str]] = field(default_factory=list)  # (Host header, path)
    slow_s: float = 2.0
    throttle_s: dict[str, float] = field(default_factory=dict)  # series uid -> seconds per kB
    lock: threading.Lock = field(default_factory=threading.Lock)
    zips: dict = field(default_factory=dict)

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
        url = urlsplit(self.path)
        self.route(url.path, {k: v[0] for k, v in parse_qs(url.query).items()})

    def send_body(self, body: bytes, content_type: str, fault: str | None = None, extra: dict | None = None,
                  throttle_s: float = 0.0) -> None:
        if fault == "500":
            return self.send_plain(500, b"internal error")
        if fault == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://198.51.100.7/elsewhere")  # TEST-NET-2: never routable
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fault == "slow":
            time.sleep(self.archive.slow_s)
        if fault == "corrupt":
            middle = len(body) // 2
            body = body[:middle] + bytes(b ^ 0xFF for b in body[middle:middle + 64]) + body[middle + 64:]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if fault == "drop":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        chunk = 1024 if throttle_s else 1 << 16
        for start in range(0, len(body), chunk):
            time.sleep(throttle_s)
            self.wfile.write(body[start:start + chunk])

    def send_plain(self, status: int, text: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


class _NbiaHandler(_Handler):
    """``/<version>/getSeries`` and ``/<version>/getImage[WithMD5Hash]``."""

    def route(self, path: str, query: dict) -> None:
        endpoint = path.rstrip("/").rsplit("/", 1)[-1]
        if endpoint == "getSeries":
            listed = self.archive.listing
            rows = [{**_series_row(s), **listed.get(s.series_uid, {})} for s in self.archive.series.values()
                    if query.get("PatientID") in (None, s.patient_id)
                    and query.get("Collection") == "LIDC-IDRI" and query.get("Modality") == "CT"]
            return self.send_body(json.dumps(rows).encode(), "application/json")
        if endpoint in ("getImage", "getImageWithMD5Hash"):
            item = self.archive.series.get(query.get("SeriesInstanceUID", ""))
            if item is None:
                return self.send_plain(404, b"no such series")
            body = self.archive.zipped(item, with_md5=endpoint == "getImageWithMD5Hash")
            return self.send_body(body, "application/zip", self.archive.next_fault(item.series_uid),
                                  throttle_s=self.archive.throttle_s.get(item.series_uid, 0.0))
        self.send_plain(404, b"unknown endpoint")


def _series_row(item: ServedSeries) -> dict:
    return {"Collection": "LIDC-IDRI", "PatientID": item.patient_id, "StudyInstanceUID": item.study_uid,
            "SeriesInstanceUID": item.series_uid, "Modality": "CT", "ImageCount": item.n_instances,
            "FileSize": sum(len(b) for b in item.files.values())}


def _zip_series(item: ServedSeries, with_md5: bool, tamper: str | None) -> bytes:
    files = dict(item.files)
    if tamper == "short":
        files.pop(sorted(n for n in files if n.endswith(".dcm"))[-1])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        if with_md5:
            archive.writestr("md5hashes.csv", _md5_list(files, tamper == "bad-md5"))
        archive.writestr("LICENSE", "Creative Commons Attribution 3.0 Unported License")
        _add_bad_entry(archive, tamper)
    return buffer.getvalue()


def _md5_list(files: dict[str, bytes], wrong: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Filename", "MD5Hash"])
    for i, (name, data) in enumerate(sorted(files.items())):
        digest = hashlib.md5(data).hexdigest()
        writer.writerow([name, ("0" * 32) if wrong and i == 0 else digest])
    return out.getvalue()


def _add_bad_entry(archive: zipfile.ZipFile, tamper: str | None) -> None:
    if tamper == "traversal":
        archive.writestr("../../escaped.dcm", b"outside")
    elif tamper == "absolute":
        archive.writestr("/tmp/lidcseg-absolute.dcm", b"outside")
    elif tamper == "symlink":
        info = zipfile.ZipInfo("link.dcm")
        info.external_attr = (0o120777 << 16)  # S_IFLNK
        archive.writestr(info, "/etc/passwd")


class S3Handler(_Handler):
    """Path-style S3 REST: ``GET /<bucket>?list-type=2&prefix=..`` (ListObjectsV2, paged) and
    ``GET /<bucket>/<key>`` (with Content-Length and an MD5 ETag)."""

    page_size = 3

    def listed_etag(self, key: str, data: bytes) -> str:
        return _listed_etag(self.archive, key, data)

    def route(self, path: str, query: dict) -> None:
        parts = path.lstrip("/").split("/", 1)
        if len(parts) == 1 or not parts[1]:
            return self.list_objects(query)
        key = parts[1]
        uuid, _, name = key.partition("/")
        item = next((s for s in self.archive.series.values() if s.uuid == uuid), None)
        objects = dict(_objects(item, self.archive.tamper.get(item.series_uid))) if item else {}
        if key not in objects:
            return self.send_plain(404, b"<Error><Code>NoSuchKey</Code></Error>")
        data = objects[key]
        fault = self.archive.next_fault(item.series_uid)
        self.send_body(data, "application/dicom", fault, {"ETag": f'"{hashlib.md5(data).hexdigest()}"'},
                       throttle_s=self.archive.throttle_s.get(item.series_uid, 0.0))

    def list_objects(self, query: dict) -> None:
        prefix = query.get("prefix", "")
        listed = sorted((key, data) for s in self.archive.series.values()
                        for key, data in _objects(s, self.archive.tamper.get(s.series_uid)) if key.startswith(prefix))
        start = int(query.get("continuation-token", "0"))
        page = listed[start:start + self.page_size]
        more = start + self.page_size < len(listed)
        items = "".join(f"<Contents><Key>{escape(key)}</Key><Size>{len(data)}</Size>"
                        f"<ETag>&quot;{self.listed_etag(key, data)}&quot;</ETag></Contents>" for key, data in page)
        token = f"<NextContinuationToken>{start + self.page_size}</NextContinuationToken>" if more else ""
        body = (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
                f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Prefix>{escape(prefix)}</Prefix>'
                f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>{items}{token}</ListBucketResult>")
        self.send_body(body.encode(), "application/xml")


def _listed_etag(archive: Archive, key: str, data: bytes) -> str:
    """The object's MD5, or a wrong one for the first object of a ``bad-md5`` series."""
    item = next(s for s in archive.series.values() if key.startswith(s.uuid + "/"))
    if archive.tamper.get(item.series_uid) == "bad-md5" and key == _objects(item, None)[0][0]:
        return "0" * 32
    return hashlib.md5(data).hexdigest()


def _objects(item: ServedSeries, tamper: str | None) -> list[tuple[str, bytes]]:
    """IDC's objects of a series: its DICOM files only (IDC has no LIDC XML)."""
    names = sorted(n for n in item.files if n.endswith(".dcm"))
    if tamper == "short":
        names = names[:-1]
    objects = [(f"{item.uuid}/{name}", item.files[name]) for name in names]
    if tamper == "traversal":
        objects.append((f"{item.uuid}/../escaped.dcm", b"outside"))
    return objects


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up mid-transfer (a killed download) is part of the tests


class LoopbackServer:
    """A threading HTTP server on 127.0.0.1 (a free port), stopped on exit."""

    def __init__(self, handler: type[_Handler], archive: Archive):
        handler_class = type(handler.__name__, (handler,), {"archive": archive})
        self.archive = archive
        self.httpd = _QuietServer(("127.0.0.1", 0), handler_class)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def nbia_server(archive: Archive) -> LoopbackServer:
    return LoopbackServer(_NbiaHandler, archive)


def s3_server(archive: Archive) -> LoopbackServer:
    return LoopbackServer(S3Handler, archive)


def write_idc_index(path: Path, archive: Archive, bucket: str = "idc-open-data") -> Path:
    """A parquet file with idc-index's columns for the served series."""
    import duckdb

    rows = [(s.patient_id, s.study_uid, s.series_uid, s.n_instances, sum(map(len, s.files.values())) / 1e6,
             f"s3://{bucket}/{s.uuid}/*") for s in archive.series.values()]
    con = duckdb.connect()
    con.execute("CREATE TABLE idx (collection_id VARCHAR, PatientID VARCHAR, StudyInstanceUID VARCHAR, "
                "SeriesInstanceUID VARCHAR, Modality VARCHAR, instanceCount BIGINT, series_size_MB DOUBLE, "
                "series_aws_url VARCHAR)")
    con.executemany("INSERT INTO idx VALUES ('lidc_idri', ?, ?, ?, 'CT', ?, ?, ?)", rows)
    con.execute(f"COPY idx TO '{path}' (FORMAT PARQUET)")
    return path
