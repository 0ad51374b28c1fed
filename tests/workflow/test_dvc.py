"""DVC versions of the data and models: dvc.yaml checked against the workflow, then a real
round trip on a copy in a temporary git repository (repro, push, fresh clone, `make pull`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from snakemake.utils import update_config

from lidcseg.io import read_rows
from tests.support.paths import REPO
from tests.support.snakemake_rules import every_rule, workflow_rules
from tests.support.workflow import (
    BIN,
    EXECUTION_SECTIONS,
    TINY_CONFIG,
    UNVERSIONED_FILES,
    UNVERSIONED_RULES,
    UNVERSIONED_SECTIONS,
    copy_workflow,
)

pytestmark = pytest.mark.workflow

# The smallest run that still splits three ways: three patients (one per split), one variant.
SMALLEST = """\
dataset:
  patients: [LIDC-IDRI-0078, LIDC-IDRI-0098, LIDC-IDRI-0104]
models:
  run: [unet]
evaluate:
  bootstrap_resamples: 100
"""
GIT_USER = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.org",
}


class Stage(NamedTuple):
    outs: list[str]
    deps: list[str]  # paths
    params: list[str]  # config.yaml keys


def dvc_stages(repo: Path = REPO) -> dict[str, Stage]:
    """DVC's own reading of dvc.yaml (templates resolved), by stage name."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        return {
            stage.name: Stage(
                [out.def_path for out in stage.outs],
                [dep.def_path for dep in stage.deps if not hasattr(dep, "params")],
                [key for dep in stage.deps if hasattr(dep, "params") for key in dep.params],
            )
            for stage in dvc.index.stages
        }


def _inside(path: str, folders) -> bool:
    return any(path == folder or path.startswith(folder.rstrip("/") + "/") for folder in folders)


def test_every_rule_output_is_in_a_versioned_folder():
    """Snakemake reruns a job whose input is missing: whatever a rule writes must come back
    with `dvc pull`, intermediates included."""
    outs = [out for stage in dvc_stages().values() for out in stage.outs]
    unversioned = {
        f"{rule.name}: {folder}"
        for rule in every_rule().values()
        for folder in rule.output_folders
        if not _inside(folder, outs) and rule.name not in UNVERSIONED_RULES
    }
    assert not unversioned, f"rule outputs in no dvc.yaml stage's outs: {sorted(unversioned)}"


def test_every_config_section_is_a_param_of_a_stage():
    sections = yaml.safe_load((REPO / "config.yaml").read_text())
    params = {key.split(".")[0] for stage in dvc_stages().values() for key in stage.params}
    assert set(sections) - params - UNVERSIONED_SECTIONS - EXECUTION_SECTIONS == set(), (
        "config.yaml sections no dvc.yaml stage reads"
    )
    assert not {key for key in params if key.split(".")[0] in EXECUTION_SECTIONS}, (
        "an execution key is a dvc.yaml param: its change would mark a stage changed"
    )


def test_every_module_and_rule_file_is_a_dependency_of_a_stage():
    deps = [dep for stage in dvc_stages().values() for dep in stage.deps]
    files = [*(REPO / "src/lidcseg").rglob("*.py"), *(REPO / "workflow/rules").glob("*.smk")]
    missing = [
        str(path.relative_to(REPO))
        for path in files
        if not _inside(str(path.relative_to(REPO)), deps)
        and str(path.relative_to(REPO)) not in UNVERSIONED_FILES
    ]
    assert not missing, f"no dvc.yaml stage depends on {missing}"


