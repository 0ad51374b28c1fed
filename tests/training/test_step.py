"""The training step (training/step.py) of every configured variant under
``torch.use_deterministic_algorithms(True, warn_only=False)``, and the weights' average as one
multi-tensor update, equal to averaging each tensor in turn."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from lidcseg import config as lidcseg_config
from lidcseg.core.runtime import seed_everything
from lidcseg.data.dataset.packed import PackedSplit
from lidcseg.models.registry import variants_from_config
from lidcseg.models.unet import build_model
from lidcseg.training.augment import TrainingSamples
from lidcseg.training.averaging import WeightAverage
from lidcseg.training.schedule import make_optimizer
from lidcseg.training.step import TrainingStep
from tests.support.packed import tiny_run, tiny_settings, write_packed
from tests.support.paths import REPO

VARIANTS = variants_from_config(lidcseg_config.load(REPO / "config.yaml").models.variants)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return PackedSplit(write_packed(tmp_path_factory.mktemp("data")), "train")


def _batch(split: PackedSplit, train, size: int = 4):
    samples = TrainingSamples(
        split, 0, train.image_scale, train.patch_size, train.foreground_fraction, train.augment
    )
    return torch.utils.data.default_collate([samples[(0, i)] for i in range(size)])


def _step(variant_name: str, train, average_decay: float = 0.0):
    data = tiny_settings()
    models = {**data["models"], "encoder_weights": None}
    model = build_model(VARIANTS[variant_name], models).train()
    optimizer = make_optimizer(model.parameters(), train, fused=False)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    average = WeightAverage(model, average_decay)
    return TrainingStep(model, optimizer, scaler, torch.device("cpu"), train, average)


@pytest.mark.parametrize("variant_name", sorted(VARIANTS))
def test_a_deterministic_step_raises_nothing(variant_name, split):
    """warn_only=False: an op without a deterministic kernel would raise here, not warn."""
    train = dataclasses.replace(tiny_run(tiny_settings()), deterministic=True)
    seed_everything(7, train.deterministic, train.threads)
    try:
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
        step = _step(variant_name, train)
        loss = step(_batch(split, train), 1e-3)
    finally:
        seed_everything(0, False, train.threads)
    assert torch.isfinite(loss)


def test_the_average_after_n_steps_equals_averaging_each_tensor(split):
    train = tiny_run(tiny_settings())
    seed_everything(7, False, train.threads)
    step = _step("rbcbam", train, average_decay=0.99)
    reference = copy.deepcopy(step.average.model)
    pairs = list(zip(reference.state_dict().values(), step.model.state_dict().values()))
    batch = _batch(split, train)
    for n in range(6):
        step(batch, 1e-3)
        decay = min(0.99, (1 + n) / (10 + n))
        with torch.no_grad():
            for average, current in pairs:
                if average.is_floating_point():
                    average.lerp_(current, 1 - decay)
                else:
                    average.copy_(current)
    got = step.average.model.state_dict()
    for key, expected in reference.state_dict().items():
        assert torch.equal(got[key], expected), key
    assert step.average.updates == 6
