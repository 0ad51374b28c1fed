"""What a `lidcseg <command>` can import, read from the source with `ast` (nothing imported).

Two tests ask it: tests/test_envs.py (the third-party packages a rule's conda env must hold)
and tests/workflow/test_dvc_deps.py (the package files a DVC stage must list as deps).

A module is reached in one of two ways. A module whose functions the job may call ("used":
what the command's function imports, what Snakemake's files import, and whatever a used
module imports anywhere, inside functions included) has every import followed, so the
answer errs on the side of more, never less. A module that is only loaded ("loaded":
`lidcseg.cli`, which imports every command group to build its parser, the command's group
module itself, and each package above an imported module) has only its module-level imports
followed: the other commands import their code inside functions this job never calls.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.support.paths import REPO

SRC = REPO / "src"


def module_file(module: str) -> Path | None:
    """The file of a dotted module name under src/ (a package's __init__.py), if any."""
    base = SRC.joinpath(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def import_statements(tree: ast.AST, module_level_only: bool = False):
    """The Import and ImportFrom nodes of `tree`; with `module_level_only`, not those inside a
    function (they run only when it is called)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif not (
            module_level_only
            and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        ):
            todo.extend(ast.iter_child_nodes(node))


def imported_modules(
    tree: ast.AST, here: str, is_package: bool, module_level_only: bool = False
) -> set[str]:
    """The absolute names of the modules import statements in `tree` name (for `from package
    import name`, also the submodule `name` where the package has one); `here` is the
    importing module, for relative imports."""
    named: set[str] = set()
    for node in import_statements(tree, module_level_only):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
            continue
        module = node.module or ""
        if node.level:  # relative: from the package of the importing module
            package = here.split(".") if is_package else here.split(".")[:-1]
            module = ".".join(
                [*package[: len(package) - node.level + 1], *([module] if module else [])]
            )
        named.add(module)
        named.update(
            f"{module}.{alias.name}"
            for alias in node.names
            if alias.name != "*" and module_file(f"{module}.{alias.name}") is not None
        )
    return named


def parents(names) -> set[str]:
    """The packages above each dotted name (their __init__.py runs first)."""
    return {
        ".".join(name.split(".")[:end]) for name in names for end in range(1, name.count(".") + 1)
    }


@dataclass(frozen=True)
class Reach:
    files: frozenset[Path]  # lidcseg's own modules
    third_party: frozenset[str]  # top-level names of everything else (stdlib included)


@cache
def closure(used: frozenset[str], loaded: frozenset[str]) -> Reach:
    """The files of the `lidcseg` modules `used` and `loaded` and of every `lidcseg` module they
    import, transitively, and the other top-level modules they import (see above)."""
    reached: dict[Path, bool] = {}  # file -> used
    others: set[str] = set()
    todo = [(module, True) for module in used] + [(module, False) for module in loaded]
    while todo:
        module, is_used = todo.pop()
        if module.split(".")[0] != "lidcseg":
            others.add(module.split(".")[0])
            continue
        path = module_file(module)
        assert path is not None, (
            f"{module} is imported but is no module under {SRC.relative_to(REPO)}"
        )
        if path in reached and (reached[path] or not is_used):
            continue
        reached[path] = is_used
        named = imported_modules(
            ast.parse(path.read_text(), str(path)),
            module,
            path.name == "__init__.py",
            module_level_only=not is_used,
        )
        todo.extend(
            [(name, is_used) for name in named]
            + [(name, False) for name in parents(named | {module})]
        )
    return Reach(frozenset(reached), frozenset(others))


def command_entry(command: str) -> tuple[frozenset[str], frozenset[str]]:
    """(used, loaded) of `lidcseg <command>`: what its function imports is used; lidcseg.cli
    and the command's group module are loaded (their module level runs)."""
    from lidcseg.cli import command_module

    group = command_module(command)
    tree = ast.parse(module_file(group).read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    runs = {
        node.args[1].value: functions[node.args[2].id]
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "command"
    }
    used = imported_modules(runs[command], group, False)
    return frozenset(used), frozenset({"lidcseg.cli", group})


def smk_imports(text: str) -> set[str]:
    """The modules a Snakefile or .smk file imports: its import lines parsed as Python (the
    rest of the file is Snakemake's language)."""
    statements = re.findall(
        r"^[ \t]*(?:from[ \t]+[\w.]+[ \t]+import[ \t]+(?:\([^)]*\)|[^\n]*)|import[ \t]+[^\n]*)",
        text,
        re.MULTILINE,
    )
    named: set[str] = set()
    for statement in statements:
        try:
            tree = ast.parse(statement.strip())
        except SyntaxError:  # a line of prose or a shell string that only looks like an import
            continue
        named |= imported_modules(tree, "", False)
    return named
