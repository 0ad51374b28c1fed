"""The paired patient bootstrap on hand-made per-image counts: a variant against itself, a
clear difference, seeds averaged, and named errors."""

from __future__ import annotations

import numpy as np
import pytest

from lidcseg.core.metrics_file import MetricsFileError
from lidcseg.evaluation.compare import PatientCounts, paired_difference, seed_mean_dsc

RESAMPLES, CONFIDENCE = 1000, 0.95  # config.yaml's evaluate: bootstrap_resamples, confidence


def rows(per_patient: dict[str, tuple[int, int, int]], slices: int = 2) -> list[dict]:
    """Per-image rows: each patient's counts split over ``slices`` slices."""
    out = []
    for patient, (tp, fp, fn) in per_patient.items():
        for s in range(slices):
            share = (
                (tp // slices, fp // slices, fn // slices)
                if s
                else (
                    tp - tp // slices * (slices - 1),
                    fp - fp // slices * (slices - 1),
                    fn - fn // slices * (slices - 1),
                )
            )
            out.append(
                {
                    "patient_id": patient,
                    "tp": str(share[0]),
                    "fp": str(share[1]),
                    "fn": str(share[2]),
                }
            )
    return out


PATIENTS = [f"LIDC-IDRI-{i:04d}" for i in range(1, 13)]
rng = np.random.default_rng(0)
NOISY = {
    p: (int(t), int(f), int(n))
    for p, t, f, n in zip(
        PATIENTS, rng.integers(50, 150, 12), rng.integers(10, 90, 12), rng.integers(10, 90, 12)
    )
}


def test_a_variant_against_itself_is_zero_with_a_zero_interval():
    a = PatientCounts.from_image_rows([rows(NOISY), rows(NOISY)])
    result = paired_difference(a, a, 500, CONFIDENCE)
    assert (result["diff"], result["low"], result["high"]) == (0.0, 0.0, 0.0)
    assert not result["excludes_zero"]


def test_a_clear_difference_excludes_zero_in_both_directions():
    better = {
        p: (tp, fp // 3, fn // 3) for p, (tp, fp, fn) in NOISY.items()
    }  # fewer errors on every patient
    a = PatientCounts.from_image_rows([rows(better)])
    b = PatientCounts.from_image_rows([rows(NOISY)])
    forward = paired_difference(a, b, RESAMPLES, CONFIDENCE)
    backward = paired_difference(b, a, RESAMPLES, CONFIDENCE)
    assert forward["excludes_zero"] and forward["low"] > 0 and forward["diff"] > 0
    assert backward["excludes_zero"] and backward["high"] < 0
    assert forward["diff"] == pytest.approx(-backward["diff"])
    assert forward["low"] <= forward["diff"] <= forward["high"]


def test_a_difference_the_size_of_the_noise_does_not_exclude_zero():
    shuffled = dict(zip(PATIENTS, list(NOISY.values())[::-1]))  # the same errors, on other patients
    result = paired_difference(
        PatientCounts.from_image_rows([rows(shuffled)]),
        PatientCounts.from_image_rows([rows(NOISY)]),
        RESAMPLES,
        CONFIDENCE,
    )
    assert result["low"] < 0 < result["high"] and not result["excludes_zero"]


def test_seeds_are_averaged_after_pooling_each():
    one = {"LIDC-IDRI-0001": (10, 0, 0)}  # DSC 1
    two = {"LIDC-IDRI-0001": (10, 20, 0)}  # DSC 0.5
    counts = PatientCounts.from_image_rows([rows(one), rows(two)])
    assert counts.counts.shape == (1, 2, 3)
    assert seed_mean_dsc(counts.counts) == pytest.approx(0.75)


def test_different_test_patients_are_refused():
    a = PatientCounts.from_image_rows([rows(NOISY)])
    b = PatientCounts.from_image_rows([rows(dict(list(NOISY.items())[1:]))])
    with pytest.raises(ValueError, match="different patients"):
        paired_difference(a, b, RESAMPLES, CONFIDENCE)
    with pytest.raises(ValueError, match="LIDC-IDRI-0001"):
        PatientCounts.from_image_rows([rows(dict(list(NOISY.items())[1:])), rows(NOISY)])


def test_a_missing_images_file_is_named(tmp_path):
    metrics = tmp_path / "cbam" / "seed1.json"
    with pytest.raises(MetricsFileError, match="seed1.images.csv"):
        PatientCounts.read([metrics])
