"""The package's size limits, as figures: `python -m tests.support.layout` prints them.

Modules of src/ stay under 360 lines and functions under 60 (docs/development.md); the test
in tests/test_layout.py holds the package to it. The lines are those of the code as
`ruff format` lays it out at 100 columns: the same package was 8,129 lines unformatted at up
to 120 columns and 10,151 formatted, so the old limits (300 and 50) rose by a fifth with it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import REPO

MAX_MODULE_LINES = 360
MAX_FUNCTION_LINES = 60


def module_lines(root: Path = REPO / "src") -> dict[str, int]:
    return {
        str(path.relative_to(REPO)): len(path.read_text().splitlines())
        for path in sorted(root.rglob("*.py"))
    }


def function_lines(root: Path = REPO / "src") -> dict[str, int]:
    """`path:line name` -> lines, of every function and method (decorators excluded)."""
    sizes = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                sizes[f"{path.relative_to(REPO)}:{node.lineno} {node.name}"] = (
                    node.end_lineno - node.lineno + 1
                )
    return sizes


def main() -> None:
    modules, functions = module_lines(), function_lines()
    largest = sorted(modules.items(), key=lambda item: -item[1])[:5]
    longest = sorted(functions.items(), key=lambda item: -item[1])[:5]
    print(
        f"{len(modules)} modules under src/, {sum(modules.values())} lines; "
        f"over {MAX_MODULE_LINES}: "
        f"{sum(n > MAX_MODULE_LINES for n in modules.values())}"
    )
    print("largest: " + ", ".join(f"{name} {n}" for name, n in largest))
    print(
        f"{len(functions)} functions; over {MAX_FUNCTION_LINES} lines: "
        f"{sum(n > MAX_FUNCTION_LINES for n in functions.values())}"
    )
    print("longest: " + ", ".join(f"{name} {n}" for name, n in longest))


if __name__ == "__main__":
    main()
