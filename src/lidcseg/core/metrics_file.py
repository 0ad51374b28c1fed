"""The metrics file of `lidcseg evaluate` (``results/metrics/<variant>/seed<k>.json``) and the
three files beside it, as written by evaluation and read by summarize, the paired
comparison and the report.

- ``<stem>.json``: :class:`MetricsFile`, the pooled, per-image, per-nodule and by-size
  figures of one model (or one folder of external predictions) on the test split.
- ``<stem>.images.csv`` (:data:`IMAGE_FIELDS`) and ``<stem>.nodules.csv``
  (:data:`NODULE_FIELDS`): the counts per test slice and per test nodule.
- ``<stem>.predictions.npz``: the probabilities x 255 as uint8 of every test slice, with
  its patient and slice (:data:`PREDICTION_ARRAYS`).

:class:`Evaluation` writes the four together or none; the beside files share the metrics
file's format and are read one at a time (:func:`read_images`, :func:`read_nodules`,
:func:`read_probability`), so a reader of counts never loads the predictions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lidcseg.core.file_format import FileFormatError, contract_fields, contract_payload
from lidcseg.core.records import (
    RecordError,
    at_least,
    check_fields,
    holding,
    listed,
    mapping,
    number,
    optional,
    score,
    text,
    whole,
)
from lidcseg.errors import LidcsegError
from lidcseg.io import output_group, read_json, read_rows, save_npz, write_json, write_rows

# 1: the first with a format (and with ``execution``).
FORMAT = 1
RERUN = "`lidcseg evaluate` for it (snakemake or dvc repro rebuild it when it is deleted)"
IMAGE_FIELDS = (
    "patient_id",
    "slice",
    "nodules",
    "diameter_mm",
    "tp",
    "fp",
    "fn",
    "dsc",
    "precision",
    "recall",
)
NODULE_FIELDS = (
    "patient_id",
    "nodule",
    "diameter_mm",
    "size",
    "slices",
    "tp",
    "fp",
    "fn",
    "dsc",
    "precision",
    "recall",
    "detected",
)
PREDICTION_ARRAYS = ("probability", "patient_id", "slice")


# What summarize and the report read of a metrics file, checked when it is loaded: a field
# edited by hand or cut short is named, never a KeyError half-way through a table.
CHECKED = {
    "variant": text,
    "slots": mapping,
    "seed": at_least(whole, 0),
    "epoch": optional(at_least(whole, 0)),
    "threshold": number,
    "test": holding({k: at_least(whole, 0) for k in ("slices", "patients", "nodules")}),
    "pooled": holding({"dsc": score, "precision": score, "recall": score}),
    "pooled_ci": mapping,
    "per_image_mean": holding({"dsc": score}),
    "slices_without_prediction": at_least(whole, 0),
    "per_nodule": mapping,
    "by_size": listed(holding({"size": text, "nodules": at_least(whole, 0)})),
    "bootstrap": mapping,
    "execution": mapping,
}


class MetricsFileError(FileFormatError):
    """A metrics file, a file beside it or a nodule table that evaluation cannot use, named."""


@dataclass(frozen=True)
class MetricsFile:
    """The test figures of one model (docs/paper.md, "Evaluation", eqs. 17-19)."""

    variant: str
    slots: dict  # the variant's skip slots; {} for external predictions
    seed: int
    model: str  # the model file (or predictions folder) scored
    epoch: int | None  # the model file's epoch; None for external predictions
    threshold: float
    test: dict  # slices, patients, nodules of the test split
    pooled: dict  # dsc, precision, recall, tp, fp, fn over every test slice
    pooled_ci: dict  # metric -> [low, high], the patient bootstrap; {} without slices
    per_image_mean: dict  # core/metrics.py per_image_mean
    slices_without_prediction: int
    per_nodule: dict  # nodules, detected, mean_dsc
    by_size: list[dict]  # one row per size group: size, nodules, detected, pooled, dsc_ci
    bootstrap: dict  # resamples, confidence, unit
    execution: dict  # core/runtime.py execution_record of the evaluation job

    def save(self, path: str | os.PathLike) -> None:
        write_json(contract_payload(self, FORMAT), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MetricsFile:
        try:
            payload = read_json(path)
        except (OSError, LidcsegError) as error:  # missing, unreadable, not JSON
            raise MetricsFileError(
                f"{path}: not a metrics file of lidcseg evaluate ({type(error).__name__}: {error})"
            ) from error
        fields = contract_fields(
            cls, payload, path, "metrics file", FORMAT, RERUN, MetricsFileError
        )
        try:
            check_fields(fields, path, CHECKED, "a metrics file")
        except RecordError as error:
            raise MetricsFileError(f"{error}: rerun {RERUN}") from None
        return cls(**fields)


@dataclass(frozen=True)
class Evaluation:
    """A metrics file with the rows and predictions written beside it."""

    metrics: MetricsFile
    images: list[dict]  # IMAGE_FIELDS, one row per test slice
    nodules: list[dict]  # NODULE_FIELDS, one row per test nodule
    probability: np.ndarray  # (slices, rows, cols) uint8, probability x 255
    patient_id: np.ndarray  # (slices,) of each test slice
    slice: np.ndarray  # (slices,) int

    def save(self, metrics_json: str | os.PathLike) -> None:
        """The four files together or none; the metrics file last (what the workflow waits on)."""
        with output_group():
            write_rows(self.images, beside_path(metrics_json, ".images.csv"), IMAGE_FIELDS)
            write_rows(self.nodules, beside_path(metrics_json, ".nodules.csv"), NODULE_FIELDS)
            save_npz(
                beside_path(metrics_json, ".predictions.npz"),
                compressed=True,
                probability=self.probability,
                patient_id=self.patient_id,
                slice=self.slice,
            )
            self.metrics.save(metrics_json)


def beside_path(metrics_json: str | os.PathLike, suffix: str) -> Path:
    """Where `lidcseg evaluate` puts a file beside ``metrics_json`` (``seed1.json`` ->
    ``seed1<suffix>``): the one naming rule its writer and its readers share."""
    return Path(metrics_json).with_name(Path(metrics_json).name.removesuffix(".json") + suffix)


def beside(metrics_json: str | os.PathLike, suffix: str) -> Path:
    """The file `lidcseg evaluate` wrote beside ``metrics_json``; a missing one raises, named."""
    path = beside_path(metrics_json, suffix)
    if not path.exists():
        raise MetricsFileError(
            f"{path}: missing (written by lidcseg evaluate beside {Path(metrics_json).name})"
        )
    return path


def read_images(metrics_json: str | os.PathLike) -> list[dict]:
    """The ``.images.csv`` rows beside ``metrics_json`` (strings, as CSV holds them)."""
    return _rows(beside(metrics_json, ".images.csv"), IMAGE_FIELDS)


def read_nodules(metrics_json: str | os.PathLike) -> list[dict]:
    """The ``.nodules.csv`` rows beside ``metrics_json`` (strings, as CSV holds them)."""
    return _rows(beside(metrics_json, ".nodules.csv"), NODULE_FIELDS)


def read_probability(metrics_json: str | os.PathLike) -> np.ndarray:
    """The uint8 probabilities of every test slice, from the ``.predictions.npz`` beside it."""
    path = beside(metrics_json, ".predictions.npz")
    try:
        with np.load(path) as saved:
            missing = [name for name in PREDICTION_ARRAYS if name not in saved.files]
            if not missing:
                return saved["probability"]
    except (OSError, ValueError, EOFError) as error:
        raise MetricsFileError(
            f"{path}: not readable ({type(error).__name__}: {error}): rerun {RERUN}"
        ) from error
    raise MetricsFileError(f"{path}: lacks {', '.join(missing)}: rerun {RERUN}")


def _rows(path: Path, fields: tuple[str, ...]) -> list[dict]:
    with path.open(newline="") as handle:
        header = handle.readline().strip().split(",")
    if header != list(fields):
        raise MetricsFileError(
            f"{path}: columns {','.join(header)}, not {','.join(fields)}: rerun {RERUN}"
        )
    return read_rows(path)
