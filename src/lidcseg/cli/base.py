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
import math
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


# Seeds go to numpy (np.random.seed takes 0 to 2^32 - 1) and torch: the config's range too.
SEED_MAX = 2**32 - 1


def _number(text: str, kind: type):
    """``text`` as ``kind`` (int or a finite float), else the message argparse prints."""
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def finite(text: str) -> float:
    """An argparse type: a finite number (NaN compares false with everything, so it would
    pass every later range check and select nothing)."""
    return _number(text, float)


def at_least_zero(text: str) -> float:
    """An argparse type: a finite number >= 0 (a size, a distance)."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not >= 0")
    return value


def probability(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1 (a probability cut)."""
    value = _number(text, float)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value} does not lie strictly between 0 and 1")
    return value


def seed(text: str) -> int:
    """An argparse type: a seed, a whole number from 0 to :data:`SEED_MAX`."""
    value = _number(text, int)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{value} is not a seed (0 to {SEED_MAX})")
    return value


def whole_in(low: int, high: int):
    """An argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not from {low} to {high}")
        return value

    return parse


def plain_name(text: str) -> str:
    """An argparse type: a name that becomes part of a folder's name, by the one rule for
    such names (lidcseg.errors.SAFE_NAME: no '/' or leading '.' to lead the folder elsewhere)."""
    from lidcseg.errors import SAFE_NAME

    if not SAFE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} cannot name a folder (1-64 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit)"
        )
    return text


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
