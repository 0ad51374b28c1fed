"""Is one variant better than another, or is the difference seed and sampling noise?

The pooled test DSC of variant A minus that of variant B, each the mean over its seeds, with
a 95 % paired patient bootstrap interval: every resample draws test patients with
replacement once and scores both variants (every seed of each) on the same draw, so the
patients both models find hard or easy cancel out of the difference (Efron & Tibshirani, An
Introduction to the Bootstrap, 1993, ch. 16; the paired form is what Dietterich 1998 and
Bouthillier et al. 2021, "Accounting for variance in machine learning benchmarks", advise
for comparing learners on one test set). Averaging the seeds inside every resample carries
the seed spread into the interval only through the mean; with one seed the interval is
the test set's sampling noise alone, and the report says how many seeds there are.

The inputs are the per-image files `lidcseg evaluate` writes beside each metrics file
(``<variant>/seed<k>.images.csv``: patient, TP, FP, FN per test slice).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lidcseg.core.metrics import scores
from lidcseg.core.metrics_file import MetricsFile, MetricsFileError, read_images


@dataclass(frozen=True)
class PatientCounts:
    """A variant's test counts summed per patient: ``counts[patient, seed] = (TP, FP, FN)``."""

    patients: tuple[str, ...]
    counts: np.ndarray  # (patients, seeds, 3)

    @classmethod
    def from_image_rows(cls, runs: list[list[dict]]) -> PatientCounts:
        """One list of ``.images.csv`` rows per seed; every seed must cover the same patients."""
        patients = tuple(sorted({row["patient_id"] for row in runs[0]}))
        where = {patient: i for i, patient in enumerate(patients)}
        counts = np.zeros((len(patients), len(runs), 3), np.int64)
        for seed, rows in enumerate(runs):
            for row in rows:
                if row["patient_id"] not in where:
                    raise ValueError(
                        f"patient {row['patient_id']} is in one seed's test set, not in another's"
                    )
                counts[where[row["patient_id"]], seed] += [
                    int(row["tp"]),
                    int(row["fp"]),
                    int(row["fn"]),
                ]
        return cls(patients, counts)

    @classmethod
    def read(cls, metric_files: list[Path]) -> PatientCounts:
        """From the ``.images.csv`` beside each of a variant's metrics files (one per seed)."""
        runs = [read_images(path) for path in metric_files]
        try:
            return cls.from_image_rows(runs)
        except (KeyError, ValueError) as error:
            raise MetricsFileError(
                f"{metric_files[0]}: per-image counts unusable: {error}"
            ) from error


def seed_mean_dsc(counts: np.ndarray) -> np.ndarray:
    """Pooled DSC of each seed, averaged over seeds: counts (..., patients, seeds, 3) -> (...)."""
    return np.mean(scores(counts.sum(axis=-3))["dsc"], axis=-1)


def paired_difference(
    a: PatientCounts, b: PatientCounts, resamples: int, level: float, seed: int = 0
) -> dict:
    """Pooled DSC of ``a`` minus ``b`` (seeds averaged) and its paired patient-bootstrap
    interval of ``resamples`` draws at confidence ``level`` (config.yaml ``evaluate:``);
    ``excludes_zero`` when the whole interval lies on one side of 0."""
    if a.patients != b.patients:
        raise ValueError("the two variants were tested on different patients: no paired comparison")
    draws = np.random.default_rng(seed).integers(
        0, len(a.patients), size=(resamples, len(a.patients))
    )
    difference = seed_mean_dsc(a.counts[draws]) - seed_mean_dsc(b.counts[draws])
    tail = (1 - level) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = (float(np.nanpercentile(difference, q)) for q in (tail, 100 - tail))
    return {
        "diff": float(seed_mean_dsc(a.counts) - seed_mean_dsc(b.counts)),
        "low": low,
        "high": high,
        "excludes_zero": bool(low > 0 or high < 0),
        "seeds": (a.counts.shape[1], b.counts.shape[1]),
        "patients": len(a.patients),
        "resamples": resamples,
        "confidence": level,
    }


def counts_by_variant(metric_files: list[Path]) -> dict[str, PatientCounts]:
    """Every variant's per-patient counts over its seeds, from its metrics files."""
    files: dict[str, list[tuple[int, Path]]] = {}
    for path in metric_files:
        result = MetricsFile.load(path)
        files.setdefault(result.variant, []).append((result.seed, Path(path)))
    return {
        variant: PatientCounts.read([path for _, path in sorted(runs)])
        for variant, runs in files.items()
    }
