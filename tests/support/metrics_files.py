"""Metrics files as `lidcseg evaluate` writes them, made up for the report's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lidcseg.core.metrics_file import Evaluation, MetricsFile

RESAMPLES, CONFIDENCE = 1000, 0.95  # config.yaml's evaluate: bootstrap_resamples, confidence

SLOTS = {
    "se": {"attention": "se"},
    "rbcbam": {"aspp": True, "attention": "cbam", "reverse": True, "boundary": True},
    "cbam": {"attention": "cbam"},
    "unet": {},
    "nnU-Net 2d": {},
}


def metrics_file(
    root: Path,
    variant: str,
    seed: int,
    dsc: float,
    recall: float = 0.5,
    precision: float = 0.5,
    execution: dict | None = None,
) -> Path:
    """A metrics file and its per-image counts: four patients whose pooled DSC is ``dsc``."""
    path = root / variant / f"seed{seed}.json"
    tp = round(dsc * 100)  # with fp = fn = 100 - tp, every slice's DSC is tp / 100
    images = [
        {"patient_id": f"LIDC-IDRI-000{p}", "slice": s, "tp": tp, "fp": 100 - tp, "fn": 100 - tp}
        for p in range(1, 5)
        for s in (0, 1)
    ]
    metrics = MetricsFile(
        variant=variant,
        slots={"name": variant, **SLOTS[variant]},
        seed=seed,
        model=f"{variant}/model.pt",
        epoch=1,
        threshold=0.5,
        test={"slices": len(images), "patients": 4, "nodules": 0},
        pooled={"dsc": dsc, "recall": recall, "precision": precision},
        pooled_ci={"dsc": [dsc - 0.1, dsc + 0.05], "recall": [0.4, 0.6], "precision": [0.4, 0.6]},
        per_image_mean={
            "dsc": dsc / 2,
            "recall": 0.3,
            "precision": 0.3,
            "precision_empty_as_0": 0.3,
        },
        slices_without_prediction=0,
        per_nodule={"nodules": 0, "detected": 0, "mean_dsc": float("nan")},
        by_size=[],
        bootstrap={"resamples": RESAMPLES, "confidence": CONFIDENCE, "unit": "patient"},
        execution=execution or {"device": "cpu", "threads": 1},
    )
    patients = np.array([row["patient_id"] for row in images])
    slices = np.array([row["slice"] for row in images])
    Evaluation(metrics, images, [], np.zeros((len(images), 2, 2), np.uint8), patients, slices).save(
        path
    )
    return path
