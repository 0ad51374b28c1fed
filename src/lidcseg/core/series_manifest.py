"""``<root>/<patient>/series.json``: the marker that a patient's CT series is in place,
written last by `lidcseg synthesize` (data/synthetic/synthesize.py) and by a download
(data/sources/transfer.py), from the index of a copy already on disk (data/sources/local.py),
and read wherever a patient folder is turned into its series folder and files
(data/dicom/files.py). Every source writes every field, so no reader asks which source it
was."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from lidcseg.core.file_format import FileFormatError, contract_fields, contract_payload
from lidcseg.errors import LidcsegError
from lidcseg.io import read_json, write_json

# 1: the first with a format (and with every field for every source). 2: ``files``, the
# series' own files when its folder holds others too (a copy on disk, read in place).
FORMAT = 2
RERUN = (
    "`lidcseg synthesize`, `lidcseg download` or `lidcseg local-series` for the patient (a "
    "download keeps the series already verified in place; delete series.json for snakemake or "
    "dvc repro to rerun it)"
)


class SeriesManifestError(FileFormatError):
    """A series.json that cannot be used, named."""


@dataclass(frozen=True)
class SeriesManifest:
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    series_dir: str  # the series folder, relative to the patient's folder (or absolute)
    n_instances: int
    source: str  # "synthetic", or the archive it was downloaded from
    origin: str = ""  # where the files came from (a download's address); "" when made here
    md5_verified: bool = False  # a download's files matched the archive's checksums
    other_series: list[str] = field(default_factory=list)  # further series of the patient
    storage: str | None = None  # the synthetic DICOM convention; None for an archive's files
    # The series' files, relative to series_dir; empty: every file of series_dir (a folder
    # that holds the series alone, as synthesize and download write it).
    files: list[str] = field(default_factory=list)

    def save(self, path: str | os.PathLike) -> None:
        write_json(contract_payload(self, FORMAT), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SeriesManifest:
        try:
            payload = read_json(path)
        except (OSError, LidcsegError) as error:  # missing, unreadable, not JSON
            raise SeriesManifestError(
                f"{path}: not a series.json of lidcseg ({type(error).__name__}: {error})"
            ) from error
        return cls(
            **contract_fields(cls, payload, path, "series.json", FORMAT, RERUN, SeriesManifestError)
        )
