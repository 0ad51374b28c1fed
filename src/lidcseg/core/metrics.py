"""Segmentation metrics (docs/paper.md, "Evaluation", eqs. 17-19) and their uncertainty.

    DSC = 2TP / (2TP + FP + FN),  precision = TP / (TP + FP),  recall = TP / (TP + FN)

Pooled: TP, FP and FN summed over all test images first (the headline: the paper's DSC is
the harmonic mean of its precision and recall, which pooled counts give). Per image: the
mean of each image's value, beside it. An image with neither prediction nor nodule has
DSC 1; a ratio whose denominator is 0 otherwise is undefined (NaN) and left out of means.
95 % confidence intervals resample patients (the unit of independence) with replacement.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np


def confusion(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(TP, FP, FN) per image of binary arrays (n, ...) as an (n, 3) int64 array."""
    prediction = np.asarray(prediction, bool).reshape(len(prediction), -1)
    truth = np.asarray(truth, bool).reshape(len(truth), -1)
    tp = (prediction & truth).sum(1)
    fp = (prediction & ~truth).sum(1)
    fn = (~prediction & truth).sum(1)
    return np.stack([tp, fp, fn], axis=1).astype(np.int64)


def scores(counts: np.ndarray) -> dict[str, np.ndarray]:
    """DSC, precision and recall of (..., 3) counts (NaN where undefined)."""
    tp, fp, fn = (np.asarray(counts, float)[..., i] for i in range(3))
    with np.errstate(invalid="ignore", divide="ignore"):
        dsc = np.where(tp + fp + fn == 0, 1.0, 2 * tp / (2 * tp + fp + fn))
        precision = np.where(tp + fp == 0, np.nan, tp / (tp + fp))
        recall = np.where(tp + fn == 0, np.nan, tp / (tp + fn))
    return {"dsc": dsc, "precision": precision, "recall": recall}


def pooled(counts: np.ndarray) -> dict[str, float]:
    """Eqs. (17)-(19) on the summed counts of all images."""
    return {k: float(v) for k, v in scores(np.asarray(counts).sum(0)).items()}


def per_image_mean(counts: np.ndarray) -> dict[str, float]:
    """Each image's DSC, precision and recall, averaged over the images where it is defined.
    Precision is undefined on a slice with no prediction, so its mean leaves out exactly the
    slices a model missed and reads high; ``precision_empty_as_0`` counts them as 0 (every
    test slice holds a nodule, so predicting nothing there is an error)."""
    per_image = scores(counts)
    means = {
        k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
        for k, v in per_image.items()
    }
    precision = per_image["precision"]
    means["precision_empty_as_0"] = (
        float(np.mean(np.nan_to_num(precision, nan=0.0))) if len(precision) else float("nan")
    )
    return means


def bootstrap_pooled(
    counts: np.ndarray, patients: Sequence[str], n_resamples: int, seed: int, level: float
) -> dict[str, tuple[float, float]]:
    """Percentile interval of the pooled metrics when patients are drawn with replacement."""
    counts = np.asarray(counts)
    ids, index = np.unique(np.asarray(patients), return_inverse=True)
    per_patient = np.zeros((len(ids), 3))
    np.add.at(per_patient, index, counts)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(ids), size=(n_resamples, len(ids)))
    resampled = scores(per_patient[draws].sum(axis=1))
    tail = (1 - level) / 2 * 100
    with (
        warnings.catch_warnings()
    ):  # a metric undefined in every draw (no prediction at all) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            k: (float(np.nanpercentile(v, tail)), float(np.nanpercentile(v, 100 - tail)))
            for k, v in resampled.items()
        }
