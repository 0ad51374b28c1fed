"""The workflow's rules as Snakemake itself parses them (name, conda env, command, outputs).

Asked of Snakemake's API in a child process: loading a workflow changes the working directory
and the logging setup of the process that does it, which the test process must not inherit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.support.paths import REPO

_DESCRIBE_RULES = """
import json, os, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, ResourceSettings

overrides = ConfigSettings(configfiles=[Path(name) for name in sys.argv[2:]])
with SnakemakeApi() as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), config_settings=overrides,
                            snakefile=Path("Snakefile"))._workflow
    rules = [
        {
            "name": rule.name,
            "runs_command": not rule.norun,
            "conda": (os.path.normpath(os.path.join(os.path.dirname(rule.snakefile),
                                                    rule.conda_env))
                      if isinstance(rule.conda_env, str) else None),
            "shell": rule.shellcmd,
            "outputs": [str(path) for path in rule.output],
        }
        for rule in workflow.rules
    ]
Path(sys.argv[1]).write_text(json.dumps(rules))
"""


@dataclass(frozen=True)
class Rule:
    name: str
    runs_command: bool
    conda: Path | None
    shell: str | None
    outputs: tuple[str, ...]

    @property
    def output_folders(self) -> set[str]:
        """The fixed part of each output pattern: what comes before its first wildcard."""
        return {output.split("{")[0].rsplit("/", 1)[0] for output in self.outputs}


@cache
def workflow_rules(workdir: Path = REPO, *configfiles: Path) -> tuple[Rule, ...]:
    """The rules under config.yaml and the given override files (some rules exist only under
    some settings, e.g. `download` for the real archive)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rules.json"
        done = subprocess.run(
            [sys.executable, "-c", _DESCRIBE_RULES, str(out), *map(str, configfiles)],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (
            f"Snakemake could not load the workflow:\n{done.stderr[-3000:]}"
        )
        described = json.loads(out.read_text())
    return tuple(
        Rule(
            r["name"],
            r["runs_command"],
            Path(r["conda"]) if r["conda"] else None,
            r["shell"],
            tuple(r["outputs"]),
        )
        for r in described
    )


def every_rule(workdir: Path = REPO) -> dict[str, Rule]:
    """Each rule defined under config.yaml or any of workflow/configs/*.yaml, by name."""
    rules = {}
    for configfiles in [
        (),
        *[(path,) for path in sorted((workdir / "workflow/configs").glob("*.yaml"))],
    ]:
        rules.update({rule.name: rule for rule in workflow_rules(workdir, *configfiles)})
    return rules
