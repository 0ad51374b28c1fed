"""How much of an archive's answer is read, and what it must look like before it is believed.

The server (or whatever answers in its place: a proxy, a captive portal, someone on the path)
decides how many bytes it sends, so every answer is read against a cap and refused, naming
its URL (never its credentials) and the cap, the moment it passes it. Memory and disk then
cost at most the cap, whatever is sent:

- A metadata answer (NBIA's ``getSeries`` JSON, one page of an S3 ListObjectsV2 listing):
  :data:`METADATA_MAX_BYTES`, 8 MiB. Every CT series of LIDC-IDRI in one ``getSeries``
  answer is about 1 MB; a listing page of 1,000 keys about 0.4 MB.
- A series, as transferred (TCIA's zip, IDC's objects together) and as unpacked:
  :func:`series_limit`, twice the size the archive lists for it plus 1 MiB, never more than
  :data:`SERIES_MAX_BYTES` (8 GiB; LIDC-IDRI's largest CT series is under 0.5 GB), which
  also bounds a series the archive lists no size for.
- ``Content-Length``, when sent, must be a byte count (RFC 9110 8.6: digits only) and within
  the cap, checked before the body is read.
- JSON is parsed only when it nests like data: Python's parser recurses once per level, and
  an answer nested thousands deep is refused here rather than ending in RecursionError.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit, urlunsplit

import requests

from lidcseg.data.sources.failures import DownloadError, RetryableError

METADATA_MAX_BYTES = 8 << 20
SERIES_MAX_BYTES = 8 << 30
SERIES_SLACK_BYTES = 1 << 20  # a zip's own headers, md5hashes.csv, LICENSE
READ_BYTES = 1 << 16
BYTE_COUNT = re.compile(r"[0-9]{1,20}")


def shown(url: str) -> str:
    """``url`` as an error may show it: without ``user:password@``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def series_limit(listed_bytes: int | None) -> int:
    """The most bytes one series may transfer, or unpack to: twice what the archive lists for
    it plus 1 MiB (a zip of the files is never larger than the files and a few headers), at
    most :data:`SERIES_MAX_BYTES`; that cap alone when the archive lists no size."""
    if not listed_bytes:
        return SERIES_MAX_BYTES
    return min(SERIES_MAX_BYTES, 2 * listed_bytes + SERIES_SLACK_BYTES)


def too_large(what: str, where: str, cap: int, kind: str) -> DownloadError:
    """The one-line refusal of an answer or file past its cap (never retried: the server
    would send the same)."""
    return DownloadError(f"{what}: {where}: more than {cap:,} bytes, the most {kind} may be")


def content_length(response: requests.Response, what: str) -> int | None:
    """The answer's Content-Length as a number, None when absent; one that is no byte count
    is refused (requests would silently read to the end instead)."""
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    if not BYTE_COUNT.fullmatch(value.strip()):
        response.close()
        raise DownloadError(
            f"{what}: {shown(response.url)}: Content-Length {value[:40]!r} is not a byte count"
        )
    return int(value)


def read_capped(
    response: requests.Response,
    what: str,
    cap: int = METADATA_MAX_BYTES,
    kind: str = "a metadata answer",
) -> bytes:
    """The body of a streamed ``response``, refused as soon as it passes ``cap`` bytes (or
    says it will, by its Content-Length)."""
    with response:
        length = content_length(response, what)
        if length is not None and length > cap:
            raise too_large(what, shown(response.url), cap, kind)
        body = bytearray()
        for chunk in response.iter_content(READ_BYTES):
            body += chunk
            if len(body) > cap:
                raise too_large(what, shown(response.url), cap, kind)
    return bytes(body)


def parse_json(body: bytes, what: str, url: str):
    """A JSON answer (an empty one is an empty list, as NBIA answers for no match). Not JSON
    is retryable (a proxy's error page, a cut answer); JSON nested too deep for the parser is
    refused at once."""
    if not body.strip():
        return []
    try:
        return json.loads(body)
    except RecursionError:
        raise DownloadError(f"{what}: {shown(url)}: JSON nested too deeply to be data") from None
    except ValueError as exc:
        raise RetryableError(f"{what}: the answer is not JSON") from exc
