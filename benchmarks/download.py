"""Download throughput on loopback: what our fetch, verification and placement cost.

    python benchmarks/download.py [--slices 133] [--series 4] [--parallel 4]

Serves `--series` full-size synthetic CT series (512 x 512, `--slices` slices, ~0.5 MB a
file; LIDC-IDRI's median series has 133) from the tests' loopback NBIA and S3 servers and
times `download_lidc` for each source: MB/s of DICOM placed, and for TCIA the split between
the transfer and the rest (zip CRCs, extraction, MD5s, header check, move). The network is
loopback, so the figures are the ceiling our own code puts on a real link. Prints only.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lidcseg import config  # noqa: E402
from lidcseg.data.sources.download import Selection, download_lidc  # noqa: E402
from lidcseg.data.sources.idc import IdcSource  # noqa: E402
from lidcseg.data.sources.remote import RetryPolicy  # noqa: E402
from lidcseg.data.sources.route import Route  # noqa: E402
from lidcseg.data.sources.tcia import TciaSource  # noqa: E402
from lidcseg.data.synthetic.synthesize import STORAGES, SeriesIds, to_stored, write_ct_series  # noqa: E402
from tests.support.archive_servers import (  # noqa: E402
    Archive,
    S3Handler,
    nbia_server,
    s3_server,
    series_from_folder,
    write_idc_index,
)
from tests.support.network_guard import pylidc_scans  # noqa: E402


def full_size_archive(n_series: int, n_slices: int, staging: Path) -> Archive:
    archive = Archive()
    rng = np.random.default_rng(0)
    storage = STORAGES["signed-1024"]
    for patient, study, series in pylidc_scans(n_series):
        hu = rng.normal(-500, 400, size=(n_slices, 512, 512))
        folder = staging / series
        write_ct_series(
            folder,
            SeriesIds(patient, study, series, 0.7, 2.5),
            -100 + 2.5 * np.arange(n_slices),
            to_stored(hu, storage),
            storage,
        )
        archive.add(series_from_folder(folder, patient, study, series))
    return archive


def timed(source, patients: tuple[str, ...], out: Path, parallel: int) -> float:
    started = time.perf_counter()
    download_lidc(source, Selection(patients), out, parallel)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=133)
    parser.add_argument("--series", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archive = full_size_archive(args.series, args.slices, tmp / "staging")
        patients = tuple(s.patient_id for s in archive.series.values())
        megabytes = sum(len(b) for s in archive.series.values() for b in s.files.values()) / 1e6
        for series in archive.series.values():  # zipped once, before any timing
            archive.zipped(series, with_md5=True)
        download = config.load(REPO / "config.yaml").download  # the archive's collection names
        policy = RetryPolicy(retries=0, backoff_s=0, timeout_s=60, max_wait_s=0)
        with served(nbia_server, archive) as url:
            base = f"{url}/nbia-api/services"
            transfer = _transfer_only(f"{base}/{download.tcia.api_version}", archive, args.parallel)
            tcia = TciaSource(replace(download.tcia, base_url=base), policy, Route(None, None))
            seconds = timed(tcia, patients, tmp / "tcia", args.parallel)
        print(
            f"tcia: {args.series} series, {megabytes:.0f} MB of DICOM in {seconds:.1f} s = "
            f"{megabytes / seconds:.0f} MB/s; the zips alone, fetched to memory unchecked, "
            f"{transfer:.1f} s "
            f"({args.parallel} series at once)"
        )
        index = write_idc_index(tmp / "index.parquet", archive)
        S3Handler.page_size = 1000  # S3's own page size (the tests page by 3)
        with served(s3_server, archive) as url:
            idc = IdcSource(
                replace(download.idc, endpoint=url, index=str(index)),
                policy,
                Route(None, None),
                args.parallel,
            )
            seconds = timed(idc, patients, tmp / "idc", 1)
        print(
            f"idc:  {args.series} series, {megabytes:.0f} MB in {seconds:.1f} s = "
            f"{megabytes / seconds:.0f} MB/s "
            f"({args.parallel} files at once, series one after the other)"
        )
        shutil.rmtree(tmp / "staging")


@contextmanager
def served(make_server, archive: Archive):
    """The server in a child process, so it does not share this process's GIL with the client."""
    ready = multiprocessing.get_context("fork").Queue()

    def serve() -> None:
        with make_server(archive) as server:
            ready.put(server.url)
            threading.Event().wait()

    child = multiprocessing.get_context("fork").Process(target=serve, daemon=True)
    child.start()
    try:
        yield ready.get(timeout=30)
    finally:
        child.kill()
        child.join()


def _transfer_only(base: str, archive: Archive, parallel: int) -> float:
    """The same zips fetched to memory, ``parallel`` at a time, nothing checked."""
    import requests

    def fetch(uid: str) -> int:
        return len(
            requests.get(
                f"{base}/getImageWithMD5Hash", params={"SeriesInstanceUID": uid}, timeout=60
            ).content
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(fetch, archive.series))
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
