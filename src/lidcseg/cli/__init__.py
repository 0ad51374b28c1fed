"""`lidcseg <stage> ...`: one subcommand per workflow stage, on explicit paths.

Each subcommand parses its arguments, calls one function of the package and exits: 0 on
success, 2 with a one-line message naming the file, patient or key on bad input. Snakemake
rules run exactly these commands, so a stage runs the same in a terminal or a SLURM job.
The subcommands live by group in this package's modules; each imports the package lazily,
so ``lidcseg --help`` and a rule's start stay fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from lidcseg.cli import (
    configuration,
    dataset,
    evaluation,
    inference,
    preprocess,
    report,
    scans,
    sources,
    training,
)
from lidcseg.cli.base import memory_limit
from lidcseg.errors import LidcsegError

log = logging.getLogger("lidcseg")
GROUPS = (
    configuration,
    sources,
    scans,
    preprocess,
    dataset,
    training,
    evaluation,
    inference,
    report,
)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    started = time.perf_counter()
    try:
        memory_limit(args)
        args.run(args)
    except LidcsegError as exc:
        print(f"lidcseg {args.stage}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a missing input, an unwritable or full output: bad input, named
        where = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name) or "?"
        print(f"lidcseg {args.stage}: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    log.info("%s done in %.1f s", args.stage, time.perf_counter() - started)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="lidcseg", description=__doc__.splitlines()[0])
    stages = root.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for group in GROUPS:
        group.add_commands(stages)
    return root


def command_module(stage: str) -> str:
    """The module that implements subcommand ``stage`` (what dvc.yaml's deps must cover)."""
    for group in GROUPS:
        if stage in group.COMMANDS:
            return group.__name__
    raise KeyError(f"no subcommand {stage!r}")


if __name__ == "__main__":
    sys.exit(main())
