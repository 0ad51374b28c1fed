"""A made-up packed dataset and a tiny training job on it,
for the training, evaluation and report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from lidcseg.config import TrainConfig, TrainExecution, TrainRun
from lidcseg.io import write_json, write_rows
from lidcseg.models.registry import Variant
from lidcseg.training.train import TrainingJob
from tests.support.paths import REPO

SPLITS = {"train": ("P1", "P2", "P3"), "val": ("P4",), "test": ("P5", "P6")}


def write_packed(root: Path, size: int = 64, per_patient: int = 4) -> Path:
    """A packed dataset of bright discs (nodule 1, sometimes 2) on a noisy dark slice."""
    rng = np.random.default_rng(0)
    packed = root / "packed"
    packed.mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size]
    nodules = []
    for split, patients in SPLITS.items():
        images, masks, rows = [], [], []
        for patient in patients:
            centre, radius = rng.uniform(16, size - 16, 2), rng.uniform(3, 9)
            nodules.append({"patient_id": patient, "nodule": 1, "diameter_mm": 2 * radius})
            for k in range(per_patient):
                mask = (
                    (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= (radius - k % 2) ** 2
                ).astype(np.uint8)
                images.append(np.clip(0.2 + 0.5 * mask + rng.normal(0, 0.05, mask.shape), 0, 1))
                masks.append(mask)
                rows.append(
                    {"patient_id": patient, "slice": k, "nodules": "1", "diameter_mm": 2 * radius}
                )
        np.save(packed / f"{split}.images.npy", np.asarray(images, np.float16))
        np.save(packed / f"{split}.masks.npy", np.asarray(masks, np.uint8))
        write_rows(rows, packed / f"{split}.csv", ["patient_id", "slice", "nodules", "diameter_mm"])
    # the grid of a 512 x 512 slice of 0.68 mm, scaled to `size` (what predict brings a scan to)
    pixel_mm = round(0.68 * 512 / size, 4)
    write_json(
        {
            "image_shape": [size, size],
            "spacing_mm": [pixel_mm, pixel_mm, 2.0],
            "window": [-600.0, 1500.0],
            "splits": {s: list(p) for s, p in SPLITS.items()},
        },
        packed / "dataset.json",
    )
    write_rows(nodules, root / "nodules.csv", ["patient_id", "nodule", "diameter_mm"])
    return packed


def tiny_settings(**train) -> dict:
    """config.yaml's models and train sections, shrunk to seconds per epoch."""
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    data["models"].update(decoder_channels=[16, 16, 16, 16, 8], variants={"unet": {}}, run="all")
    data["train"].update(
        {
            "epochs": 4,
            "batch_size": 4,
            "image_scale": 1.0,
            "patch_size": [32, 32],
            "validate_every": 1,
            **{k: v for k, v in train.items() if k not in data["execution"]["train"]},
        }
    )
    data["execution"]["train"].update(
        {
            "threads": 1,
            "workers": 0,
            **{k: v for k, v in train.items() if k in data["execution"]["train"]},
        }
    )
    data["evaluate"]["bootstrap_resamples"] = 200
    return data


def tiny_run(data: dict) -> TrainRun:
    """The training recipe of ``tiny_settings`` with its execution settings, as jobs get it."""
    return TrainRun.of(
        TrainConfig.from_dict(data["train"]), TrainExecution.from_dict(data["execution"]["train"])
    )


def make_job(packed: Path, out: Path, **train) -> TrainingJob:
    data = tiny_settings(**train)
    models = {k: v for k, v in data["models"].items() if k != "variants"}
    return TrainingJob("unet", Variant("unet"), 7, packed, out, models, tiny_run(data))
