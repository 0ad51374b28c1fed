"""dataset.source local on real CT: a copy of links to ../shared in NBIA's descriptive layout
(LIDC-IDRI-0001 and -0003 complete, -0002 a partial series) runs every rule of the DAG, a
tiny unet trained for one epoch through evaluation, the report and `lidcseg predict` on a
real series; a patient the copy lacks is a row of flow.md; the copy is left as it was."""

from __future__ import annotations

import time

import numpy as np
import pytest
import yaml

from lidcseg.io import load_nifti, read_json, read_rows
from tests.support.consensus import pylidc_consensus
from tests.support.defaults import DEFAULTS
from tests.support.local_copy import lay_out, real_series
from tests.support.workflow import TINY_CONFIG, copy_workflow, snakemake

pytestmark = pytest.mark.workflow

FULL = ("LIDC-IDRI-0001", "LIDC-IDRI-0003")
RULES = {
    "index_local", "local_series", "inspect", "screen", "convert", "annotate", "resample",
    "extract", "archive_flow", "cohort", "split", "train", "evaluate", "readers", "summarize",
    "report", "predict", "all",
}  # fmt: skip


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    series = [real_series(FULL[0]), real_series("LIDC-IDRI-0002", samples=True)]
    series.append(real_series(FULL[1]))
    if None in series:
        pytest.skip("the real series are not in ../shared (lidc-full, lidc-samples)")
    base = tmp_path_factory.mktemp("local")
    copy = lay_out(series, base / "copy", "descriptive") / "LIDC-IDRI"
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    (base / "workflow").mkdir()
    workdir = copy_workflow(base / "workflow")
    scan = next(copy.glob(f"{FULL[1]}/*/*"))  # a real series folder for predict
    overrides = {
        "dataset": {
            "source": "local",
            "local_root": str(copy),
            "patients": [FULL[0], "LIDC-IDRI-0002", FULL[1], "LIDC-IDRI-0005"],
        },
        "models": {"run": ["unet"]},
        "evaluate": {"bootstrap_resamples": 100},
        "predict": {"inputs": [str(scan)], "variant": "unet", "seeds": [2022]},
    }
    (workdir / "local.yaml").write_text(yaml.safe_dump(overrides))
    started = time.perf_counter()
    result = snakemake(workdir, "--cores", "2", "--configfile", TINY_CONFIG, "local.yaml")
    seconds = time.perf_counter() - started
    return workdir, result, copy, before, scan, seconds


def test_every_rule_runs_on_the_real_copy(local_run):
    workdir, result, *_, seconds = local_run
    assert result.returncode == 0, result.stderr[-3000:]
    ran = {
        line.split()[1].rstrip(":")
        for line in result.stderr.splitlines()
        if line.startswith(("localrule ", "localcheckpoint ", "rule ", "checkpoint "))
    }
    assert ran == RULES, RULES ^ ran
    print(f"the local workflow ran in {seconds:.0f} s")


def test_the_copy_is_read_in_place_and_left_as_it_was(local_run):
    workdir, _, copy, before, *_ = local_run
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before
    manifest = read_json(workdir / f"resources/lidc/{FULL[0]}/series.json")
    assert manifest["source"] == "local" and manifest["series_dir"].startswith(str(copy))
    assert len(manifest["files"]) == manifest["n_instances"] == 133
    assert "has 12 of the 261 slices" in (workdir / "logs/index_local.log").read_text()


def test_a_patient_the_copy_lacks_is_a_row_of_the_flow(local_run):
    workdir, *_ = local_run
    rows = {r["patient_id"]: r for r in read_rows(workdir / "results/qc/scans.tsv")}
    assert {rows[p]["status"] for p in (*FULL, "LIDC-IDRI-0002")} == {"accepted"}
    assert rows["LIDC-IDRI-0005"]["status"] == "rejected"
    assert "not in the local copy" in rows["LIDC-IDRI-0005"]["reason"]
    flow = (workdir / "results/dataset/flow.md").read_text()
    assert "LIDC-IDRI-0005 (inspect): not in the local copy" in flow
    assert "## The local copy (" in flow and "has 12 of the 261 slices" in flow


@pytest.mark.parametrize("patient", FULL)
def test_masks_are_pylidcs_consensus_voxel_for_voxel(local_run, patient):
    workdir, *_ = local_run
    labels = load_nifti(workdir / f"results/masks/{patient}.nii.gz").array
    expected = pylidc_consensus(
        patient, labels.shape, DEFAULTS.annotate.min_diameter_mm, DEFAULTS.annotate.consensus
    )
    assert expected.any()
    np.testing.assert_array_equal(labels > 0, expected)


def test_the_model_is_evaluated_reported_and_applied_to_a_real_series(local_run):
    workdir, _, _, _, scan, _ = local_run
    assert read_rows(workdir / "results/metrics/summary.csv")
    assert (workdir / "results/report/table1.csv").is_file()
    predicted = workdir / "results/predictions" / scan.name
    mask = load_nifti(predicted / f"{FULL[1]}.mask.nii.gz")
    assert mask.array.shape == load_nifti(workdir / f"results/hu/{FULL[1]}.nii.gz").array.shape
    assert (predicted / f"{FULL[1]}.seg.dcm").is_file()
    html = snakemake(
        workdir, "--configfile", TINY_CONFIG, "local.yaml", "--report", "results/report/report.html"
    )
    assert html.returncode == 0, html.stderr[-2000:]
    assert (workdir / "results/report/report.html").stat().st_size > 100_000
