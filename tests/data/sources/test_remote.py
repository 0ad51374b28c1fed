"""The HTTP client's retries: Retry-After on 429/503 honoured and capped (RFC 9110 10.2.3),
against the loopback NBIA server; waits are recorded, not slept."""

from __future__ import annotations

import time
from dataclasses import replace
from email.utils import formatdate
from types import SimpleNamespace

import pytest

from lidcseg.data.sources import remote
from lidcseg.data.sources.download import Selection, download_lidc
from lidcseg.data.sources.remote import DownloadError, RetryPolicy, retry_after_s
from lidcseg.data.sources.tcia import TciaSource
from lidcseg.io import read_json
from tests.support.archive_servers import Archive, nbia_server, tiny_series
from tests.support.defaults import DEFAULTS, DIRECT
from tests.support.network_guard import pylidc_scans

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        (formatdate(NOW + 30, usegmt=True), 30.0),  # IMF-fixdate, the form RFC 9110 senders use
        (formatdate(NOW - 30, usegmt=True), 0.0),  # a date already past: no wait asked
        ("Sunday, 06-Nov-94 08:49:37 GMT", 0.0),  # the obsolete RFC 850 form, long past
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value, seconds):
    assert retry_after_s(value, now=NOW) == seconds


def test_a_wait_is_the_longer_of_backoff_and_retry_after_and_never_over_the_cap():
    policy = RetryPolicy(retries=5, backoff_s=1.0, timeout_s=1.0, max_wait_s=10.0)
    assert [policy.wait_s(k) for k in range(5)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert (
        policy.wait_s(0, 6.0) == 6.0
        and policy.wait_s(2, 3.0) == 4.0
        and policy.wait_s(0, 3600.0) == 10.0
    )


@pytest.fixture
def scan():
    return pylidc_scans(1)[0]


@pytest.fixture
def server(scan):
    archive = Archive()
    archive.add(tiny_series(*scan))
    with nbia_server(archive) as running:
        yield running


@pytest.fixture
def waits(monkeypatch):
    """Every wait between attempts, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(
        remote,
        "time",
        SimpleNamespace(sleep=recorded.append, time=time.time, perf_counter=time.perf_counter),
    )
    return recorded


@pytest.mark.parametrize(
    "fault, retry_after, cap, expected",
    [
        ("429", "3", 5.0, 3.0),  # honoured over the 0.01 s backoff
        ("503", "3600", 0.5, 0.5),  # capped
        ("429", "soon", 5.0, 0.01),  # unreadable: the backoff decides
    ],
)
def test_retry_after_on_429_and_503_is_waited_up_to_the_cap(
    server, scan, tmp_path, waits, caplog, fault, retry_after, cap, expected
):
    server.archive.faults[scan[2]] = [fault]
    server.archive.retry_after = retry_after
    policy = RetryPolicy(retries=1, backoff_s=0.01, timeout_s=5.0, max_wait_s=cap)
    source = TciaSource(
        replace(DEFAULTS.download.tcia, base_url=f"{server.url}/nbia-api/services"), policy, DIRECT
    )
    download_lidc(source, Selection((scan[0],)), tmp_path, 1)
    assert waits == [expected]
    assert read_json(tmp_path / scan[0] / "series.json")["md5_verified"]
    assert (f"HTTP {fault}" in caplog.text) and (
        ("Retry-After" in caplog.text) == (retry_after != "soon")
    )


def test_an_http_date_retry_after_is_waited(server, scan, tmp_path, waits):
    server.archive.faults[scan[2]] = ["503"]
    server.archive.retry_after = formatdate(time.time() + 4, usegmt=True)
    policy = RetryPolicy(retries=1, backoff_s=0.01, timeout_s=5.0, max_wait_s=60.0)
    source = TciaSource(
        replace(DEFAULTS.download.tcia, base_url=f"{server.url}/nbia-api/services"), policy, DIRECT
    )
    download_lidc(source, Selection((scan[0],)), tmp_path, 1)
    assert (
        len(waits) == 1 and 2.0 < waits[0] <= 4.0
    )  # whole seconds on the wire, less the time since


def test_a_server_that_keeps_asking_to_wait_is_named_after_the_retries(
    server, scan, tmp_path, waits
):
    server.archive.faults[scan[2]] = ["429"] * 3
    policy = RetryPolicy(retries=2, backoff_s=0.01, timeout_s=5.0, max_wait_s=0.2)
    source = TciaSource(
        replace(DEFAULTS.download.tcia, base_url=f"{server.url}/nbia-api/services"), policy, DIRECT
    )
    with pytest.raises(DownloadError, match=f"{scan[2]}.*gave up after 3 attempts: HTTP 429"):
        download_lidc(source, Selection((scan[0],)), tmp_path, 1)
    assert waits == [0.2, 0.2]
