"""What a download raises: the failures every module of the download path shares.

They live apart from the HTTP client (:mod:`lidcseg.data.sources.remote`, which re-exports
them) so that the modules that judge an answer before it is believed
(:mod:`lidcseg.data.sources.answers`) can raise them without importing the client.
"""

from __future__ import annotations

from lidcseg.errors import LidcsegError


class DownloadError(LidcsegError):
    """A series (or a query) that could not be fetched and verified; names what failed."""


class RetryableError(DownloadError):
    """A failure worth another try: a dropped connection, a timeout, HTTP 429 or 5xx.
    ``retry_after_s``: how long the server asked us to wait, when it said."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class CorruptSeries(RetryableError):
    """What arrived is not the series the archive lists: a damaged zip, a wrong MD5, files
    missing. Worth another fetch: bytes get damaged in transit, proxies cut transfers short."""


def reason_of(exc: Exception) -> str:
    """The first line of an exception's message (at most 300 characters), or its type."""
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
