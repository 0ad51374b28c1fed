"""The Snakemake workflow, run for real on a copy of the repository's workflow files."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lidcseg.data.volume import load_nifti, read_json
from tests.conftest import REPO

pytestmark = pytest.mark.workflow
BIN = Path(sys.executable).parent


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([str(BIN / "snakemake"), *args], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=900)


def _copy_workflow(dest: Path) -> Path:
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, dest / name)
    shutil.copytree(REPO / "workflow", dest / "workflow")
    shutil.copytree(REPO / "envs", dest / "envs")
    return dest


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """Two patients; one of them has a corrupt slice before the run starts."""
    workdir = _copy_workflow(tmp_path_factory.mktemp("workflow"))
    (workdir / "tiny.yaml").write_text("dataset:\n  patients: [LIDC-IDRI-0078, LIDC-IDRI-0103]\n")
    bad = subprocess.run([str(BIN / "lidcseg"), "synthesize", "LIDC-IDRI-0103", "resources/lidc"], cwd=workdir,
                         capture_output=True, text=True)
    assert bad.returncode == 0, bad.stderr
    corrupt = sorted((workdir / "resources/lidc/LIDC-IDRI-0103").rglob("*.dcm"))[40]
    corrupt.write_bytes(corrupt.read_bytes()[:5000])
    result = _snakemake(workdir, "--cores", "2", "--configfile", "tiny.yaml")
    return workdir, result, corrupt


def test_lint_is_clean():
    result = _snakemake(REPO, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_run_finishes_the_good_scan_and_reports_the_bad_one(finished_run):
    workdir, result, corrupt = finished_run
    assert result.returncode == 0, result.stderr[-3000:]
    with open(workdir / "results/qc/scans.tsv", newline="") as f:
        rows = {row["patient_id"]: row for row in csv.DictReader(f, delimiter="\t")}
    assert rows["LIDC-IDRI-0078"]["status"] == "accepted"
    assert rows["LIDC-IDRI-0103"]["status"] == "rejected"
    assert corrupt.name in rows["LIDC-IDRI-0103"]["reason"]
    image = load_nifti(workdir / "results/resampled/LIDC-IDRI-0078.image.nii.gz")
    assert image.array.shape[:2] == (512, 512)
    assert image.spacing == pytest.approx((0.68, 0.68, 2.0))
    assert read_json(workdir / "results/resampled/LIDC-IDRI-0078.grid.json")["output_shape"][2] == image.array.shape[2]
    assert not (workdir / "results/hu/LIDC-IDRI-0103.nii.gz").exists()


def test_rerun_has_nothing_to_do(finished_run):
    workdir, _, _ = finished_run
    result = _snakemake(workdir, "-n", "--configfile", "tiny.yaml")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_bad_config_fails_before_any_job_naming_the_key(tmp_path):
    workdir = _copy_workflow(tmp_path)
    (workdir / "bad.yaml").write_text("resample:\n  spacing_mm: [0.68, 0.68, 0]\n")
    result = _snakemake(workdir, "-n", "--configfile", "bad.yaml")
    assert result.returncode != 0
    assert "config key 'resample.spacing_mm.2'" in result.stdout + result.stderr
    assert not (workdir / "resources").exists() and not (workdir / "results").exists()