def _run(args: list[str], cwd: Path, env: dict, timeout: int = 900) -> str:
    """stdout and stderr together (Snakemake and DVC log to stderr), after a zero exit."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{output[-4000:]}"
    return output


def _json(args: list[str], cwd: Path, env: dict):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    """The venv first on PATH; DVC kept from this machine's own DVC config and caches, and
    from the network (no usage reports, no update checks)."""
    home = tmp_path_factory.mktemp("dvc-home")
    (home / "global").mkdir()
    (home / "global/config").write_text("[core]\n    analytics = false\n    check_update = false\n")
    return {
        **os.environ,
        **GIT_USER,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "DVC_GLOBAL_CONFIG_DIR": str(home / "global"),
        "DVC_SYSTEM_CONFIG_DIR": str(home / "system"),
        "DVC_SITE_CACHE_DIR": str(home / "site-cache"),
    }


def _workflow_repo(repo: Path, env: dict) -> Path:
    """The workflow, dvc.yaml, DVC's config and the package in a new git repository, with
    config.yaml set to the smallest run (the file DVC reads params from)."""
    repo.mkdir()
    copy_workflow(repo)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "Makefile"):
        shutil.copy(REPO / name, repo / name)
    (repo / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc/config", repo / ".dvc/config")
    shutil.copytree(
        REPO / "src/lidcseg", repo / "src/lidcseg", ignore=shutil.ignore_patterns("__pycache__")
    )
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for override in ((repo / TINY_CONFIG).read_text(), SMALLEST):
        update_config(config, yaml.safe_load(override))
    (repo / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    _run(["git", "init", "--quiet"], repo, env)
    _commit_all(repo, env, "workflow")
    return repo


def _commit_all(repo: Path, env: dict, message: str) -> None:
    _run(["git", "add", "--all"], repo, env)
    _run(["git", "commit", "--quiet", "-m", message], repo, env)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, env) -> tuple[Path, str]:
    """`dvc repro`, dvc.lock committed, `dvc push` to the default remote (../lidcseg-dvc-remote)."""
    repo = _workflow_repo(tmp_path_factory.mktemp("versions") / "repo", env)
    repro = _run([str(BIN / "dvc"), "repro"], repo, env)
    _commit_all(repo, env, "results")
    _run([str(BIN / "dvc"), "push"], repo, env)
    return repo, repro


def _make_pull(clone: Path, env: dict) -> subprocess.CompletedProcess:
    """The README's command after a clone. -o: the venv is the one running these tests, and
    make must not try to reinstall it."""
    venv = BIN.parent
    return subprocess.run(
        ["make", "pull", f"VENV={venv}", "-o", str(venv / ".installed-stamp")],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _clone_and_pull(pushed_repo: Path, clone: Path, env: dict) -> Path:
    """A fresh clone beside the original (so the same default remote), then `make pull`."""
    _run(["git", "clone", "--quiet", str(pushed_repo), str(clone)], clone.parent, env)
    pull = _make_pull(clone, env)
    assert pull.returncode == 0, pull.stdout[-3000:] + pull.stderr[-3000:]
    return clone


@pytest.fixture(scope="module")
def pulled(pushed, env) -> Path:
    repo, _ = pushed
    return _clone_and_pull(repo, repo.parent / "clone", env)


def _planned_rules(workdir: Path, env: dict, *options: str) -> set[str]:
    dry = _run([str(BIN / "snakemake"), "-n", *options], workdir, env)
    return set(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", dry, re.MULTILINE))


def test_repro_runs_every_stage_and_leaves_nothing_to_do(pushed, env):
    repo, repro = pushed
    assert re.findall(r"Running stage '(\w+)'", repro) == ["scans", "dataset", "train", "report"]
    assert _json([str(BIN / "dvc"), "status", "--json"], repo, env) == {}
    assert _planned_rules(repo, env) == set()
    assert (repo.parent / "lidcseg-dvc-remote/files/md5").is_dir(), (
        "nothing pushed to the default remote"
    )


def test_an_execution_setting_changes_no_stage(pushed, env):
    """dvc.yaml's params are recipe keys only: another device, thread count or proxy leaves
    every stage up to date, and Snakemake plans no job for it."""
    repo, _ = pushed
    original = (repo / "config.yaml").read_text()
    config = yaml.safe_load(original)
    config["execution"]["train"].update(workers=2, threads=2, device="cpu", deterministic=False)
    config["execution"]["evaluate"]["batch_size"] = 3
    config["execution"]["download"].update(parallel=8, proxy=None, timeout_s=9)
    (repo / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        assert _json([str(BIN / "dvc"), "status", "--json"], repo, env) == {}
        assert _planned_rules(repo, env) == set()
    finally:
        (repo / "config.yaml").write_text(original)


def test_fresh_clone_after_make_pull_has_everything_and_nothing_to_do(pushed, pulled, env):
    repo, _ = pushed
    versioned = [folder for stage in dvc_stages(repo).values() for folder in stage.outs]
    for folder in versioned:
        original = sorted(p.relative_to(repo) for p in (repo / folder).rglob("*") if p.is_file())
        assert original, f"{folder} is empty in the original"
        assert (
            sorted(p.relative_to(pulled) for p in (pulled / folder).rglob("*") if p.is_file())
            == original
        )
    ran = [p.name for p in (pulled / "logs").rglob("*") if p.is_file() and p.stat().st_size]
    assert not ran, f"jobs ran in the clone: {ran}"  # --touch leaves empty logs
    dry = _run([str(BIN / "snakemake"), "-n"], pulled, env)
    assert "Nothing to be done" in dry, dry[-3000:]


def test_metrics_show_lists_the_evaluation_metrics(pulled, env):
    shown = _json([str(BIN / "dvc"), "metrics", "show", "--json"], pulled, env)
    summary = shown[""]["data"]["results/metrics/summary.json"]["data"]
    assert set(summary) == {"unet"} and 0 <= summary["unet"]["dsc"] <= 1
    assert summary["unet"]["dsc"] == pytest.approx(
        float(read_rows(pulled / "results/metrics/summary.csv")[0]["dsc"])
    )


def test_pulled_results_keep_their_provenance_so_a_data_value_reruns_the_data(
    pulled, env, tmp_path
):
    """`--touch --forceall` records every job, not only those whose file times were out of order."""
    noisier = tmp_path / "noisier.yaml"
    noisier.write_text("synthesize:\n  noise_hu: 16\n")
    assert "synthesize" in _planned_rules(pulled, env, "--configfile", str(noisier))


@pytest.fixture(scope="module")
def more_epochs(pushed, env) -> Path:
    """A second fresh clone after `make pull`, then one more training epoch in config.yaml."""
    repo, _ = pushed
    clone = _clone_and_pull(repo, repo.parent / "clone-epochs", env)
    config = yaml.safe_load((clone / "config.yaml").read_text())
    config["train"]["epochs"] += 1
    (clone / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return clone


def test_a_training_value_reruns_training_and_what_follows_not_the_data(more_epochs, env):
    assert set(_json([str(BIN / "dvc"), "status", "--json"], more_epochs, env)) == {"train"}
    data_folders = [
        out for name in ("scans", "dataset") for out in dvc_stages(more_epochs)[name].outs
    ]
    data_rules = {
        rule.name
        for rule in workflow_rules(more_epochs)
        if rule.output_folders
        and all(_inside(folder, data_folders) for folder in rule.output_folders)
    }
    assert {"synthesize", "convert", "split"} <= data_rules
    planned = _planned_rules(more_epochs, env)
    assert {"train", "evaluate", "summarize", "report"} <= planned and not planned & data_rules, (
        planned
    )


def test_make_pull_refuses_to_mark_results_of_other_settings_up_to_date(more_epochs, env):
    done = _make_pull(more_epochs, env)
    assert done.returncode != 0 and "differs from dvc.lock" in done.stderr, (
        done.stdout + done.stderr
    )
    assert "train" in _planned_rules(more_epochs, env)
