"""`check-config` and `models`: a config file checked, and the variants it defines."""

from __future__ import annotations

from pathlib import Path

from lidcseg.cli.base import command

COMMANDS = ("check-config", "models")


def add_commands(stages) -> None:
    p = command(
        stages,
        "check-config",
        run_check_config,
        "validate a config file (and overrides)",
        "Validate CONFIG, with OVERRIDE files merged on top as snakemake --configfile does.",
    )
    p.add_argument(
        "config",
        type=Path,
        nargs="?",
        help="default: ./config.yaml, else the defaults shipped with lidcseg",
    )
    p.add_argument("overrides", type=Path, nargs="*")
    p = command(
        stages,
        "models",
        run_models,
        "list the configured model variants, their slots and sizes",
        "Print every variant of CONFIG's models section (with OVERRIDE files on top) with its "
        "slots and parameter count.",
    )
    p.add_argument(
        "config",
        type=Path,
        nargs="?",
        help="default: ./config.yaml, else the defaults shipped with lidcseg",
    )
    p.add_argument("overrides", type=Path, nargs="*")


def run_check_config(args) -> None:
    from lidcseg import config
    from lidcseg.models.registry import variants_from_config

    path = args.config or config.default_source()
    variants_from_config(config.load(path, *args.overrides).models.variants)
    print(f"{path}: valid")


def run_models(args) -> None:
    from lidcseg import config
    from lidcseg.models.unet import variant_markdown

    path = args.config or config.default_source()
    print(variant_markdown(config.load(path, *args.overrides).models.as_dict()))
