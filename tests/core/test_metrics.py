"""Metrics on hand-made masks: empty prediction, empty truth, perfect, half overlap; pooling
and the patient bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lidcseg.core.metrics import bootstrap_pooled, confusion, per_image_mean, pooled, scores
from tests.support.defaults import DEFAULTS


def _mask(cells: list[tuple[int, int]], size: int = 4) -> np.ndarray:
    m = np.zeros((size, size), bool)
    for r, c in cells:
        m[r, c] = True
    return m


TRUTH = _mask([(0, 0), (0, 1), (1, 0), (1, 1)])


@pytest.mark.parametrize(
    "prediction, dsc, precision, recall",
    [
        (TRUTH, 1.0, 1.0, 1.0),  # perfect
        (_mask([]), 0.0, math.nan, 0.0),  # empty prediction
        (_mask([(0, 0), (0, 1), (3, 3), (3, 2)]), 0.5, 0.5, 0.5),  # half overlap
        (_mask([(0, 0), (0, 1)]), 2 * 2 / (2 * 2 + 0 + 2), 1.0, 0.5),  # half of the nodule
    ],
)
def test_scores_of_hand_made_masks(prediction, dsc, precision, recall):
    result = {k: float(v[0]) for k, v in scores(confusion(prediction[None], TRUTH[None])).items()}
    for key, expected in (("dsc", dsc), ("precision", precision), ("recall", recall)):
        assert (math.isnan(result[key]) and math.isnan(expected)) or result[key] == pytest.approx(
            expected
        ), key


def test_empty_truth():
    empty = _mask([])
    result = scores(confusion(TRUTH[None], empty[None]))
    assert result["dsc"][0] == 0 and result["precision"][0] == 0 and math.isnan(result["recall"][0])
    both_empty = scores(confusion(empty[None], empty[None]))
    assert both_empty["dsc"][0] == 1.0


def test_pooled_is_not_the_mean_of_images_and_is_the_harmonic_mean():
    predictions = np.stack([TRUTH, _mask([(0, 0)])])
    truths = np.stack([TRUTH, _mask([(0, 0), (3, 3), (2, 2), (1, 3)])])
    counts = confusion(predictions, truths)
    p = pooled(counts)
    assert p["dsc"] == pytest.approx(2 * 5 / (2 * 5 + 0 + 3))
    assert p["dsc"] == pytest.approx(
        2 * p["precision"] * p["recall"] / (p["precision"] + p["recall"])
    )
    assert per_image_mean(counts)["dsc"] == pytest.approx((1.0 + 2 / 5) / 2)


def test_patient_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, size=(60, 3))
    patients = [f"P{i // 4}" for i in range(60)]
    a = bootstrap_pooled(
        counts, patients, n_resamples=300, seed=3, level=DEFAULTS.evaluate.confidence
    )
    assert a == bootstrap_pooled(
        counts, patients, n_resamples=300, seed=3, level=DEFAULTS.evaluate.confidence
    )
    estimate = pooled(counts)
    for key, (low, high) in a.items():
        assert low <= estimate[key] <= high and low < high
