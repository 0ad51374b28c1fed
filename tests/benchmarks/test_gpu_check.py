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
    assert (
        report["loader"]["per_worker_images_per_s"] > 0
        and report["loader"]["augment_images_per_s"] > 0
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
    steps = report["steps"]
    assert {(r["variant"], r["compile"]) for r in steps} == {("unet", False), ("rbcbam", False)}
    assert all(r["loss_finite"] and r["images_per_s"] > 0 and r["peak_gib"] is None for r in steps)
    assert report["paper_estimate"]["hours_eager_deterministic"] > 0
