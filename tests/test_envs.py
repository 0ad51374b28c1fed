"""The rules' conda envs (envs/*.yaml), checked without conda, which cannot run here.

What can be known statically is checked: the channels, that every pin is the version the
tests ran with (constraints.txt, the pip freeze of the tested venv), that every rule names an
env and that the env has every package the rule's `lidcseg` command imports. Whether conda-forge
already carries each pinned version cannot be asked offline; versions are required to be plain
releases (a pip build label such as torch's `+cpu` never exists there).
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.support.imports import closure, command_entry
from tests.support.paths import REPO
from tests.support.snakemake_rules import every_rule

ENVS = sorted((REPO / "envs").glob("*.yaml"))

# PyPI name -> conda-forge name, where they differ (every other name is the same on both).
CONDA_NAMES = {
    "torch": "pytorch",
    "isal": "python-isal",
    "matplotlib": "matplotlib-base",
    "duckdb": "python-duckdb",
}
# Not on conda-forge: these alone go in the env's `pip:` section.
PIP_ONLY = {"pylidc", "idc-index-data", "highdicom"}  # conda-forge has highdicom 0.27 at most
# The installer itself: its version changes nothing a rule runs, and the venv's is not pinned.
UNPINNED = {"pip"}
PLAIN_RELEASE = re.compile(r"^\d+(\.\d+)*$")


def normalized(name: str) -> str:
    """PEP 503 names: `PyYAML`, `pyyaml` and `py_yaml` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def conda_name(pypi_name: str) -> str:
    return CONDA_NAMES.get(normalized(pypi_name), normalized(pypi_name))


@dataclass(frozen=True)
class CondaEnv:
    path: Path
    channels: list
    conda: dict  # conda-forge name -> pinned version (None when unpinned)
    pip: dict  # normalized PyPI name -> pinned version
    pip_lines: list

    def has(self, pypi_name: str) -> bool:
        return conda_name(pypi_name) in self.conda or normalized(pypi_name) in self.pip


def load_env(path: Path) -> CondaEnv:
    spec = yaml.safe_load(path.read_text())
    conda, pip_lines = {}, []
    for entry in spec["dependencies"]:
        if isinstance(entry, dict):
            pip_lines += entry["pip"]
            continue
        name, _, version = re.match(r"^([A-Za-z0-9_.-]+)\s*(==?)?\s*(\S*)$", entry.strip()).groups()
        conda[normalized(name)] = version or None
    pip = {}
    for line in pip_lines:
        requirement = re.match(r"^([A-Za-z0-9_.-]+)\s*==\s*(\S+)$", line.strip())
        if requirement:
            pip[normalized(requirement[1])] = requirement[2]
    return CondaEnv(path, spec["channels"], conda, pip, pip_lines)


@cache
def venv_versions() -> dict[str, str]:
    """constraints.txt; pip freeze leaves out setuptools, so the venv's own versions back it up."""
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[normalized(name)] = version.strip()
    return pins


def venv_version(pypi_name: str) -> str | None:
    name = normalized(pypi_name)
    if name in venv_versions():
        return venv_versions()[name]
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def pypi_name(conda: str) -> str:
    return {v: k for k, v in CONDA_NAMES.items()}.get(conda, conda)


@pytest.fixture(params=ENVS, ids=lambda path: path.name)
def env(request) -> CondaEnv:
    return load_env(request.param)


def test_there_are_env_files():
    assert {path.name for path in ENVS} >= {"data.yaml", "torch.yaml"}


def test_env_uses_conda_forge_without_the_default_channels(env):
    assert env.channels == ["conda-forge", "nodefaults"], (
        f"{env.path.name}: channels {env.channels}"
    )


def test_python_is_the_tested_minor_version(env):
    tested = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert env.conda.get("python") == tested, (
        f"{env.path.name}: python={env.conda.get('python')}, tests ran {tested}"
    )
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f">={tested}" in requires, (
        f"pyproject requires-python {requires!r} does not start at {tested}"
    )


def test_every_conda_package_is_pinned_to_the_tested_version(env):
    wrong = []
    for name, version in env.conda.items():
        if name == "python" or name in UNPINNED:
            continue
        tested = venv_version(pypi_name(name))
        if tested is None:
            wrong.append(
                f"{name}: not in the tested venv (a different PyPI name? add it to CONDA_NAMES)"
            )
        elif version is None or version != tested.split("+")[0]:
            wrong.append(f"{name}={version} (tested: {tested})")
        elif not PLAIN_RELEASE.match(version):
            wrong.append(f"{name}={version} is no plain release, which conda-forge versions are")
    assert not wrong, f"{env.path.name}: " + "; ".join(wrong)


