"""Training: resume after SIGKILL and SIGTERM to the same weights, NaN caught,
same seed = same run."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from lidcseg import config as lidcseg_config
from lidcseg.config import TrainConfig
from lidcseg.core.model_file import ModelFile, load_weights_only
from lidcseg.training.augment import ResidentSplit
from lidcseg.training.checkpoints import Checkpoint, TrainingState
from lidcseg.training.schedule import learning_rate_at
from lidcseg.training.train import TrainingDiverged, run_training
from tests.support.compiled import COMPILED_CHECK
from tests.support.packed import make_job, tiny_settings, write_packed

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return write_packed(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def uninterrupted(packed, tmp_path_factory):
    """The reference: the tiny job trained start to finish in one go."""
    out = tmp_path_factory.mktemp("reference")
    run_training(make_job(packed, out))
    return out


def weights(model_file: Path) -> dict:
    return ModelFile.load(model_file).state_dict


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_outputs_and_log(uninterrupted):
    rows = (uninterrupted / "log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,val_loss,val_dsc") and len(rows) == 5
    summary = json.loads((uninterrupted / "train.json").read_text())
    assert (
        summary["epochs_run"] == 4 and 1 <= summary["best_epoch"] <= 4 and summary["resumes"] == 0
    )
    assert not (uninterrupted / "checkpoint.pt").exists()
    saved = ModelFile.load(uninterrupted / "model.pt")  # weights_only=True inside
    assert saved.variant == "unet" and saved.epoch == summary["best_epoch"]
    # the execution the job ran with, the same in the model file and in train.json
    assert saved.execution == summary["execution"]
    assert saved.execution["device"] == "cpu" and saved.execution["compile"] is False


def test_same_seed_same_weights(packed, uninterrupted, tmp_path):
    run_training(make_job(packed, tmp_path))
    assert_same_weights(uninterrupted / "model.pt", tmp_path / "model.pt")


def test_a_resident_split_trains_the_same_weights(packed, uninterrupted, tmp_path, monkeypatch):
    """execution.train.resident_split changes where the pixels wait, not the batches."""
    import lidcseg.training.augment as augment

    held = []
    monkeypatch.setattr(
        augment, "ResidentSplit", lambda *a: held.append(ResidentSplit(*a)) or held[-1]
    )
    run_training(make_job(packed, tmp_path, resident_split=True))
    assert len(held) == 1  # the job did hold its split
    assert_same_weights(uninterrupted / "model.pt", tmp_path / "model.pt")


def _cli_train(packed: Path, out: Path, settings: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(BIN / "lidcseg"),
            "train",
            str(packed),
            str(out),
            "--variant",
            "unet",
            "--seed",
            "7",
            "--settings",
            str(settings),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_job_resumes_to_the_same_weights(packed, uninterrupted, tmp_path, sig):
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump(tiny_settings(epochs=4)))
    out = tmp_path / "run"
    job = _cli_train(packed, out, settings)
    _wait_for(out / "checkpoint.pt", job)
    written = (out / "checkpoint.pt").stat().st_mtime_ns
    if sig == signal.SIGTERM:
        time.sleep(0.3)  # land inside the second epoch
    job.send_signal(sig)
    _, stderr = job.communicate(timeout=120)
    assert not (out / "model.pt").exists(), "the job finished before the signal; make it longer"
    if sig == signal.SIGTERM:
        assert (
            job.returncode == 2
            and "SIGTERM" in stderr
            and "rerun the same command to resume" in stderr
        )
        assert (out / "checkpoint.pt").stat().st_mtime_ns > written  # saved on the way out
    else:
        assert job.returncode == -signal.SIGKILL
    rerun = _cli_train(packed, out, settings)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr[-2000:]
    assert "resuming" in stderr
    assert json.loads((out / "train.json").read_text())["resumes"] == 1
    assert_same_weights(uninterrupted / "model.pt", out / "model.pt")


def test_nan_loss_stops_without_a_model(packed, tmp_path, monkeypatch):
    from lidcseg.training import step

    calls = {"n": 0}
    real = step.dice_bce_loss

    def poisoned(logits, target):
        calls["n"] += 1
        loss = real(logits, target)
        return loss * float("nan") if calls["n"] == 4 else loss  # epoch 1's 3 batches, then this

    monkeypatch.setattr(
        step, "dice_bce_loss", poisoned
    )  # the training step's loss without side maps
    with pytest.raises(
        TrainingDiverged, match=r"loss is nan at epoch 2, batch 1.*no model written"
    ):
        run_training(make_job(packed, tmp_path, deep_supervision=[0, 0, 0, 0, 0]))
    assert not (tmp_path / "model.pt").exists()
    # the last good state kept
    assert Checkpoint.load(tmp_path / "checkpoint.pt").training_state().epoch == 1


def test_compiled_training_matches_eager(compiled_run, packed, tmp_path):
    """`train.compile: true` (torch.compile, inductor) trains the same model: the first epoch's
    losses equal the eager run's to rounding. The job ran in the background
    (tests/support/compiled.py: ~110 s of compiling on 2 cores).

    Both runs use SGD: Adam's first steps divide each gradient by its own size (m / sqrt(v) =
    +-1), so a weight whose gradient is rounding noise still takes a full step, in either
    direction; with Adam the two runs' first-epoch losses differed by 0.1-0.6 % from rounding
    alone (depending on the data the crops hit), with SGD by 2e-5."""
    code, out = compiled_run
    assert code == 0, (out / "stderr.txt").read_text()[-3000:]
    summary = json.loads((out / "run" / "train.json").read_text())
    assert summary["epochs_run"] == 1 and (out / "run" / "model.pt").exists()
    run_training(make_job(packed, tmp_path, **COMPILED_CHECK))
    compiled, eager = (
        next(csv.DictReader((run / "log.csv").open())) for run in (out / "run", tmp_path)
    )
    assert float(compiled["train_loss"]) == pytest.approx(float(eager["train_loss"]), rel=1e-4)
    assert float(compiled["val_loss"]) == pytest.approx(float(eager["val_loss"]), rel=1e-3)


def test_checkpoint_of_other_settings_is_not_resumed(packed, tmp_path, caplog):
    run_training(make_job(packed, tmp_path, epochs=1))
    (tmp_path / "model.pt").rename(tmp_path / "first.pt")
    first = ModelFile.load(tmp_path / "first.pt")
    # A leftover checkpoint from a run with another learning rate:
    job = make_job(packed, tmp_path, epochs=1, learning_rate=0.01)
    Checkpoint("something else", TrainingState().plain(), None, {}, {}, {}, {}).save(
        tmp_path / "checkpoint.pt"
    )
    summary = run_training(job)
    assert summary["resumes"] == 0 and "training starts afresh" in caplog.text
    assert first.fingerprint != summary["fingerprint"]


def test_checkpoint_with_code_inside_is_refused(tmp_path):
    import argparse  # any class: unpickling it could run code, so weights_only refuses it

    from lidcseg.core.model_file import CheckpointError

    path = tmp_path / "model.pt"
    torch.save({"format": 1, "x": argparse.Namespace(a=1)}, path)
    with pytest.raises(CheckpointError, match=str(path)):
        load_weights_only(path)


def test_learning_rate_schedule():
    train = TrainConfig.from_dict(
        {**tiny_settings()["train"], "learning_rate": 1.0, "warmup_epochs": 1}
    )
    assert learning_rate_at(0, 100, 10, train) == pytest.approx(0.1)  # warm-up: (step + 1) / 10
    assert learning_rate_at(10, 100, 10, train) == pytest.approx(1.0)  # cosine: the base rate
    assert learning_rate_at(55, 100, 10, train) == pytest.approx(0.5)  # and half way at the middle
    assert learning_rate_at(99, 100, 10, train) < 0.001


def test_unknown_variant_is_named(packed, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump(tiny_settings()))
    result = subprocess.run(
        [
            str(BIN / "lidcseg"),
            "train",
            str(packed),
            str(tmp_path / "out"),
            "--variant",
            "unet_plus",
            "--seed",
            "1",
            "--settings",
            str(settings),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert (
        "models.variants" in result.stderr
        and "unet_plus" in result.stderr
        and not (tmp_path / "out").exists()
    )


def test_settings_sections_are_validated_and_named():
    with pytest.raises(lidcseg_config.ConfigError, match="train.batch_size"):
        lidcseg_config.load_sections(
            json.dumps({"train": {**tiny_settings()["train"], "batch_size": 0}}), ("train",)
        )
