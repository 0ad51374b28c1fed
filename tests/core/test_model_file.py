"""The model file's contract: what training writes is what evaluation and prediction read;
another format, a missing field or a file that is not ours is refused in one line, named."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lidcseg.core.file_format import contract_payload
from lidcseg.core.model_file import FORMAT, CheckpointError, ModelFile, save_atomic
from lidcseg.errors import LidcsegError


def model_file(**changes) -> ModelFile:
    fields = dict(
        variant="unet",
        slots={"name": "unet", "aspp": False, "attention": "none"},
        models={"encoder": "resnet18", "decoder_channels": [8, 4]},
        image_scale=1.0,
        seed=7,
        epoch=3,
        fingerprint="abc",
        grid={"spacing_mm": [0.7, 0.7, 1.25], "image_shape": [64, 64], "window": [-600, 1500]},
        state_dict={"w": torch.arange(4.0)},
        execution={"device": "cpu", "threads": 2, "workers": 0, "compile": False},
    )
    return ModelFile(**{**fields, **changes})


def test_round_trip(tmp_path):
    path = tmp_path / "model.pt"
    written = model_file()
    written.save(path)
    read = ModelFile.load(path)
    assert torch.equal(read.state_dict["w"], written.state_dict["w"])
    assert replace(read, state_dict=None) == replace(written, state_dict=None)


def test_an_older_format_is_refused_naming_the_file_and_the_rerun(tmp_path):
    path = tmp_path / "x" / "seed2022" / "model.pt"
    payload = contract_payload(model_file(), FORMAT)
    save_atomic({**payload, "format": FORMAT - 1}, path)
    with pytest.raises(CheckpointError) as raised:
        ModelFile.load(path)
    message = str(raised.value)
    assert isinstance(raised.value, LidcsegError) and "\n" not in message
    assert message.startswith(f"{path}: model file of format {FORMAT - 1}")
    assert f"reads format {FORMAT}" in message and "lidcseg train" in message


def test_a_file_without_a_format_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    payload = contract_payload(model_file(), FORMAT)
    save_atomic({k: v for k, v in payload.items() if k != "format"}, path)
    with pytest.raises(CheckpointError, match=f"{path}: model file of no format"):
        ModelFile.load(path)


def test_a_missing_field_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    payload = contract_payload(model_file(), FORMAT)
    save_atomic({k: v for k, v in payload.items() if k != "execution"}, path)
    with pytest.raises(
        CheckpointError, match=r"model\.pt: model file of format \d+ that lacks execution"
    ):
        ModelFile.load(path)


def test_a_file_that_is_not_ours_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable lidcseg checkpoint"):
        ModelFile.load(path)
