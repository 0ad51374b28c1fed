"""The method as trained (docs/models.md, "Side maps"): whole batches only (BAM's batch
norm never sees a batch of one), and supervised side maps that predict the nodule, so that
reverse and boundary attention are driven by real prediction maps (docs/paper.md,
eqs. 5-8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lidcseg.data.dataset.packed import PackedSplit
from lidcseg.models.loading import load_model
from lidcseg.models.registry import Variant
from lidcseg.training.train import TrainingJob, run_training
from tests.support.packed import tiny_run, tiny_settings, write_packed


def job_of(variant: Variant, packed, out, **train) -> TrainingJob:
    data = tiny_settings(**train)
    models = {k: v for k, v in data["models"].items() if k != "variants"}
    return TrainingJob(variant.name, variant, 3, packed, out, models, tiny_run(data))


def test_a_training_split_of_8k_plus_1_trains_bam_at_batch_8(tmp_path):
    """3 patients x 3 slices = 9 = 8 + 1: a last batch of one slice would stop BAM's batch
    norm on its 1 x 1 channel map; whole batches only, one step per epoch."""
    packed = write_packed(tmp_path, size=32, per_patient=3)
    assert len(PackedSplit(packed, "train")) == 9
    summary = run_training(
        job_of(
            Variant(name="bam", attention="bam"), packed, tmp_path / "bam", epochs=1, batch_size=8
        )
    )
    assert summary["epochs_run"] == 1
    log = (tmp_path / "bam" / "log.csv").read_text().splitlines()
    assert len(log) == 2 and float(log[1].split(",")[1]) > 0  # one epoch, a finite loss


def side_probabilities(model_file, packed) -> list[tuple[float, float]]:
    """Each side map's mean probability inside and outside the nodules of the test slices."""
    model, _ = load_model(model_file, torch.device("cpu"))
    test = PackedSplit(packed, "test")
    images = torch.from_numpy(np.asarray(test.images, np.float32))[:, None]
    inside = torch.from_numpy(np.asarray(test.masks) > 0)[:, None]
    with torch.no_grad():
        _, sides = model.eval()(images, return_side=True)
    found = []
    for side in sides:
        p = torch.sigmoid(
            F.interpolate(side, size=images.shape[-2:], mode="bilinear", align_corners=False)
        )
        found.append((p[inside].mean().item(), p[~inside].mean().item()))
    return found


@pytest.mark.slow  # trains rbcbam until its side maps find the nodule
def test_supervised_side_maps_of_rbcbam_predict_the_nodule(tmp_path):
    packed = write_packed(tmp_path, size=64, per_patient=8)
    rbcbam = Variant(name="rbcbam", aspp=True, attention="cbam", reverse=True, boundary=True)
    # whole 64 x 64 slices, so that even the deepest map (2 x 2) sees where the disc is
    run_training(
        job_of(
            rbcbam,
            packed,
            tmp_path / "rbcbam",
            epochs=20,
            batch_size=4,
            patch_size=[64, 64],
            foreground_fraction=0.0,
            deep_supervision=[1, 1, 1, 1, 1],
        )
    )
    found = side_probabilities(tmp_path / "rbcbam" / "model.pt", packed)
    assert len(found) == 5
    for level, (inside, outside) in enumerate(found):
        assert inside > outside, (
            f"side map {level} (deepest first): {inside:.3f} inside, {outside:.3f} outside"
        )
