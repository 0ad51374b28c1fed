"""dvc.yaml's `deps` against the code each stage's jobs run, so that the two cannot drift apart.

A DVC stage calls Snakemake for a few targets; the rules that make them are the rules whose
outputs lie in the stage's `outs`. Each such rule runs `lidcseg <command>`, and the code that
command can run is the import closure of its function (tests/support/imports.py), plus
what Snakemake itself executes to plan the job: the Snakefile, common.smk and the rule's own
.smk file, and the `lidcseg` modules those import. Package data a module names (the config
schema) counts too. Every one of those files must be, or lie below, one of the stage's
`deps`, or `dvc status` would not notice a change to code that made a version.

Only files are read: no Snakemake job and no DVC command runs (Snakemake's API lists the rules).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.support.imports import closure, command_entry, smk_imports
from tests.support.paths import REPO
from tests.support.snakemake_rules import every_rule
from tests.support.workflow import UNVERSIONED_RULES

PACKAGE = REPO / "src" / "lidcseg"
DVC_YAML = REPO / "dvc.yaml"
# What Snakemake parses for every job, whatever its rule.
WORKFLOW_FILES = ("Snakefile", "workflow/rules/common.smk")


# --- dvc.yaml, its templates resolved ---------------------------------------------------------


def _dvc() -> dict:
    return yaml.safe_load(DVC_YAML.read_text())


def _variables() -> dict:
    """dvc.yaml's `vars`: params files (read from the repository) and inline mappings."""
    values: dict = {}
    for entry in _dvc().get("vars", []):
        values.update(
            yaml.safe_load((REPO / entry).read_text()) if isinstance(entry, str) else entry
        )
    return values


def _resolve(text: str) -> str:
    """`${a.b}` replaced by the value of a.b in the vars, as DVC's templating does."""

    def value(match: re.Match) -> str:
        found = _variables()
        for key in match.group(1).split("."):
            found = found[key]
        return str(found)

    return re.sub(r"\$\{\s*([\w.-]+)\s*\}", value, text)


def _paths(entries) -> list[str]:
    """A list of `deps` or `outs`: plain paths or one-key mappings (path: options)."""
    paths = [entry if isinstance(entry, str) else next(iter(entry)) for entry in entries or []]
    return [_resolve(path).rstrip("/") for path in paths]


STAGES = {
    name: {
        "outs": _paths(stage.get("outs")),
        "deps": _paths(stage.get("deps")),
        "cmd": stage["cmd"],
    }
    for name, stage in _dvc()["stages"].items()
}


def _inside(path: str, folders) -> bool:
    return any(path == folder or path.startswith(folder + "/") for folder in folders)


# --- the rules of each stage --------------------------------------------------------------


@cache
def _rules_by_stage() -> dict[str, list]:
    """Each stage's rules: those whose outputs all lie in the stage's `outs`."""
    by_stage: dict[str, list] = {name: [] for name in STAGES}
    for rule in every_rule(REPO).values():
        if not rule.outputs or rule.name in UNVERSIONED_RULES:
            continue
        owners = [
            name
            for name, stage in STAGES.items()
            if all(_inside(folder, stage["outs"]) for folder in rule.output_folders)
        ]
        assert len(owners) == 1, (
            f"rule {rule.name}'s outputs {sorted(rule.output_folders)} are in the outs of "
            f"{'no' if not owners else 'more than one'} dvc.yaml stage {owners or ''}"
        )
        by_stage[owners[0]].append(rule)
    return by_stage


def _rule_file(name: str) -> str:
    """The .smk file that defines rule (or checkpoint) `name`."""
    pattern = re.compile(rf"^\s*(?:rule|checkpoint)\s+{re.escape(name)}\s*:", re.MULTILINE)
    files = [
        path
        for path in sorted((REPO / "workflow/rules").glob("*.smk"))
        if pattern.search(path.read_text())
    ]
    assert len(files) == 1, f"rule {name} is defined in {len(files)} workflow/rules/*.smk files"
    return str(files[0].relative_to(REPO))


def _command(rule) -> str:
    """`train` for a rule whose shell command is `lidcseg train ...`."""
    words = (rule.shell or "").split()
    assert len(words) > 1 and words[0] == "lidcseg", (
        f"rule {rule.name} runs {' '.join(words[:2])!r}, not a `lidcseg` command: "
        "this test cannot tell "
        "which code it runs (teach it, and list that code in the stage's deps)"
    )
    return words[1]


# config.yaml shipped as the package's defaults: only a command run without --settings reads
# it, and every rule passes --settings and --execution (a dep here would mark every stage
# changed whenever config.yaml changes, execution keys included).
DEFAULTS_DIR = PACKAGE / "defaults"


def _package_data(sources: list[Path]) -> set[Path]:
    """Non-Python files of the package that one of `sources` names (e.g. config.schema.yaml)."""
    data = [
        path
        for path in PACKAGE.rglob("*")
        if path.is_file()
        and path.suffix not in (".py", ".pyc")
        and "__pycache__" not in path.parts
        and path.parent != DEFAULTS_DIR
    ]
    texts = [source.read_text() for source in sources]
    return {path for path in data if any(path.name in text for text in texts)}


def _code_of(rule) -> set[str]:
    """The files, relative to the repository, that making `rule`'s outputs reads as code."""
    workflow = [REPO / name for name in (*WORKFLOW_FILES, _rule_file(rule.name))]
    used, loaded = command_entry(_command(rule))
    planned = {
        name for path in workflow for name in smk_imports(path.read_text())
    }  # Snakemake runs them
    python = closure(used | frozenset(planned), loaded).files
    files = {*workflow, *python, *_package_data([*workflow, *python])}
    return {str(path.relative_to(REPO)) for path in files}


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_the_code_its_rules_run(stage):
    rules = _rules_by_stage()[stage]
    assert rules, f"no rule writes into stage {stage}'s outs {STAGES[stage]['outs']}"
    missing = sorted(
        {
            f"stage {stage}, rule {rule.name}: {path}"
            for rule in rules
            for path in _code_of(rule)
            if not _inside(path, STAGES[stage]["deps"])
        }
    )
    assert not missing, (
        "files in no dvc.yaml `deps` entry of the stage that runs them:\n" + "\n".join(missing)
    )


def test_the_snakemake_command_is_written_once():
    """One `vars` entry, used by every stage; a second copy would drift from the first."""
    command = _variables().get("snakemake")
    assert command, "dvc.yaml has no `snakemake` entry under `vars`"
    assert DVC_YAML.read_text().count(command) == 1, (
        f"{command!r} is written more than once in dvc.yaml"
    )
    for name, stage in STAGES.items():
        first = stage["cmd"][0] if isinstance(stage["cmd"], list) else stage["cmd"]
        assert first.startswith("${snakemake}"), (
            f"stage {name} does not run `${{snakemake}} <targets>`: {first!r}"
        )
