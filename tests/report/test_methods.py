"""The report's methods table: each run's execution, as its training and evaluation jobs
recorded it."""

from __future__ import annotations

import pytest

from lidcseg.core.metrics_file import MetricsFileError
from lidcseg.io import write_json, write_rows
from lidcseg.report.methods import methods_rows, write_methods
from tests.support.metrics_files import metrics_file

TRAINED_ON = {
    "device": "NVIDIA H200",
    "threads": 6,
    "workers": 6,
    "compile": False,
    "deterministic": True,
    "channels_last": True,
    "amp": "bf16",
}


def training_run(root, variant, seed, execution=TRAINED_ON):
    run = root / "models" / variant / f"seed{seed}"
    write_rows([{"epoch": 1}], run / "log.csv", ["epoch"])
    write_json({"variant": variant, "seed": seed, "execution": execution}, run / "train.json")
    return run / "log.csv"


def test_each_run_shows_its_training_and_its_evaluation_execution(tmp_path):
    evaluated_on = {"device": "cpu", "threads": 2, "batch_size": 8}
    metrics = [
        metrics_file(tmp_path / "metrics", v, 2022, 0.7, execution=evaluated_on)
        for v in ("unet", "rbcbam")
    ]
    logs = [
        training_run(tmp_path, "rbcbam", 2022, {**TRAINED_ON, "threads": 3}),
        training_run(tmp_path, "unet", 2022),
    ]
    rows = {row["variant"]: row for row in methods_rows(metrics, logs)}
    assert rows["unet"]["train_device"] == "NVIDIA H200" and rows["unet"]["train_threads"] == 6
    assert rows["rbcbam"]["train_threads"] == 3  # matched by variant and seed, not by order
    assert rows["unet"]["eval_batch_size"] == 8 and rows["unet"]["eval_device"] == "cpu"
    written = write_methods(metrics, logs, tmp_path / "report")
    text = written[0].read_text()
    assert "NVIDIA H200" in text and "| rbcbam | 2022 |" in text
    assert "NVIDIA H200" in written[1].read_text()


def test_a_training_summary_without_its_execution_is_named(tmp_path):
    metrics = [metrics_file(tmp_path / "metrics", "unet", 2022, 0.7)]
    log = training_run(tmp_path, "unet", 2022)
    write_json({"variant": "unet", "seed": 2022}, log.parent / "train.json")
    with pytest.raises(MetricsFileError, match="train.json"):
        methods_rows(metrics, [log])
