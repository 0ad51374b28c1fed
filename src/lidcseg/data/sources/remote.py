"""HTTP(S) to one configured host, with retries: what both download sources talk through.

- :class:`RemoteClient` talks to exactly one host (scheme, host and port): any other URL, a
  redirect elsewhere included, is refused before a socket opens. It goes directly or through
  the proxy ``execution.download.proxy`` names (:mod:`lidcseg.data.sources.route`), never .netrc.
- :func:`retrying` retries dropped connections, timeouts, HTTP 429/5xx and damaged transfers
  (:class:`RetryableError`) with exponential backoff; other HTTP errors fail at once. A 429 or
  503 with ``Retry-After`` (RFC 9110 10.2.3: seconds or an HTTP-date; RFC 6585 4 for 429)
  waits at least that long, never more than ``execution.download.max_wait_s``.
- Transfers stream to a file, count into a shared byte-level progress bar, and end in
  RetryableError when they stop short of their Content-Length.
- Every answer is read against a cap (:mod:`lidcseg.data.sources.answers`): metadata within
  a few MB, a series within what the archive lists for it; past it, refused, not retried.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
from tqdm import tqdm

from lidcseg.config import DownloadExecution
from lidcseg.data.sources.answers import (
    content_length,
    parse_json,
    read_capped,
    shown,
    too_large,
)
from lidcseg.data.sources.failures import (  # noqa: F401 (re-exported: the download path's errors)
    CorruptSeries,
    DownloadError,
    RetryableError,
    reason_of,
)
from lidcseg.data.sources.route import Route

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RETRY_AFTER_STATUS = frozenset(
    {429, 503}
)  # where RFC 9110 10.2.3 and RFC 6585 4 give Retry-After a meaning


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``retries`` more attempts after the first, waiting backoff_s x 2^k,
    or the server's Retry-After when longer; never more than ``max_wait_s`` at a time."""

    retries: int
    backoff_s: float
    timeout_s: float  # connect and between two reads, not the whole transfer
    max_wait_s: float

    @classmethod
    def of(cls, download: DownloadExecution) -> RetryPolicy:
        return cls(download.retries, download.backoff_s, download.timeout_s, download.max_wait_s)

    def wait_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        return min(max(self.backoff_s * 2**attempt, retry_after_s or 0.0), self.max_wait_s)


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks for (RFC 9110 10.2.3: ``delay-seconds``, digits
    only, or an ``HTTP-date``, which may lie in the past: 0), or None when absent or unreadable
    (then the backoff alone decides)."""
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def retrying(call: Callable[[], object], what: str, policy: RetryPolicy):
    """``call()``, again after each retryable failure, up to ``policy.retries`` more times."""
    for attempt in range(policy.retries + 1):
        try:
            return call()
        except (
            RetryableError,
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            reason = reason_of(exc).removeprefix(f"{what}: ")
            if attempt == policy.retries:
                raise DownloadError(
                    f"{what}: gave up after {attempt + 1} attempts: {reason}"
                ) from exc
            asked = getattr(exc, "retry_after_s", None)
            wait = policy.wait_s(attempt, asked)
            note = (
                ""
                if asked is None
                else f" (Retry-After {asked:.0f} s, at most {policy.max_wait_s:g} s)"
            )
            log.warning(
                "%s: %s; retry %d of %d in %.1f s%s",
                what,
                reason,
                attempt + 1,
                policy.retries,
                wait,
                note,
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


class RemoteClient:
    """HTTP(S) to one host only. ``base_url`` fixes scheme, host and port; every request
    is checked against them, and redirects are never followed to another host."""

    def __init__(self, base_url: str, policy: RetryPolicy, route: Route):
        self.base_url = base_url.rstrip("/") + "/"
        self.origin = _origin(self.base_url)
        self.policy = policy
        self.session = requests.Session()
        # The route alone decides proxy and CAs (read once, for this host); requests would
        # otherwise merge the environment's proxies, CA bundle and .netrc into every request.
        self.session.trust_env = False
        self.session.proxies = route.proxies_for(self.base_url)
        self.session.verify = route.verify()
        self.session.headers["User-Agent"] = "lidcseg (https://github.com/lidcseg)"

    def url(self, path: str) -> str:
        return urljoin(self.base_url, path.lstrip("/"))

    def get(
        self, url: str, what: str, params: dict | None = None, stream: bool = False
    ) -> requests.Response:
        """One GET (no retry): the response of a 2xx, RetryableError for 429/5xx, DownloadError
        for any other status or for a URL or redirect off the configured host."""
        for _ in range(5):
            self._check_host(url, what)
            response = self.session.get(
                url,
                params=params,
                stream=stream,
                allow_redirects=False,
                timeout=(self.policy.timeout_s, self.policy.timeout_s),
            )
            if response.is_redirect:
                url, params = urljoin(url, response.headers["Location"]), None
                response.close()
                continue
            if response.status_code in RETRYABLE_STATUS:
                response.close()
                asked = (
                    retry_after_s(response.headers.get("Retry-After"))
                    if response.status_code in RETRY_AFTER_STATUS
                    else None
                )
                raise RetryableError(
                    f"{what}: HTTP {response.status_code} from {self.origin}", asked
                )
            if not response.ok:
                response.close()
                raise DownloadError(
                    f"{what}: HTTP {response.status_code} from {shown(response.url)}"
                )
            return response
        raise DownloadError(f"{what}: too many redirects")

    def get_json(self, path: str, what: str, params: dict | None = None):
        """A metadata answer as JSON, read within answers.METADATA_MAX_BYTES."""

        def call():
            response = self.get(self.url(path), what, params, stream=True)
            return parse_json(read_capped(response, what), what, response.url)

        return retrying(call, what, self.policy)

    def get_text(self, path: str, what: str, params: dict | None = None) -> str:
        """A metadata answer as text, read within answers.METADATA_MAX_BYTES."""

        def call():
            response = self.get(self.url(path), what, params, stream=True)
            return read_capped(response, what).decode(response.encoding or "utf-8", "replace")

        return retrying(call, what, self.policy)

    def download(
        self,
        url: str,
        dest: Path,
        what: str,
        progress: tqdm | None = None,
        params: dict | None = None,
        estimate: int | None = None,
        *,
        max_bytes: int,
    ) -> tuple[int, str]:
        """Stream ``url`` to ``dest`` once; return (bytes, MD5 hex). A transfer that ends
        short of its Content-Length, or of its last chunk, raises RetryableError: the
        caller's ``retrying`` around the whole fetch-and-verify decides on another attempt.
        (NBIA streams its zips chunked, without Content-Length; a zip cut off between
        chunks by a proxy fails the zip's own checks.) One that says or sends more than
        ``max_bytes`` (answers.series_limit) is refused, and a write that fails (a full disk)
        names ``dest``. ``estimate``, the size the progress bar counted on, is corrected to
        the Content-Length when one comes, else to what came."""
        response = self.get(url, what, params, stream=True)
        length = content_length(response, what)
        if length is not None and length > max_bytes:
            response.close()
            raise too_large(what, shown(response.url), max_bytes, "this transfer")
        with _corrected_total(progress, estimate, length):
            n_bytes, md5 = _stream_to(response, dest, what, progress, max_bytes)
        if length is None and estimate:
            add_to_total(progress, n_bytes - estimate)
        return n_bytes, md5

    def _check_host(self, url: str, what: str) -> None:
        if _origin(url) != self.origin:
            raise DownloadError(
                f"{what}: refused to contact {_origin(url)}; only {self.origin} is configured"
            )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{parts.hostname}:{port}"


@contextmanager
def _corrected_total(progress: tqdm | None, estimate: int | None, length: int | None):
    """The bar's total with this transfer's real size in place of its estimate (a TCIA zip
    is smaller than the series' FileSize), put back if the transfer fails."""
    change = length - estimate if progress is not None and estimate and length else 0
    add_to_total(progress, change)
    try:
        yield
    except BaseException:
        add_to_total(progress, -change)
        raise


def add_to_total(progress: tqdm | None, change: int) -> None:
    if change and progress is not None and progress.total is not None:
        with progress.get_lock():
            progress.total += change
            progress.refresh()


def _stream_to(
    response: requests.Response, dest: Path, what: str, progress: tqdm | None, max_bytes: int
) -> tuple[int, str]:
    expected = content_length(response, what)
    digest, written = hashlib.md5(), 0
    try:
        with response, open(dest, "wb") as out:
            for chunk in response.iter_content(CHUNK_BYTES):
                if written + len(chunk) > max_bytes:
                    raise too_large(what, shown(response.url), max_bytes, "this transfer")
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                if progress is not None:
                    progress.update(len(chunk))
    except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError) as exc:
        _uncount(progress, written)
        raise RetryableError(
            f"{what}: connection broken after {written:,} of {expected or '?'} bytes"
        ) from exc
    except requests.RequestException:
        _uncount(progress, written)
        raise
    except OSError as exc:  # requests' errors are OSErrors too: these are the file's own
        _uncount(progress, written)
        raise DownloadError(f"{what}: writing {dest}: {exc.strerror or exc}") from exc
    except BaseException:
        _uncount(progress, written)
        raise
    if expected is not None and written != expected:
        _uncount(progress, written)
        raise RetryableError(f"{what}: connection ended after {written:,} of {expected:,} bytes")
    return written, digest.hexdigest()


def _uncount(progress: tqdm | None, written: int) -> None:
    if progress is not None:
        progress.update(-written)
