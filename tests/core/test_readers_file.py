"""The readers file's contract: round trip; an older file (no format) or a missing field is
refused in one line naming the file."""

from __future__ import annotations

import json

import pytest

from lidcseg.core.readers_file import FORMAT, ReadersFile, ReadersFileError
from lidcseg.errors import LidcsegError


def readers_file() -> ReadersFile:
    return ReadersFile(
        pooled={"dsc": 0.88, "recall": 0.9, "precision": 0.86, "tp": 9, "fp": 1, "fn": 1},
        pooled_ci={"dsc": [0.8, 0.9], "recall": [0.8, 0.95], "precision": [0.8, 0.9]},
        per_image_mean={"dsc": 0.7, "precision": 0.7, "recall": 0.7},
        pairs=4,
        nodules=2,
        patients=1,
        slices=3,
        bootstrap={"resamples": 10, "confidence": 0.95, "unit": "patient"},
        test_slices=5,
        consensus=0.5,
        min_diameter_mm=3.0,
        mask_method="linear",
        definition="leave one reader out",
    )


def test_round_trip(tmp_path):
    path = tmp_path / "readers.json"
    readers_file().save(path)
    assert ReadersFile.load(path) == readers_file()
    assert json.loads(path.read_text())["format"] == FORMAT


def test_an_older_file_is_refused(tmp_path):
    path = tmp_path / "readers.json"
    readers_file().save(path)
    payload = json.loads(path.read_text())
    del payload["format"]
    path.write_text(json.dumps(payload))
    with pytest.raises(ReadersFileError) as raised:
        ReadersFile.load(path)
    message = str(raised.value)
    assert isinstance(raised.value, LidcsegError) and "\n" not in message
    assert message.startswith(f"{path}: readers file of no format") and "lidcseg readers" in message


def test_a_missing_field_is_refused(tmp_path):
    path = tmp_path / "readers.json"
    readers_file().save(path)
    payload = json.loads(path.read_text())
    del payload["pooled_ci"]
    path.write_text(json.dumps(payload))
    with pytest.raises(
        ReadersFileError, match=r"readers\.json: readers file of format 1 that lacks pooled_ci"
    ):
        ReadersFile.load(path)


def test_a_file_that_is_not_json_is_refused(tmp_path):
    path = tmp_path / "readers.json"
    path.write_text("{")
    with pytest.raises(ReadersFileError, match=r"readers\.json: not a readers file"):
        ReadersFile.load(path)
