"""The layout's rules: small modules and functions, lidcseg.config at the bottom of the package,
the schema shipped with it, tests that share helpers only through tests/support/."""

from __future__ import annotations

import ast
import tomllib
from fnmatch import fnmatch

from lidcseg import config
from tests.support.imports import imported_modules
from tests.support.layout import MAX_FUNCTION_LINES, MAX_MODULE_LINES, function_lines, module_lines
from tests.support.paths import REPO


def test_no_module_over_the_line_limits():
    assert not {name: n for name, n in module_lines().items() if n > MAX_MODULE_LINES}
    assert not {name: n for name, n in function_lines().items() if n > MAX_FUNCTION_LINES}


def test_config_imports_nothing_of_the_package_but_its_errors():
    ours = set()
    for path in sorted((REPO / "src/lidcseg/config").glob("*.py")):
        module = "lidcseg.config" if path.name == "__init__.py" else f"lidcseg.config.{path.stem}"
        ours |= {
            name
            for name in imported_modules(
                ast.parse(path.read_text()), module, path.name == "__init__.py"
            )
            if name.split(".")[0] == "lidcseg" and not name.startswith("lidcseg.config")
        }
    assert ours == {"lidcseg.errors"}


def test_the_schema_ships_with_the_package():
    assert config.SCHEMA_PATH.is_file() and config.SCHEMA_PATH.is_relative_to(REPO / "src/lidcseg")
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["lidcseg"]
    assert any(
        fnmatch(str(config.SCHEMA_PATH.relative_to(REPO / "src/lidcseg")), glob) for glob in globs
    )


def test_tests_share_helpers_only_through_support():
    """No test imports another test module (or its private names): what two tests share
    lives in tests/support/."""
    wrong = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for name in imported_modules(
            ast.parse(path.read_text()), module, path.name == "__init__.py"
        ):
            if name.startswith("tests.") and not name.startswith("tests.support"):
                wrong.append(f"{path.relative_to(REPO)} imports {name}")
    assert not wrong


# Which part of the package may import which (DESIGN: imports point down only). A stage
# (training, inference, evaluation) shares code with another only through core/, models/
# or data/; report/ reads what evaluation wrote; cli/ is the top. Inside data/, the cohort
# side (dataset/) sits on the readers of the archive, never the other way round.
LAYERS = {
    "errors": set(),
    "staging": {"errors"},
    "io": {"errors", "staging"},
    "config": {"errors"},
    "core": {"errors", "io", "config"},
    "data": {"errors", "io", "config", "core"},
    "models": {"errors", "io", "config", "core"},
    "training": {"errors", "io", "config", "core", "data", "models"},
    "inference": {"errors", "io", "config", "core", "data", "models"},
    "evaluation": {"errors", "io", "config", "core", "data", "models"},
    "report": {"errors", "io", "config", "core", "data", "models", "evaluation"},
    "schemas": set(),
}
DATA_LAYERS = {
    "dicom": set(),
    "lidc": {"dicom"},
    "synthetic": {"dicom", "lidc"},
    "sources": {"dicom", "lidc"},
    "resample": {"dicom"},
    "dataset": {"dicom", "lidc", "sources", "resample"},
}


def _part(module: str, depth: int) -> str | None:
    parts = module.split(".")
    return parts[depth] if len(parts) > depth else None


def layering_violations(src=REPO / "src/lidcseg") -> list[str]:
    """`path imports module` for every import of the package that LAYERS or DATA_LAYERS
    forbid (inside functions too: a call that runs it is an import all the same)."""
    wrong = []
    for path in sorted(src.rglob("*.py")):
        parts = path.relative_to(src.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if path.name == "__init__.py" else parts)
        here = _part(module, 1)
        if here in (None, "cli", "__main__"):
            continue
        for name in imported_modules(
            ast.parse(path.read_text()), module, path.name == "__init__.py"
        ):
            there = _part(name, 1)
            if name.split(".")[0] != "lidcseg" or there in (None, here):
                if here == "data" and there == "data":
                    inner, other = _part(module, 2), _part(name, 2)
                    if (
                        None not in (inner, other)
                        and inner != other
                        and other not in DATA_LAYERS.get(inner, set())
                    ):
                        wrong.append(f"{path.relative_to(src.parent)} imports {name}")
                continue
            if there not in LAYERS.get(here, set()):
                wrong.append(f"{path.relative_to(src.parent)} imports {name}")
    return wrong


def test_each_part_of_the_package_imports_only_the_parts_below_it():
    assert not layering_violations()


def test_the_layering_rule_catches_a_stage_importing_a_sibling(tmp_path):
    """The rule fails on a tree where inference imports training (a copy of the package with
    that one line added), so the test above cannot pass by reading nothing."""
    import shutil

    copy = tmp_path / "lidcseg"
    shutil.copytree(REPO / "src/lidcseg", copy, ignore=shutil.ignore_patterns("__pycache__"))
    predict = copy / "inference/predict.py"
    predict.write_text(
        predict.read_text() + "\nfrom lidcseg.training.augment import augment_batch  # noqa\n"
    )
    assert layering_violations(copy) == [
        "lidcseg/inference/predict.py imports lidcseg.training.augment"
    ]
