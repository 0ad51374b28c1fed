"""benchmarks/gpu_check.py without a GPU: the same code paths at a tiny size, so the check a
GPU machine runs once cannot rot between such runs, and it claims no GPU figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.paths import REPO


def test_gpu_check_runs_without_a_gpu_and_claims_no_gpu_figure(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "gpu_check.py"),
            "--out",
            str(out),
            "--packed",
            str(tmp_path / "no-packed-dataset"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no GPU figure is taken" in result.stdout
    report = json.loads(out.read_text())
    assert report["gpu"] is None and report["torch"]
    loader = report["loader"]
    assert all(
        loader[k] > 0
        for k in ("per_worker_images_per_s", "augment_images_per_s", "resident_images_per_s")
    )
    demo = report["demo_train"]  # SIGKILLed after its first epoch's checkpoint, then rerun
    assert (
        demo["killed_before_model"]
        and demo["resumed"]
        and demo["resumes"] == 1
        and demo["epochs_run"] == 2
    )
    assert (
        demo["device"] == "cpu" and demo["max_weight_difference"] is None
    )  # CPU: test_train's to show
    steps = report["steps"]  # the batch sweep, then the first batch deterministic; no compile
    assert [(r["variant"], r["batch"], r["deterministic"]) for r in steps] == [
        ("unet", 2, False),
        ("rbcbam", 2, False),
        ("unet", 4, False),
        ("rbcbam", 4, False),
        ("unet", 2, True),
        ("rbcbam", 2, True),
    ]
    assert all(r["loss_finite"] and r["images_per_s"] > 0 and r["peak_gib"] is None for r in steps)
    assert all(r["first_backward_non_finite"] == 0 and r["weight_average"] for r in steps)
    assert report["paper_estimate"]["hours_three_seeds_eager_deterministic"] > 0
    where = report["where_time_goes"]  # the profiler's families, and the forms timed
    for label in ("unet", "rbcbam", "unet deterministic"):
        families = where[label]["families"]
        assert families["conv"]["ms"] > 0 and sum(f["share"] for f in families.values()) > 0.99
    assert where["upsampling_forms"]["x2_slices_deterministic_ms"] > 0
    assert where["fusion_forms"]["without_concat_ms"] > 0
    assert report["goals"] == {"measured": None}  # no verdict without a GPU
