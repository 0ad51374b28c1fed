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
    p.add_argument("config", type=Path)
    p.add_argument("overrides", type=Path, nargs="*")
    p = command(
        stages,
        "models",
        run_models,
        "list the configured model variants, their slots and sizes",
        "Print every variant of CONFIG's models section (with OVERRIDE files on top) with its "
        "slots and parameter count.",
    )
    p.add_argument("config", type=Path, nargs="?", default=Path("config.yaml"))
    p.add_argument("overrides", type=Path, nargs="*")


def run_check_config(args) -> None:
    from lidcseg import config
    from lidcseg.models.registry import variants_from_config

    variants_from_config(config.load(args.config, *args.overrides).models.variants)
    print(f"{args.config}: valid")


def run_models(args) -> None:
    from lidcseg import config
    from lidcseg.models.unet import variant_markdown

    print(variant_markdown(config.load(args.config, *args.overrides).models.as_dict()))
