"""The training checkpoint's contract: the training state round trips with its types; a
checkpoint of another format or without a field is refused in one line, named."""

from __future__ import annotations

import pytest
import torch

from lidcseg.core.file_format import contract_payload
from lidcseg.core.model_file import CheckpointError, save_atomic
from lidcseg.errors import LidcsegError
from lidcseg.training.checkpoints import FORMAT, Checkpoint, Progress, TrainingState


def state() -> TrainingState:
    return TrainingState(
        epoch=2,
        batch=1,
        step=7,
        progress=Progress(loss_sum=1.5, images=4, seconds=0.25),
        history=[{"epoch": 1, "val_dsc": 0.5}, {"epoch": 2, "val_dsc": ""}],
        best_dsc=0.5,
        best_epoch=1,
        stale_epochs=1,
        resumes=1,
        best_state={"w": torch.ones(2)},
    )


def checkpoint() -> Checkpoint:
    return Checkpoint("abc", state().plain(), state().best_state, {"w": torch.zeros(2)}, {}, {}, {})


def test_round_trip(tmp_path):
    path = tmp_path / "checkpoint.pt"
    checkpoint().save(path)
    read = Checkpoint.load(path).training_state()
    assert isinstance(read.progress, Progress) and read.progress == state().progress
    assert read.plain() == state().plain()
    assert torch.equal(read.best_state["w"], torch.ones(2))


def test_another_format_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_atomic({**contract_payload(checkpoint(), FORMAT), "format": FORMAT + 1}, path)
    with pytest.raises(CheckpointError) as raised:
        Checkpoint.load(path)
    message = str(raised.value)
    assert isinstance(raised.value, LidcsegError) and "\n" not in message
    assert message.startswith(f"{path}: checkpoint of format {FORMAT + 1}")
    assert "lidcseg train" in message


def test_a_missing_field_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    payload = contract_payload(checkpoint(), FORMAT)
    del payload["average"]
    save_atomic(payload, path)
    with pytest.raises(
        CheckpointError, match=r"checkpoint\.pt: checkpoint of format 1 that lacks average"
    ):
        Checkpoint.load(path)
