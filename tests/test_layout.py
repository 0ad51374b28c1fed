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


def test_no_module_over_300_lines_and_no_function_over_50():
    assert not {name: n for name, n in module_lines().items() if n > MAX_MODULE_LINES}
    assert not {name: n for name, n in function_lines().items() if n > MAX_FUNCTION_LINES}


def test_config_imports_nothing_of_the_package_but_its_errors():
    ours = set()
    for path in sorted((REPO / "src/lidcseg/config").glob("*.py")):
        module = "lidcseg.config" if path.name == "__init__.py" else f"lidcseg.config.{path.stem}"
        ours |= {name for name in imported_modules(ast.parse(path.read_text()), module, path.name == "__init__.py")
                 if name.split(".")[0] == "lidcseg" and not name.startswith("lidcseg.config")}
    assert ours == {"lidcseg.errors"}


def test_the_schema_ships_with_the_package():
    assert config.SCHEMA_PATH.is_file() and config.SCHEMA_PATH.is_relative_to(REPO / "src/lidcseg")
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["lidcseg"]
    assert any(fnmatch(str(config.SCHEMA_PATH.relative_to(REPO / "src/lidcseg")), glob) for glob in globs)


def test_tests_share_helpers_only_through_support():
    """No test imports another test module (or its private names): what two tests share
    lives in tests/support/."""
    wrong = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for name in imported_modules(ast.parse(path.read_text()), module, path.name == "__init__.py"):
            if name.startswith("tests.") and not name.startswith("tests.support"):
                wrong.append(f"{path.relative_to(REPO)} imports {name}")
    assert not wrong
