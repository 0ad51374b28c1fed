"""Scans that inspect must refuse, naming the file, without crashing: the cohort goes on with
the others (the screen checkpoint waits for a record from every scan)."""

from __future__ import annotations

import pydicom
import pytest

from lidcseg.cli import main
from lidcseg.data.dataset.gate import inspect_series
from lidcseg.io import read_json
from tests.support.defaults import DEFAULTS, settings_json
from tests.support.series import make_series


def _retag(path, **tags) -> None:
    """Rewrite one file with `tags` set (None deletes the tag)."""
    ds = pydicom.dcmread(path)
    for keyword, value in tags.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)


def _inspect(folder, tmp_path, patient=None) -> dict:
    out = tmp_path / "record.json"
    inspect_series(folder, out, DEFAULTS.convert, patient)
    return read_json(out)  # the record is on disk, whatever the verdict


@pytest.mark.parametrize("layout", ["empty series folder", "only the XML", "empty patient folder"])
def test_a_folder_without_slices_is_a_rejected_record(tmp_path, layout):
    patient = tmp_path / "LIDC-IDRI-9999"
    series = patient / "1.2" / "1.2.3"
    if layout != "empty patient folder":
        series.mkdir(parents=True)
    else:
        patient.mkdir()
    if layout == "only the XML":
        (series / "069.xml").write_text("<LidcReadMessage/>")
    record = _inspect(patient, tmp_path)
    assert record["status"] == "rejected" and str(patient.name) in record["reason"]


@pytest.mark.parametrize(
    "tags, words",
    [
        ({"PixelSpacing": [0.7]}, "PixelSpacing [0.7] is not 2 finite numbers"),
        ({"PixelSpacing": [0, 0]}, "PixelSpacing [0.0, 0.0] is not positive"),
        (
            {"ImagePositionPatient": [0, 0, float("nan")]},
            "ImagePositionPatient [0.0, 0.0, nan] is not 3 finite",
        ),
        ({"RescaleSlope": 0}, "RescaleSlope is 0"),
        (
            {"RescaleIntercept": None},
            "RescaleSlope/Intercept missing here but present in 5 other slices",
        ),
        (
            {"PatientID": "LIDC-IDRI-0002"},
            "PatientID 'LIDC-IDRI-0002' differs from 'LIDC-IDRI-9999'",
        ),
    ],
)
def test_a_bad_slice_is_named_and_the_scan_rejected(tmp_path, tags, words):
    folder = tmp_path / "s"
    _, paths = make_series(folder)
    _retag(paths[2], **tags)
    record = _inspect(folder, tmp_path)
    assert (
        record["status"] == "rejected"
        and words in record["reason"]
        and paths[2].name in record["reason"]
    )
    assert (
        main(
            [
                "convert",
                str(folder),
                str(tmp_path / "hu.nii.gz"),
                "--settings",
                settings_json(convert={}),
            ]
        )
        == 2
    )
    assert not (tmp_path / "hu.nii.gz").exists()


def test_a_series_without_any_rescale_tags_is_still_read_as_hu(tmp_path):
    folder = tmp_path / "s"
    _, paths = make_series(folder, storage="signed-1024")
    for path in paths:
        _retag(path, RescaleIntercept=None, RescaleSlope=None)
    record = _inspect(folder, tmp_path)
    assert record["status"] == "accepted" and len(record["warnings"]) == len(paths)


def test_a_scan_in_another_patients_folder_is_rejected(lidc_samples, tmp_path):
    record = _inspect(lidc_samples / "LIDC-IDRI-0001", tmp_path, patient="LIDC-IDRI-0002")
    assert record["status"] == "rejected"
    assert (
        "PatientID 'LIDC-IDRI-0001' in the files, but the folder is LIDC-IDRI-0002's"
        in record["reason"]
    )
    assert (
        _inspect(lidc_samples / "LIDC-IDRI-0001", tmp_path, patient="LIDC-IDRI-0001")["status"]
        == "accepted"
    )


def test_an_unexpected_failure_is_a_rejected_record_not_a_crash(tmp_path, monkeypatch):
    import lidcseg.data.dataset.gate as qc

    def broken(*args):
        raise IndexError("list index out of range")

    folder = tmp_path / "s"
    make_series(folder)
    monkeypatch.setattr(qc, "read_series", broken)
    record = _inspect(folder, tmp_path)
    assert (
        record["status"] == "rejected"
        and "IndexError" in record["reason"]
        and str(folder) in record["reason"]
    )


@pytest.mark.parametrize(
    "keep, words",
    [
        (300, "truncated: its 300 bytes end inside an element"),
        (700, "truncated: its 700 bytes end inside an element"),
        (1000, "truncated pixel data"),
    ],
)
def test_a_file_cut_short_is_called_truncated(tmp_path, keep, words):
    folder = tmp_path / "s"
    _, paths = make_series(folder)
    paths[1].write_bytes(paths[1].read_bytes()[:keep])
    record = _inspect(folder, tmp_path)
    assert record["status"] == "rejected" and f"{paths[1].name}: {words}" in record["reason"]
