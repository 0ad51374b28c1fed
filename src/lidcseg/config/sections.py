"""The typed sections of config.yaml: one frozen dataclass per section, built from the validated
mapping (lists become tuples, nested sections their own type). The schema documents each key.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields, is_dataclass


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
    local_root: str | None  # source local: the copy on disk, read in place


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
    """Which archive serves the series; how it is reached is ``DownloadExecution``."""

    tcia: TciaConfig
    idc: IdcConfig


@dataclass(frozen=True)
class ConvertConfig(Section):
    """Tolerances of the series checks (convert and inspect)."""

    max_gap_factor: (
        float  # a step above this many times the usual spacing is a gap (stray or missing slices)
    )
    max_spacing_deviation: (
        float  # larger relative deviation: uneven spacing, warned (placed by real z)
    )
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
    side_maps: str
    aspp_form: str
    cbam_form: str
    boundary_residual: bool
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
    gradient_clip: float
    weight_average: float
    amp: str  # autocast on CUDA: changes the weights beyond rounding, so part of the recipe


@dataclass(frozen=True)
class EvaluateConfig(Section):
    threshold: float
    bootstrap_resamples: int
    confidence: float
    size_bins_mm: tuple[float, ...]


@dataclass(frozen=True)
class PredictConfig(Section):
    inputs: tuple[str, ...]
    variant: str
    seeds: tuple[int, ...]
    min_size_mm3: float


@dataclass(frozen=True)
class TrainExecution(Section):
    """Where and how fast training, evaluation and prediction compute (``execution.train``)."""

    workers: int
    threads: int
    device: str
    channels_last: bool
    compile: bool
    deterministic: bool
    resident_split: bool  # the training split held on the device, no loader workers


@dataclass(frozen=True)
class EvaluateExecution(Section):
    batch_size: int  # slices per forward pass of evaluate and predict


@dataclass(frozen=True)
class DownloadExecution(Section):
    """How a download job connects (``execution.download``)."""

    parallel: int
    retries: int
    backoff_s: float
    max_wait_s: float  # cap of one wait before a retry, Retry-After included
    timeout_s: float
    proxy: str | None  # None (direct), "environment" or a proxy URL
    ca_bundle: str | None  # PEM file of trusted CAs, None for certifi's


@dataclass(frozen=True)
class LocalExecution(Section):
    """How ``lidcseg index-local`` reads a copy's headers (``execution.local``)."""

    workers: int  # processes reading headers at once


@dataclass(frozen=True)
class TrainRun(TrainConfig):
    """The training recipe with the execution settings it runs under: what training,
    evaluation and prediction read (``TrainRun.of``). The config keeps the two apart."""

    workers: int
    threads: int
    device: str
    channels_last: bool
    compile: bool
    deterministic: bool
    resident_split: bool  # the training split held on the device, no loader workers

    @classmethod
    def of(cls, train: TrainConfig, execution: TrainExecution) -> TrainRun:
        return cls(**train.__dict__, **execution.__dict__)


@dataclass(frozen=True)
class ExecutionConfig(Section):
    """How fast and where, never what: no job reruns when it changes (docs/configuration.md)."""

    memory_limit_gb: float  # the largest array a file's header may size (lidcseg.core.budget)
    train: TrainExecution
    evaluate: EvaluateExecution
    download: DownloadExecution
    local: LocalExecution


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
    predict: PredictConfig
    execution: ExecutionConfig

    @property
    def train_run(self) -> TrainRun:
        """The training recipe with its execution settings: what training code reads."""
        return TrainRun.of(self.train, self.execution.train)


SECTIONS: dict[str, type[Section]] = {
    f.name: typing.get_type_hints(Config)[f.name] for f in fields(Config)
}