def test_pip_section_holds_only_what_conda_forge_lacks_pinned_to_the_tested_version(env):
    wrong = []
    for line in env.pip_lines:
        requirement = re.match(r"^([A-Za-z0-9_.-]+)\s*==\s*(\S+)$", line.strip())
        if not requirement:
            # A path would be read from the copy Snakemake makes in .snakemake/conda/, not
            # from envs/: lidcseg itself comes from the env's post-deploy script.
            wrong.append(f"{line!r} is not NAME==VERSION")
        elif normalized(requirement[1]) not in PIP_ONLY:
            wrong.append(
                f"{requirement[1]}: list it as a conda-forge package "
                "(in PIP_ONLY if conda-forge lacks it)"
            )
        elif requirement[2] != venv_version(requirement[1]):
            wrong.append(f"{line} (tested: {venv_version(requirement[1])})")
    assert not wrong, f"{env.path.name}: " + "; ".join(wrong)
    missing = PIP_ONLY - set(env.pip)
    assert not missing, (
        f"{env.path.name}: {sorted(missing)} must come from pip (not on conda-forge)"
    )


def test_env_installs_lidcseg_from_the_repository_after_deploy(env):
    """Snakemake runs <env>.post-deploy.sh in the new env from the workflow's directory."""
    script = env.path.with_name(env.path.stem + ".post-deploy.sh")
    assert script.is_file(), f"{script.name} is missing: the env would lack lidcseg itself"
    commands = [
        line
        for line in script.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert any(re.search(r"pip install .*--no-deps.* -e \.$", line) for line in commands), (
        f"{script.name} must install the repository (pip install --no-deps ... -e .)"
    )


def test_every_base_dependency_is_in_every_env(env):
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = [re.match(r"^[A-Za-z0-9_.-]+", requirement)[0] for requirement in dependencies]
    missing = [name for name in names if not env.has(name)]
    assert not missing, (
        f"{env.path.name} lacks pyproject's {missing} (as {[conda_name(n) for n in missing]})"
    )


def test_every_rule_that_runs_a_command_names_an_env_file():
    rules = [rule for rule in every_rule().values() if rule.runs_command]
    assert rules, "Snakemake listed no rules"
    wrong = [
        f"{rule.name}: {rule.conda}"
        for rule in rules
        if rule.conda is None or rule.conda not in ENVS
    ]
    assert not wrong, f"rules without an existing envs/*.yaml: {wrong}"


def test_every_env_file_is_used_by_a_rule():
    used = {rule.conda for rule in every_rule().values()}
    assert not set(ENVS) - used, f"no rule uses {sorted(p.name for p in set(ENVS) - used)}"


def test_every_rule_env_has_the_packages_its_command_imports():
    """The third-party imports reachable from the `lidcseg <stage>` function the rule runs."""
    providers = importlib.metadata.packages_distributions()
    wrong = []
    for rule in every_rule().values():
        if not rule.runs_command:
            continue
        command = re.match(r"\s*lidcseg ([\w-]+)", rule.shell or "")
        assert command, f"rule {rule.name} runs no `lidcseg <stage>`: its imports cannot be checked"
        env = load_env(rule.conda)
        for module in sorted(third_party_imports(command[1])):
            distributions = providers.get(module)
            if not distributions:
                wrong.append(f"{rule.name}: no installed package provides `import {module}`")
            elif not any(env.has(distribution) for distribution in distributions):
                wrong.append(
                    f"{rule.name} (lidcseg {command[1]}) imports {module}: "
                    f"{conda_name(distributions[0])} is not in {env.path.name}"
                )
    assert not wrong, "\n".join(wrong)


def test_import_scan_sees_the_heavy_imports():
    """Guards the scan above: training reaches torch and monai, conversion does not, and the
    report and the summary run without torch (they read files, they run no network)."""
    assert {"torch", "monai", "numpy"} <= third_party_imports("train")
    assert "torch" not in third_party_imports("convert") and "pydicom" in third_party_imports(
        "convert"
    )
    for command in ("report", "summarize"):
        assert "torch" not in third_party_imports(command) and "numpy" in third_party_imports(
            command
        )


def third_party_imports(command: str) -> frozenset[str]:
    """Top-level third-party modules `lidcseg <command>` can import (tests/support/imports.py:
    every import of the code its function reaches, so more, never less)."""
    reach = closure(*command_entry(command))
    return frozenset(reach.third_party - set(sys.stdlib_module_names) - {"__future__"})
