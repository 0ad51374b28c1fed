"""The readers' figures (``results/metrics/readers.json``): what `lidcseg readers` writes
(evaluation/readers.py, the leave-one-reader-out human ceiling) and the report's readers row
reads. The rows it is summed from sit beside it as CSV, read by no stage."""

from __future__ import annotations

import os
from dataclasses import dataclass

from lidcseg.core.file_format import FileFormatError, contract_fields, contract_payload
from lidcseg.errors import LidcsegError
from lidcseg.io import read_json, write_json

# 1: the first with a format.
FORMAT = 1
RERUN = "`lidcseg readers` for it (snakemake or dvc repro rebuild it when it is deleted)"


class ReadersFileError(FileFormatError):
    """A readers file the report cannot use, named."""


@dataclass(frozen=True)
class ReadersFile:
    """Pooled like the models' metrics files (core/metrics_file.py), over every (nodule,
    reader) pair of the test slices."""

    pooled: dict  # dsc, precision, recall, tp, fp, fn
    pooled_ci: dict  # metric -> [low, high], the patient bootstrap; {} without pairs
    per_image_mean: dict  # an image is one (slice, reader slot)
    pairs: int  # (nodule, reader) pairs scored
    nodules: int
    patients: int
    slices: int  # test slices with any reader's mark
    bootstrap: dict  # resamples, confidence, unit
    test_slices: int  # test slices looked at
    consensus: float
    min_diameter_mm: float
    mask_method: str
    definition: str  # the comparison in words, for the report

    def save(self, path: str | os.PathLike) -> None:
        write_json(contract_payload(self, FORMAT), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReadersFile:
        try:
            payload = read_json(path)
        except (OSError, LidcsegError) as error:  # missing, unreadable, not JSON
            raise ReadersFileError(
                f"{path}: not a readers file of lidcseg readers ({type(error).__name__}: {error})"
            ) from error
        return cls(
            **contract_fields(cls, payload, path, "readers file", FORMAT, RERUN, ReadersFileError)
        )
