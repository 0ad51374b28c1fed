"""The metrics file's contract and the files beside it: round trip, another format, a
missing field, a beside file of other columns, each refused in one line naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lidcseg.core.metrics_file import (
    FORMAT,
    IMAGE_FIELDS,
    NODULE_FIELDS,
    Evaluation,
    MetricsFile,
    MetricsFileError,
    beside_path,
    read_images,
    read_nodules,
    read_probability,
)
from lidcseg.errors import LidcsegError


def metrics(**changes) -> MetricsFile:
    fields = dict(
        variant="se",
        slots={"name": "se", "attention": "se"},
        seed=1,
        model="results/models/se/seed1/model.pt",
        epoch=4,
        threshold=0.5,
        test={"slices": 2, "patients": 1, "nodules": 1},
        pooled={"dsc": 0.5, "precision": 0.5, "recall": 0.5, "tp": 1, "fp": 1, "fn": 1},
        pooled_ci={"dsc": [0.4, 0.6]},
        per_image_mean={"dsc": 0.5, "precision": 0.5, "precision_empty_as_0": 0.5},
        slices_without_prediction=0,
        per_nodule={"nodules": 1, "detected": 1, "mean_dsc": 0.5},
        by_size=[{"size": "<10", "nodules": 1, "detected": 1, "dsc": 0.5}],
        bootstrap={"resamples": 10, "confidence": 0.95, "unit": "patient"},
        execution={"device": "cpu", "threads": 2, "batch_size": 8},
    )
    return MetricsFile(**{**fields, **changes})


def evaluation() -> Evaluation:
    image = dict.fromkeys(IMAGE_FIELDS, 1) | {"patient_id": "LIDC-IDRI-0001"}
    nodule = dict.fromkeys(NODULE_FIELDS, 1) | {"patient_id": "LIDC-IDRI-0001", "size": "<10"}
    return Evaluation(
        metrics(),
        [image, {**image, "slice": 2}],
        [nodule],
        np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4),
        np.array(["LIDC-IDRI-0001"] * 2),
        np.array([1, 2]),
    )


def test_round_trip_with_the_files_beside(tmp_path):
    path = tmp_path / "se" / "seed1.json"
    written = evaluation()
    written.save(path)
    assert MetricsFile.load(path) == written.metrics
    assert [row["slice"] for row in read_images(path)] == ["1", "2"]
    assert read_nodules(path)[0]["size"] == "<10"
    np.testing.assert_array_equal(read_probability(path), written.probability)


def test_an_older_file_without_a_format_is_refused(tmp_path):
    path = tmp_path / "seed1.json"
    metrics().save(path)
    payload = json.loads(path.read_text())
    del payload["format"], payload["execution"]  # as evaluate wrote it before the contract
    path.write_text(json.dumps(payload))
    with pytest.raises(MetricsFileError) as raised:
        MetricsFile.load(path)
    message = str(raised.value)
    assert isinstance(raised.value, LidcsegError) and "\n" not in message
    assert message.startswith(f"{path}: metrics file of no format, this lidcseg reads format 1")
    assert "lidcseg evaluate" in message


def test_another_format_is_refused(tmp_path):
    path = tmp_path / "seed1.json"
    metrics().save(path)
    path.write_text(json.dumps({**json.loads(path.read_text()), "format": FORMAT + 1}))
    with pytest.raises(MetricsFileError, match=f"metrics file of format {FORMAT + 1}"):
        MetricsFile.load(path)


def test_a_missing_field_is_refused(tmp_path):
    path = tmp_path / "seed1.json"
    metrics().save(path)
    payload = json.loads(path.read_text())
    del payload["by_size"]
    path.write_text(json.dumps(payload))
    with pytest.raises(
        MetricsFileError, match=r"seed1\.json: metrics file of format 1 that lacks by_size"
    ):
        MetricsFile.load(path)


def test_a_beside_file_of_other_columns_or_missing_is_refused(tmp_path):
    path = tmp_path / "seed1.json"
    evaluation().save(path)
    images = beside_path(path, ".images.csv")
    images.write_text("patient_id,slice,tp,fp,fn\nLIDC-IDRI-0001,1,1,1,1\n")
    with pytest.raises(MetricsFileError, match=r"seed1\.images\.csv: columns patient_id,slice"):
        read_images(path)
    beside_path(path, ".nodules.csv").unlink()
    with pytest.raises(MetricsFileError, match=r"seed1\.nodules\.csv: missing"):
        read_nodules(path)
