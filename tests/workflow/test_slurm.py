"""The workflow through `--profile workflow/profiles/slurm` on a real single-node SLURM cluster.

The cluster (tests/support/slurm/cluster.py) is started from Debian's packages, which `make test`
installs when it runs as root; elsewhere these tests skip, naming what is missing. One run of
the tiny workflow serves every test: its SLURM jobs are read back from the accounting
database (sacct), as a site's administrator would see them.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lidcseg.io import read_rows
from tests.support.paths import REPO
from tests.support.slurm.cluster import SlurmCluster, missing_requirements
from tests.support.workflow import BIN, TINY_CONFIG, copy_workflow

pytestmark = [pytest.mark.workflow, pytest.mark.slurm, pytest.mark.timeout(900)]

# The tiny config's three patients with nodules (one per split) are enough to reach every
# rule; its bad scans are test_workflow's business.
THREE_PATIENTS = "dataset:\n  patients: [LIDC-IDRI-0078, LIDC-IDRI-0098, LIDC-IDRI-0104]\n"
PER_SCAN_RULES = {"synthesize", "inspect", "convert", "annotate", "resample", "extract"}
GPU_RULES = {"train", "evaluate"}
# What goes to SLURM: every rule but `all` (local), the per-scan ones as two group jobs.
SUBMITTED = {
    "perscan_inspect_synthesize",
    "screen",
    "perscan_annotate_convert_extract_resample",
    "archive_flow",
    "cohort",
    "split",
    "train",
    "evaluate",
    "readers",
    "summarize",
    "report",
}
# The profile waits 40 s before its first status query, as a busy cluster wants; a test run
# of ~30 short jobs asks sooner (the only settings the test changes).
QUICK_STATUS = [
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--max-status-checks-per-second",
    "10",
]
FIELDS = ("JobID", "State", "Partition", "ReqTRES", "Comment", "Timelimit")
VARIANTS = yaml.safe_load((REPO / TINY_CONFIG).read_text())["models"]["run"]


@dataclass
class SlurmRun:
    workdir: Path
    result: subprocess.CompletedProcess
    jobs: list[dict[str, str]]  # sacct records, in submission order
    injected: Path  # exists once the shim has failed a job


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = missing_requirements()
    if missing:
        pytest.skip(
            "no SLURM test cluster: missing " + ", ".join(missing) + " (`make test` run as root"
            " installs them: apt-get install slurm-wlm munge slurmdbd mariadb-server)"
        )
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    yield cluster
    cluster.stop()


def fail_first_training(folder: Path) -> tuple[Path, Path]:
    """A `lidcseg` first on PATH that fails the run's first `lidcseg train`, as a job lost on a
    failing node would, and runs the real one otherwise. sbatch exports PATH to the jobs."""
    marker = folder / "train-failed-once"
    shim = folder / "lidcseg"
    shim.write_text(f"""#!/bin/sh
if [ "$1" = train ] && mkdir "{marker}" 2>/dev/null; then
    echo "injected failure: the first lidcseg train of this run" >&2
    exit 1
fi
exec "{BIN / "lidcseg"}" "$@"
""")
    shim.chmod(0o755)
    return folder, marker


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory) -> SlurmRun:
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"))
    (workdir / "three.yaml").write_text(THREE_PATIENTS)
    shim_dir, marker = fail_first_training(tmp_path_factory.mktemp("shim"))
    env = {**cluster.env, "PATH": os.pathsep.join([str(shim_dir), str(BIN), os.environ["PATH"]])}
    # Bounded: the executor keeps polling when sacct cannot answer, so a broken accounting
    # setup would otherwise hang the suite.
    result = subprocess.run(
        [
            str(BIN / "snakemake"),
            "--profile",
            "workflow/profiles/slurm",
            "--configfile",
            TINY_CONFIG,
            "three.yaml",
            *QUICK_STATUS,
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return SlurmRun(workdir, result, cluster.jobs(*FIELDS), marker)


def rule_of(job: dict[str, str]) -> str:
    """The rule (or group) of a SLURM job, from the comment the executor plugin gives it:
    rule_<name>[_wildcards_<values>]."""
    return job["Comment"].removeprefix("rule_").split("_wildcards_")[0]


def test_the_run_completes_through_the_slurm_profile(slurm_run):
    assert slurm_run.result.returncode == 0, slurm_run.result.stderr[-4000:]
    workdir = slurm_run.workdir
    assert [r["variant"] for r in read_rows(workdir / "results/metrics/summary.csv")] == VARIANTS
    assert (workdir / "results/report/table1.html").stat().st_size > 0
    assert len(read_rows(workdir / "results/qc/scans.tsv")) == 3


def test_every_job_is_in_sacct_and_completed_but_the_injected_failure(slurm_run):
    assert {rule_of(job) for job in slurm_run.jobs} == SUBMITTED
    failed = [job for job in slurm_run.jobs if job["State"] != "COMPLETED"]
    assert len(failed) == 1, slurm_run.jobs
    assert failed[0]["State"] == "FAILED" and rule_of(failed[0]) == "train"


def test_a_job_that_fails_once_is_retried_and_completes(slurm_run):
    assert slurm_run.injected.is_dir(), "the shim never failed a training job"
    failed = next(job for job in slurm_run.jobs if job["State"] == "FAILED")
    retries = [
        job for job in slurm_run.jobs if job["Comment"] == failed["Comment"] and job is not failed
    ]
    assert len(retries) == 1 and retries[0]["State"] == "COMPLETED"
    assert int(retries[0]["JobID"]) > int(failed["JobID"])
    assert slurm_run.result.returncode == 0


def test_training_and_evaluation_ask_for_one_gpu_on_the_gpu_partition(slurm_run):
    by_rule = {}
    for job in slurm_run.jobs:
        by_rule.setdefault(rule_of(job), []).append(job)
    assert len(by_rule["train"]) == len(VARIANTS) + 1  # one retried
    assert len(by_rule["evaluate"]) == len(VARIANTS)
    for rule, jobs in by_rule.items():
        for job in jobs:
            asks_gpu = "gres/gpu=1" in job["ReqTRES"]
            assert asks_gpu == (rule in GPU_RULES), (rule, job["ReqTRES"])
            assert job["Partition"] == ("gpu" if rule in GPU_RULES else "cpu"), (rule, job)
    assert {job["Timelimit"] for job in by_rule["train"]} == {"1-00:00:00"}  # the profile's limit


def test_per_scan_jobs_are_grouped_into_few_slurm_jobs(slurm_run):
    rules = [rule_of(job) for job in slurm_run.jobs]
    assert not PER_SCAN_RULES & set(rules), "a per-scan job was submitted on its own"
    # Three scans' per-scan jobs (Snakemake's log lists each) went out as one SLURM job
    # before the screen checkpoint and one after it.
    log = slurm_run.result.stdout + slurm_run.result.stderr
    per_scan_jobs = [
        name
        for name in re.findall(r"^\s*rule (\w+):$", log, re.MULTILINE)
        if name in PER_SCAN_RULES
    ]
    assert len(per_scan_jobs) == 3 * len(PER_SCAN_RULES)
    assert [rule for rule in rules if rule.startswith("perscan")] == [
        "perscan_inspect_synthesize",
        "perscan_annotate_convert_extract_resample",
    ]
