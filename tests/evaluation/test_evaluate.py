"""Evaluation: per-nodule attribution on hand-made slices, the size table, the written files,
the same seed giving the same metrics twice, and named errors for bad model/metric files."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from lidcseg.config import EvaluateConfig
from lidcseg.core.metrics_file import (
    MetricsFile,
    MetricsFileError,
    read_images,
    read_nodules,
    read_probability,
)
from lidcseg.core.model_file import CheckpointError
from lidcseg.evaluation.evaluate import evaluate_model, nodule_counts, size_label, size_labels
from lidcseg.evaluation.summary import summarize_runs
from lidcseg.training.train import run_training
from tests.support.packed import make_job, write_packed

SETTINGS = EvaluateConfig(
    threshold=0.5, bootstrap_resamples=200, confidence=0.95, size_bins_mm=(6, 10, 20)
)
BATCH = 4  # execution.evaluate.batch_size


def test_nodule_counts_attribute_regions_to_the_nodule_they_overlap_most():
    ids = np.zeros((10, 10), np.uint8)
    ids[1:3, 1:3] = 1  # 4 pixels
    ids[6:9, 6:9] = 2  # 9 pixels
    prediction = np.zeros((10, 10), bool)
    prediction[1:3, 1:4] = True  # nodule 1 whole + 2 pixels beside it
    prediction[0, 8] = True  # a region touching no nodule: pooled FP only
    counts = nodule_counts(prediction, ids)
    assert counts[1].tolist() == [4, 2, 0]
    assert counts[2].tolist() == [0, 0, 9]  # missed entirely


def test_size_bins():
    assert size_labels((6, 10, 20)) == ["<6", "6-10", "10-20", ">=20"]
    assert [size_label(d, (6, 10, 20)) for d in (3, 6, 9.99, 10, 34)] == [
        "<6",
        "6-10",
        "6-10",
        "10-20",
        ">=20",
    ]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    packed = write_packed(root)
    job = make_job(packed, root / "model", epochs=2)
    run_training(job)
    outs = []
    for k in range(2):
        out = root / f"metrics{k}" / "seed7.json"
        evaluate_model(
            root / "model/model.pt",
            packed,
            [root / "nodules.csv"],
            out,
            job.train,
            SETTINGS,
            BATCH,
        )
        outs.append(out)
    return root, outs


def test_evaluation_files(evaluated):
    root, (out, _) = evaluated
    result = MetricsFile.load(out)
    assert result.test == {"slices": 8, "patients": 2, "nodules": 2}
    p = result.pooled
    assert p["dsc"] == pytest.approx(2 * p["tp"] / (2 * p["tp"] + p["fp"] + p["fn"]))
    low, high = result.pooled_ci["dsc"]
    assert low <= p["dsc"] <= high
    assert [row["size"] for row in result.by_size] == ["<6", "6-10", "10-20", ">=20"]
    assert sum(row["nodules"] for row in result.by_size) == 2
    # the evaluation job's own execution, not the training job's
    assert result.execution["device"] == "cpu" and result.execution["batch_size"] == BATCH
    images = read_images(out)
    assert len(images) == 8 and sum(int(r["tp"]) for r in images) == p["tp"]
    assert {r["patient_id"] for r in read_nodules(out)} == {"P5", "P6"}
    probability = read_probability(out)
    assert probability.shape == (8, 64, 64) and probability.dtype == np.uint8


def test_same_seed_same_metrics(evaluated, tmp_path):
    root, (first, second) = evaluated
    assert first.read_text().replace("metrics0", "") == second.read_text().replace("metrics1", "")
    # and a second training from the same seed gives the same numbers
    job = make_job(root / "packed", tmp_path / "model", epochs=2)
    run_training(job)
    again = tmp_path / "seed7.json"
    evaluate_model(
        tmp_path / "model/model.pt",
        root / "packed",
        [root / "nodules.csv"],
        again,
        job.train,
        SETTINGS,
        BATCH,
    )
    a, b = MetricsFile.load(first), MetricsFile.load(again)
    assert a.pooled == b.pooled and a.pooled_ci == b.pooled_ci and a.by_size == b.by_size


def test_summary_over_seeds(evaluated, tmp_path):
    _, (first, _) = evaluated
    metrics = MetricsFile.load(first)
    pooled = {**metrics.pooled, "dsc": metrics.pooled["dsc"] + 0.1}
    replace(metrics, seed=8, pooled=pooled).save(tmp_path / "seed8.json")
    (row,) = summarize_runs([first, tmp_path / "seed8.json"])
    assert row["seeds"] == "7 8" and row["dsc"] == pytest.approx(metrics.pooled["dsc"] + 0.05)
    assert row["dsc_sd"] == pytest.approx(0.1 / np.sqrt(2))


def test_bad_files_are_named(evaluated, tmp_path):
    root, _ = evaluated
    broken = tmp_path / "seed1.json"
    broken.write_text('{"variant": "unet"')
    with pytest.raises(MetricsFileError, match="seed1.json"):
        summarize_runs([broken])
    garbage = tmp_path / "model.pt"
    garbage.write_bytes(b"not a checkpoint")
    job = make_job(root / "packed", tmp_path)
    with pytest.raises(CheckpointError, match="model.pt"):
        evaluate_model(
            garbage,
            root / "packed",
            [root / "nodules.csv"],
            tmp_path / "m.json",
            job.train,
            SETTINGS,
            BATCH,
        )


def test_summary_json_is_strict_json_for_dvc_metrics(evaluated, tmp_path):
    """One seed: no sd; a model that predicts nothing: no precision. Both null, never NaN."""
    from lidcseg.cli import main

    _, (first, _) = evaluated
    metrics = MetricsFile.load(first)
    pooled = {**metrics.pooled, "precision": float("nan")}
    replace(metrics, pooled=pooled).save(tmp_path / "seed7.json")
    assert main(["summarize", str(tmp_path / "summary.csv"), str(tmp_path / "seed7.json")]) == 0
    summary = json.loads(
        (tmp_path / "summary.json").read_text(), parse_constant=lambda name: pytest.fail(name)
    )
    (row,) = summary.values()
    assert row["precision"] is None and row["dsc_sd"] is None and "slots" not in row
