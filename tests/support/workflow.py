"""Running the Snakemake workflow on a copy of the repository's workflow files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO

BIN = Path(sys.executable).parent
# The tiny run of the workflow tests, relative: valid from the repository root and in a copy.
TINY_CONFIG = "tests/configs/tiny.yaml"
# Outside the paper's DAG, so not versioned by DVC: `predict` segments the user's own scans
# (config.yaml `predict:`, no inputs by default) into results/predictions/; no other rule reads
# them. Its rule, its rule file and its config section belong to no dvc.yaml stage.
UNVERSIONED_RULES = {"predict"}
UNVERSIONED_FILES = {"workflow/rules/predict.smk"}
UNVERSIONED_SECTIONS = {"predict"}
# How fast and where, never what (config.yaml `execution:`): no stage's param, no job's
# Snakemake param; a change reruns nothing.
EXECUTION_SECTIONS = {"execution"}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`snakemake *args` in workdir with the venv first on PATH (its jobs call `lidcseg`)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(BIN / "snakemake"), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def copy_workflow(dest: Path) -> Path:
    """The Snakefile, config.yaml, workflow/, envs/ and tests/configs/ copied into dest
    (which exists)."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, dest / name)
    shutil.copytree(REPO / "workflow", dest / "workflow")
    shutil.copytree(REPO / "envs", dest / "envs")
    shutil.copytree(REPO / "tests/configs", dest / "tests/configs")
    return dest
