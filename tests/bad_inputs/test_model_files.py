"""Model files whose fields pass the contract but not the network: slots that do not match the
weights, an unknown block, an absurd or non-finite grid, NaN weights, a broken architecture.
predict and evaluate refuse each in one line naming the file, exit 2, and write nothing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from lidcseg.cli import main
from lidcseg.core.model_file import ModelFile
from lidcseg.io import Volume, save_nifti
from lidcseg.training.train import run_training
from tests.support.packed import make_job, write_packed
from tests.support.paths import REPO

CONFIG = str(REPO / "config.yaml")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny unet trained for one epoch, its packed data and a NIfTI scan to predict."""
    root = tmp_path_factory.mktemp("model")
    packed = write_packed(root)
    run_training(make_job(packed, root / "unet", epochs=1))
    scan = root / "scan.nii.gz"
    affine = np.diag([5.44, 5.44, 2.0, 1.0])
    save_nifti(Volume(np.full((64, 64, 6), -800, np.int16), affine), scan)
    return root / "unet" / "model.pt", packed, scan


def _weights(saved: ModelFile, change) -> dict:
    state = {k: v.clone() for k, v in saved.state_dict.items()}
    change(state)
    return state


def _first_conv(state: dict) -> str:
    return next(k for k, v in state.items() if v.ndim == 4)


def _nan(state: dict) -> None:
    state[_first_conv(state)][0, 0, 0, 0] = float("nan")


def _drop(state: dict) -> None:
    del state[_first_conv(state)]


def _reshape(state: dict) -> None:
    key = _first_conv(state)
    state[key] = torch.zeros(state[key].shape[0] + 1, *state[key].shape[1:])


CASES = {
    "cbam slots on unet weights": (
        lambda s: {"slots": {**s.slots, "attention": "cbam"}},
        "weights do not fit the network its slots (cbam)",
    ),
    "aspp slot on unet weights": (
        lambda s: {"slots": {**s.slots, "aspp": True}},
        "missing (first:",
    ),
    "unknown block": (
        lambda s: {"slots": {**s.slots, "attention": "nope"}},
        "'nope' is not an attention block",
    ),
    "unknown slot": (lambda s: {"slots": {**s.slots, "extra": True}}, "slots {"),
    "slot of the wrong type": (lambda s: {"slots": {**s.slots, "aspp": "yes"}}, "of their types"),
    "absurd grid": (
        lambda s: {"grid": {**s.grid, "image_shape": [100_000, 100_000]}},
        "grid image_shape [100000, 100000] is not one lidcseg writes",
    ),
    "zero spacing": (
        lambda s: {"grid": {**s.grid, "spacing_mm": [0.68, 0.68, 0.0]}},
        "grid spacing_mm",
    ),
    "nan spacing": (
        lambda s: {"grid": {**s.grid, "spacing_mm": [float("nan"), 0.68, 2.0]}},
        "not a finite number",
    ),
    "nan window": (
        lambda s: {"grid": {**s.grid, "window": [float("nan"), 1500.0]}},
        "grid window centre",
    ),
    "grid without window": (
        lambda s: {"grid": {"spacing_mm": [1, 1, 1], "image_shape": [64, 64]}},
        "grid is not a mapping",
    ),
    "nan image_scale": (lambda s: {"image_scale": float("nan")}, "image_scale nan"),
    "negative seed": (lambda s: {"seed": -1}, "seed [-1]"),
    "nan weight": (
        lambda s: {"state_dict": _weights(s, _nan)},
        "holds 1 of",
    ),
    "missing weight": (lambda s: {"state_dict": _weights(s, _drop)}, "1 missing (first:"),
    "weight of another shape": (
        lambda s: {"state_dict": _weights(s, _reshape)},
        "1 of another shape (first:",
    ),
    "weights not tensors": (
        lambda s: {"state_dict": {"conv.weight": [1.0, 2.0]}},
        "not a mapping of names to tensors",
    ),
    "architecture lacks a key": (
        lambda s: {"models": {k: v for k, v in s.models.items() if k != "encoder"}},
        "lack ['encoder']",
    ),
    "architecture out of range": (
        lambda s: {"models": {**s.models, "decoder_channels": [0, 16, 16, 16, 8]}},
        "models.decoder_channels",
    ),
    "unknown encoder": (
        lambda s: {"models": {**s.models, "encoder": "vgg"}},
        "models.encoder 'vgg'",
    ),
}


def _argv(command: str, model, packed, scan, out) -> list[str]:
    if command == "predict":
        return ["predict", str(scan), str(out), "--model", str(model), "--settings", CONFIG]
    nodules = str(packed.parent / "nodules.csv")
    target = str(out / "seed7.json")
    return ["evaluate", str(model), str(packed), target, "--nodules", nodules, "--settings", CONFIG]


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_model_file_that_does_not_hold_together_is_named(
    trained, tmp_path, capsys, command, case
):
    model, packed, scan = trained
    change, words = CASES[case]
    saved = ModelFile.load(model)
    bad = tmp_path / "bad.pt"
    replace(saved, **change(saved)).save(bad)
    out = tmp_path / "out"
    assert main(_argv(command, bad, packed, scan, out)) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"lidcseg {command}: error: {bad}: ") and words in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_the_model_file_as_trained_is_used(trained, tmp_path, command):
    model, packed, scan = trained
    assert main(_argv(command, model, packed, scan, tmp_path / "out")) == 0
