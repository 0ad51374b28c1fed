"""The workflow's configuration: validated once against the JSON schema, then typed sections.

The schema (``lidcseg/schemas/config.schema.yaml``, shipped with the package) is the single
description of every key, and config.yaml the single place a value lives: no function or
command-line default of the package restates one. This module turns the first violation
into an error that names the key and gives each stage a typed view of the sections it reads.
It imports nothing of the package but its errors, so every stage can depend on it.

Values reach a stage one way: ``--settings``, a config file or the inline JSON of the
sections a rule hands its command (:func:`load_sections`).
"""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

import jsonschema
import yaml

from lidcseg.errors import ConfigError

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


def load_schema(path: str | os.PathLike = SCHEMA_PATH) -> dict:
    return yaml.safe_load(Path(path).read_text())


def validate(config: dict, schema_path: str | os.PathLike = SCHEMA_PATH) -> None:
    """Raise ConfigError naming the key of the first (most specific) violation. (Which
    attention blocks exist is the model registry's to say: ``variants_from_config``.)"""
    _raise_first_error(load_schema(schema_path), config, ())
    run_variants(config["models"])


def _raise_first_error(schema: dict, data, path: tuple[str, ...]) -> None:
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if error is None:
        return
    where = (*path, *(str(p) for p in error.absolute_path))
    key = ".".join(where) or "<top level>"
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        raise ConfigError(".".join((*where, unknown[0])), "unknown key (not in the schema; check its spelling)")
    raise ConfigError(key, error.message)


def load_sections(source: str | os.PathLike, sections: tuple[str, ...]) -> dict:
    """The named sections of a config, validated: ``source`` is a YAML/JSON config file or an
    inline JSON object (what the workflow's rules pass, so a job uses exactly the merged
    config Snakemake saw). Each requested section must be present."""
    source = str(source)
    text = source if source.lstrip().startswith("{") else _read_config_file(source)
    data = yaml.safe_load(text) or {}
    schema = load_schema()
    for section in sections:
        if section not in data:
            raise ConfigError(section, f"missing from {source if len(source) < 200 else 'the settings'}")
        _raise_first_error(schema["properties"][section], data[section], (section,))
    if "models" in sections:
        run_variants(data["models"])
    return {section: data[section] for section in sections}


def _read_config_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError("--settings", f"cannot read {path} ({exc.strerror or exc})") from None


def settings(source: str | os.PathLike, *sections: str) -> tuple:
    """The typed sections (``ConvertConfig``, ...) of ``source``, in the order asked."""
    data = load_sections(source, sections)
    return tuple(SECTIONS[name].from_dict(data[name]) for name in sections)


def run_variants(models: dict) -> list[str]:
    """The variants the workflow trains: ``models.run`` (``all`` = every defined one, in order).

    A list, not a flag per variant, because Snakemake merges an override file's mappings into
    config.yaml's: an override can add variants but never remove one, while a list replaces."""
    run = models["run"]
    if run == "all":
        return list(models["variants"])
    for i, name in enumerate(run):
        if name not in models["variants"]:
            raise ConfigError(f"models.run.{i}", f"{name!r} is not defined in models.variants "
                                                 f"({', '.join(models['variants'])})")
    return list(run)


def load(path: str | os.PathLike, *overrides: str | os.PathLike) -> "Config":
    """Read a config file, apply override files on top (as --configfile does), validate."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    for override in overrides:
        data = deep_update(data, yaml.safe_load(Path(override).read_text()) or {})
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


class Section:
    """A config section as a frozen dataclass: lists become tuples, nested sections their type."""

    @classmethod
    def from_dict(cls, data: dict):
        hints = typing.get_type_hints(cls)
        values = {}
        for f in fields(cls):
            value, hint = data[f.name], hints[f.name]
            if is_dataclass(hint):
                value = hint.from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            values[f.name] = value
        return cls(**values)


@dataclass(frozen=True)
class DatasetConfig(Section):
    source: str
    patients: tuple[str, ...] | str  # ids, or "all"
    root: str


@dataclass(frozen=True)
class SynthesizeConfig(Section):
    seed: int
    noise_hu: float
    storage: str


@dataclass(frozen=True)
class TciaConfig(Section):
    base_url: str
    api_version: str
    collection: str
    md5: bool


@dataclass(frozen=True)
class IdcConfig(Section):
    endpoint: str
    index: str  # "bundled" (idc-index-data's parquet) or a parquet file with its columns
    collection: str


@dataclass(frozen=True)
class DownloadConfig(Section):
    parallel: int
    retries: int
    backoff_s: float
    timeout_s: float
    tcia: TciaConfig
    idc: IdcConfig


@dataclass(frozen=True)
class ConvertConfig(Section):
    """Tolerances of the series checks (convert and inspect)."""

    max_gap_factor: float  # a step this many times the usual spacing is a missing slice
    max_spacing_deviation: float  # larger relative deviation: irregular spacing
    missing_rescale: str  # "identity" or "error": what to do without RescaleSlope/Intercept


@dataclass(frozen=True)
class ResampleConfig(Section):
    spacing_mm: tuple[float, float, float]
    image_size: tuple[int, int]
    image_interpolation: str
    mask_interpolation: str
    pad_hu: int


@dataclass(frozen=True)
class AnnotateConfig(Section):
    consensus: float
    min_diameter_mm: float


@dataclass(frozen=True)
class ExtractConfig(Section):
    min_area_mm2: float
    window_centre: float
    window_width: float


@dataclass(frozen=True)
class SplitConfig(Section):
    seed: int
    test_fraction: float
    val_fraction: float
    stratify: str


@dataclass(frozen=True)
class ModelsConfig(Section):
    encoder: str
    encoder_weights: str | None
    in_channels: int
    decoder_channels: tuple[int, ...]
    aspp_rates: tuple[int, ...]
    boundary_formula: str
    reduction: int
    output_prior: float
    variants: dict
    run: str | tuple[str, ...]

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AugmentConfig(Section):
    flip: bool
    rotate_deg: float
    scale: tuple[float, float]
    intensity: float


@dataclass(frozen=True)
class TrainConfig(Section):
    seeds: tuple[int, ...]
    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float
    weight_decay: float
    schedule: str
    warmup_epochs: float
    validate_every: int
    early_stopping_patience: int
    image_scale: float
    patch_size: tuple[int, int]
    foreground_fraction: float
    augment: AugmentConfig
    deep_supervision: tuple[float, ...]
    workers: int
    threads: int
    device: str
    amp: str
    channels_last: bool
    compile: bool
    deterministic: bool


@dataclass(frozen=True)
class EvaluateConfig(Section):
    threshold: float
    bootstrap_resamples: int
    confidence: float
    size_bins_mm: tuple[float, ...]
    batch_size: int


@dataclass(frozen=True)
class Config(Section):
    dataset: DatasetConfig
    synthesize: SynthesizeConfig
    download: DownloadConfig
    convert: ConvertConfig
    resample: ResampleConfig
    annotate: AnnotateConfig
    extract: ExtractConfig
    split: SplitConfig
    models: ModelsConfig
    train: TrainConfig
    evaluate: EvaluateConfig


SECTIONS: dict[str, type[Section]] = {f.name: typing.get_type_hints(Config)[f.name] for f in fields(Config)}
