"""The workflow's configuration: validated once against the JSON schema, then typed sections.

The schema (``lidcseg/schemas/config.schema.yaml``, shipped with the package) is the single
description of every key, and config.yaml the single place a value lives: no function or
command-line default of the package restates one. This module turns the first violation
into an error that names the key and gives each stage a typed view of the sections it reads.
It imports nothing of the package but its errors (and its own ``sections.py``, the typed
sections), so every stage can depend on it.

Values reach a stage one way: ``--settings``, a config file or the inline JSON of the
sections a rule hands its command (:func:`load_sections`); without one, config.yaml of the
current folder, else the copy of it shipped with the package (:func:`default_source`). The
``execution`` section (how fast and where, never what) comes apart from the recipe, through
``--execution`` (:func:`execution`), so that Snakemake never reruns a job for it.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import jsonschema
import yaml

from lidcseg.config.sections import (  # noqa: F401  (the typed sections are part of this module's interface)
    SECTIONS,
    AnnotateConfig,
    AugmentConfig,
    Config,
    ConvertConfig,
    DatasetConfig,
    DownloadConfig,
    DownloadExecution,
    EvaluateConfig,
    EvaluateExecution,
    ExecutionConfig,
    ExtractConfig,
    IdcConfig,
    LocalExecution,
    ModelsConfig,
    ResampleConfig,
    Section,
    SplitConfig,
    SynthesizeConfig,
    TciaConfig,
    TrainConfig,
    TrainExecution,
    TrainRun,
)
from lidcseg.config.strict_yaml import check_file, refuse_unbounded  # noqa: F401
from lidcseg.config.strict_yaml import parse as parse_yaml
from lidcseg.errors import ConfigError

SCHEMA_PATH = Path(__file__).parents[1] / "schemas" / "config.schema.yaml"
# config.yaml as package data (tests/test_config.py keeps it identical to the checkout's).
DEFAULTS_PATH = Path(__file__).parents[1] / "defaults" / "config.yaml"
# Keys that left the recipe for `execution:`; a config still holding one is refused, naming
# the new place, rather than read wrongly or ignored.
MOVED = {
    **{
        f"train.{key}": f"execution.train.{key}"
        for key in ("workers", "threads", "device", "channels_last", "compile", "deterministic")
    },
    "evaluate.batch_size": "execution.evaluate.batch_size",
    **{
        f"download.{key}": f"execution.download.{key}"
        for key in ("parallel", "retries", "backoff_s", "max_wait_s", "timeout_s", "proxy")
        + ("ca_bundle",)
    },
}
# JSON Schema counts 1.0 as an integer; a seed, an epoch count or a size of 2.0 is a typo
# that would fail later without naming its key, so here an integer is an int.
_STRICT = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)


def load_schema(path: str | os.PathLike = SCHEMA_PATH) -> dict:
    return yaml.safe_load(Path(path).read_text())


@functools.cache
def _schema_of(name: str) -> dict:
    part = load_schema()
    for key in name.split("."):
        part = part["properties"][key]
    return part


def check_value(name: str, value) -> None:
    """``value`` checked against the schema of config key ``name`` (dotted:
    ``resample.image_size``), naming the key: for a value a file restates (a model file's
    grid and architecture), which must be one the config could hold."""
    _raise_first_error(_schema_of(name), value, tuple(name.split(".")))


def validate(config: dict, schema_path: str | os.PathLike = SCHEMA_PATH) -> None:
    """Raise ConfigError naming the key of the first (most specific) violation. (Which
    attention blocks exist is the model registry's to say: ``variants_from_config``.)"""
    _refuse_moved(config)
    _raise_first_error(load_schema(schema_path), config, ())
    _check_values(config)


def _refuse_moved(data: dict) -> None:
    for old, new in MOVED.items():
        section, key = old.split(".")
        if isinstance(data.get(section), dict) and key in data[section]:
            raise ConfigError(old, f"moved to {new} (how fast and where, not what a job computes)")


def default_source() -> Path:
    """What ``--settings`` means when not given: config.yaml of the current folder (a
    checkout), else the defaults shipped with the package (a command run anywhere else)."""
    here = Path("config.yaml")
    return here if here.is_file() else DEFAULTS_PATH


def _raise_first_error(schema: dict, data, path: tuple[str, ...]) -> None:
    refuse_unbounded(data, path)  # NaN passes every range check: refused before the schema's
    error = jsonschema.exceptions.best_match(_STRICT(schema).iter_errors(data))
    if error is None:
        return
    where = (*path, *(str(p) for p in error.absolute_path))
    key = ".".join(where) or "<top level>"
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        raise ConfigError(
            ".".join((*where, unknown[0])), "unknown key (not in the schema; check its spelling)"
        )
    raise ConfigError(key, error.message)


def load_sections(source: str | os.PathLike, sections: tuple[str, ...]) -> dict:
    """The named sections of a config, validated: ``source`` is a YAML/JSON config file or an
    inline JSON object (what the workflow's rules pass, so a job uses exactly the merged
    config Snakemake saw). Each requested section must be present. A dotted name
    (``evaluate.size_bins_mm``) asks for that one key of its section, which is then all a
    rule need hand (a stage that reads one key of another stage's section)."""
    source = str(source)
    inline = source.lstrip().startswith("{")
    data = _mapping(source)
    _refuse_moved(data)
    schema = load_schema()
    chosen: dict = {}
    for name in sections:
        section, _, key = name.partition(".")
        holder = data.get(section) if key else data
        if not isinstance(holder, dict) or (key or section) not in holder:
            raise ConfigError(name, f"missing from {'the --settings JSON' if inline else source}")
        part = schema["properties"][section]
        part = part["properties"][key] if key else part
        _raise_first_error(part, holder[key or section], tuple(name.split(".")))
        if key:
            chosen.setdefault(section, {})[key] = holder[key]
        else:
            chosen[section] = holder[section]
    _check_values(chosen)
    return chosen


def _mapping(source: str) -> dict:
    """A config file's or an inline JSON object's mapping of sections, unvalidated."""
    inline = source.lstrip().startswith("{")
    return _parse(source if inline else _read(source), "the --settings JSON" if inline else source)


def execution(source: str | os.PathLike | None, settings: str | os.PathLike) -> ExecutionConfig:
    """The ``execution`` section: of ``source`` (``--execution``: a config file or inline
    JSON holding it) when given, else of ``settings`` when it holds one, else the package's
    defaults. The workflow hands it apart from ``--settings``: not a Snakemake param, so a
    change never reruns a job."""
    if source is None:
        source = settings if "execution" in _mapping(str(settings)) else DEFAULTS_PATH
    return ExecutionConfig.from_dict(load_sections(source, ("execution",))["execution"])


def _read(path: str | os.PathLike) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(
            str(path), f"cannot read the config file ({exc.strerror or exc})"
        ) from None


def _parse(text: str, where: str) -> dict:
    data = parse_yaml(text, where) or {}
    if not isinstance(data, dict):
        raise ConfigError(where, "a config is a mapping of sections")
    return data


def settings(source: str | os.PathLike, *sections: str) -> tuple:
    """The typed sections (``ConvertConfig``, ...) of ``source``, in the order asked; a
    dotted name (:func:`load_sections`) gives its key's value, a list as a tuple."""
    data = load_sections(source, sections)
    return tuple(_typed(data, name) for name in sections)


def _typed(data: dict, name: str):
    section, _, key = name.partition(".")
    if not key:
        return SECTIONS[section].from_dict(data[section])
    value = data[section][key]
    return tuple(value) if isinstance(value, list) else value


PREDICTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _check_values(data: dict) -> None:
    """What the schema cannot say, for the sections present: the size-table edges rise (else
    its rows would be mislabelled), and the variants to run are defined."""
    dataset = data.get("dataset", {})
    if dataset.get("source") == "local" and not dataset.get("local_root"):
        raise ConfigError(
            "dataset.local_root", "source local needs the folder of your LIDC-IDRI copy"
        )
    edges = data.get("evaluate", {}).get("size_bins_mm", [])
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise ConfigError("evaluate.size_bins_mm", f"{edges} must rise strictly (e.g. [6, 10, 20])")
    if "models" in data:
        run_variants(data["models"])
    if data.get("predict", {}).get("inputs") and "models" in data and "train" in data:
        prediction_names(data["predict"], run_variants(data["models"]), data["train"]["seeds"])


def prediction_names(predict: dict, variants: list[str], seeds: list[int]) -> dict[str, str]:
    """``{name: input}`` of the predict rule: each input's file or folder name (NIfTI suffix
    dropped) names its results folder, so it must be a plain, unique name; the models it
    names must be ones the workflow trains."""
    if predict["variant"] not in variants:
        raise ConfigError(
            "predict.variant", f"{predict['variant']!r} is not trained (models.run: {variants})"
        )
    for i, seed in enumerate(predict["seeds"]):
        if seed not in seeds:
            raise ConfigError(f"predict.seeds.{i}", f"{seed} is not one of train.seeds {seeds}")
    names: dict[str, str] = {}
    for i, path in enumerate(predict["inputs"]):
        name = os.path.basename(os.path.normpath(path)).removesuffix(".gz").removesuffix(".nii")
        if not PREDICTION_NAME.fullmatch(name) or name in names:
            reason = (
                "names another input's folder too"
                if name in names
                else "is no plain file or folder name"
            )
            raise ConfigError(f"predict.inputs.{i}", f"{path!r}: {name!r} {reason}")
        names[name] = path
    return names


def run_variants(models: dict) -> list[str]:
    """The variants the workflow trains: ``models.run`` (``all`` = every defined one, in order).

    A list, not a flag per variant, because Snakemake merges an override file's mappings into
    config.yaml's: an override can add variants but never remove one, while a list replaces."""
    run = models["run"]
    if run == "all":
        return list(models["variants"])
    for i, name in enumerate(run):
        if name not in models["variants"]:
            raise ConfigError(
                f"models.run.{i}",
                f"{name!r} is not defined in models.variants ({', '.join(models['variants'])})",
            )
    return list(run)


def load(path: str | os.PathLike, *overrides: str | os.PathLike) -> Config:
    """Read a config file, apply override files on top (as --configfile does), validate."""
    data = _parse(_read(path), str(path))
    for override in overrides:
        data = deep_update(data, _parse(_read(override), str(override)))
    validate(data)
    return Config.from_dict(data)


def deep_update(base: dict, update: dict) -> dict:
    """Snakemake's override rule: nested mappings merge, everything else is replaced."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged


def local_root(dataset: DatasetConfig) -> Path:
    """The copy of ``dataset.source: local``, checked to be a folder (its key named if not)."""
    if not dataset.local_root:
        raise ConfigError(
            "dataset.local_root", "source local needs the folder of your LIDC-IDRI copy"
        )
    root = Path(dataset.local_root).expanduser()
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise ConfigError("dataset.local_root", f"{root} {what}")
    return root
