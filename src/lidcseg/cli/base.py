"""What every subcommand shares: its parser entry, and the config sections it reads.

A stage takes its paths as arguments and every config value from ``--settings``: a config
file or the inline JSON of the sections the workflow's rule hands it; without it, config.yaml
of the current folder, else the copy shipped with the package. Training, evaluation,
prediction and download also take ``--execution`` (how fast and where; the workflow hands it
as a resource, so that a change reruns nothing). No value is restated here as a default, so
config.yaml stays the one place a value lives.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("lidcseg")


def command(
    stages,
    name: str,
    run,
    help: str,
    description: str,
    settings: tuple[str, ...] = (),
    execution: bool = False,
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` running ``run(args)``; with ``settings``, the config sections
    it reads come from ``--settings`` (:func:`sections` reads them); with ``execution``, the
    execution section from ``--execution`` (:func:`execution_settings`)."""
    parser = stages.add_parser(
        name,
        help=help,
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.set_defaults(run=run, sections=settings)
    if settings:
        parser.add_argument(
            "--settings",
            help=f"config file, or inline JSON holding the sections {', '.join(settings)} "
            "(default: ./config.yaml, else the defaults shipped with lidcseg)",
        )
    if execution:
        parser.add_argument(
            "--execution",
            help="config file, or inline JSON, holding the execution section (default: the "
            "--settings' one, else the defaults shipped with lidcseg)",
        )
    return parser


def at_least_one(text: str) -> int:
    """An argparse type: a whole number >= 1 (argparse names the option and exits 2 otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def sections(args, *more: str) -> tuple:
    """The typed config sections the command declared (and ``more``, which only some of its
    options need), read from ``args.settings`` in one pass, validated, naming the key."""
    from lidcseg import config

    return config.settings(_settings_source(args), *args.sections, *more)


def execution_settings(args):
    """The command's ``ExecutionConfig``: ``--execution``, else that of ``--settings``."""
    from lidcseg import config

    return config.execution(getattr(args, "execution", None), _settings_source(args))


def memory_limit(args) -> None:
    """Give the memory budget (lidcseg.core.budget) the command's ``execution.memory_limit_gb``,
    read once, when a file first sizes an array: a command that sizes none reads nothing."""
    from functools import cache

    from lidcseg.core import budget

    budget.use_limit(cache(lambda: execution_settings(args).memory_limit_gb))


def _settings_source(args):
    from lidcseg import config

    settings = getattr(args, "settings", None)
    return config.default_source() if settings is None else settings


def sidecar(nifti: Path) -> Path:
    """``x.nii.gz`` -> ``x.json``: where a stage writes what it found beside a volume
    (lidcseg.io.sidecar, imported only when a command runs: the parser stays quick)."""
    from lidcseg.io import sidecar as beside

    return beside(nifti)
