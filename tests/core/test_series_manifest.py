"""series.json's contract: every source writes every field; an older series.json (no format),
another format or a missing field is refused in one line naming the file and the rerun."""

from __future__ import annotations

import json

import pytest

from lidcseg.core.series_manifest import FORMAT, SeriesManifest, SeriesManifestError
from lidcseg.errors import LidcsegError


def manifest(**changes) -> SeriesManifest:
    fields = dict(
        patient_id="LIDC-IDRI-0078",
        study_instance_uid="1.2.3",
        series_instance_uid="1.2.3.4",
        series_dir="1.2.3/1.2.3.4",
        n_instances=87,
        source="synthetic",
        storage="explicit",
    )
    return SeriesManifest(**{**fields, **changes})


def test_round_trip_writes_every_field(tmp_path):
    path = tmp_path / "series.json"
    manifest().save(path)
    assert SeriesManifest.load(path) == manifest()
    written = json.loads(path.read_text())
    assert written["format"] == FORMAT
    assert written["md5_verified"] is False and written["other_series"] == []


def test_an_older_series_json_is_refused(tmp_path):
    path = tmp_path / "series.json"
    manifest().save(path)
    payload = json.loads(path.read_text())
    del payload["format"]
    path.write_text(json.dumps(payload))
    with pytest.raises(SeriesManifestError) as raised:
        SeriesManifest.load(path)
    message = str(raised.value)
    assert isinstance(raised.value, LidcsegError) and "\n" not in message
    assert message.startswith(
        f"{path}: series.json of no format, this lidcseg reads format {FORMAT}"
    )
    assert "lidcseg synthesize" in message and "lidcseg download" in message


def test_a_missing_field_is_refused(tmp_path):
    path = tmp_path / "series.json"
    manifest().save(path)
    payload = json.loads(path.read_text())
    del payload["series_dir"]
    path.write_text(json.dumps(payload))
    with pytest.raises(
        SeriesManifestError, match=rf"series\.json of format {FORMAT} that lacks series_dir"
    ):
        SeriesManifest.load(path)


def test_an_unknown_field_is_refused(tmp_path):
    path = tmp_path / "series.json"
    manifest().save(path)
    path.write_text(json.dumps({**json.loads(path.read_text()), "surprise": 1}))
    with pytest.raises(SeriesManifestError, match="has unknown surprise"):
        SeriesManifest.load(path)
