"""Files of weights a job writes and another reads: the finished model file and the
training checkpoint share how they are written and read.

- Written atomically (a temporary file in the same folder, fsync, then ``os.replace``), so a
  job killed while saving leaves the previous file intact.
- Hold only tensors, numbers, strings, lists and dicts, and are read with
  ``torch.load(weights_only=True)``: loading one never runs code from the file.

:class:`ModelFile` is the model file's contract (``model.pt``: what training writes and
evaluation and prediction read); the checkpoint's is training's own (training/checkpoints.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from lidcseg.core.file_format import FileFormatError, contract_fields, contract_payload
from lidcseg.io import atomic_file, input_file

# 2: the execution settings the job ran with (``execution``).
FORMAT = 2
RERUN = "`lidcseg train` for it (snakemake or dvc repro rebuild it when it is deleted)"


class CheckpointError(FileFormatError):
    """A checkpoint or model file that cannot be used, named."""


@dataclass(frozen=True)
class ModelFile:
    """``model.pt``: the kept weights of one trained variant and seed, with what rebuilds
    the network (``slots``, ``models``) and what a new scan is taken through (``grid``,
    ``image_scale``)."""

    variant: str
    slots: dict  # the variant's skip slots (models/registry.py Variant, as a dict)
    models: dict  # the models section it was built with
    image_scale: float
    seed: int
    epoch: int  # the epoch whose weights these are (best validation DSC)
    fingerprint: str  # of everything that decides the weights
    grid: dict  # spacing_mm, image_shape, window of the packed data (data/dataset/packed.py)
    state_dict: dict | None
    execution: dict  # core/runtime.py execution_record of the training job

    def save(self, path: str | os.PathLike) -> None:
        save_atomic(contract_payload(self, FORMAT), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelFile:
        payload = load_weights_only(path)
        return cls(
            **contract_fields(cls, payload, path, "model file", FORMAT, RERUN, CheckpointError)
        )


def save_atomic(payload: dict, path: str | os.PathLike) -> None:
    """Through io's atomic writer, as every output: the mode of any other output, and a full
    disk named with the file (the previous one kept). Synced before the rename, so a crash of
    the machine too leaves the old checkpoint or the new one."""
    with atomic_file(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())


def load_weights_only(path: str | os.PathLike):
    """Read a file written by :func:`save_atomic`; refuse anything else with its name (its
    format and fields are its contract's to check)."""
    input_file(path)  # a regular file, whole: a FIFO would block, a cut-short group mislead
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # pickle, zip or unsafe-global errors all mean "not ours"
        reason = (str(error).strip().splitlines() or [""])[
            0
        ]  # torch's own advice runs to many lines
        raise CheckpointError(
            f"{path}: not a readable lidcseg checkpoint ({type(error).__name__}: {reason})"
        ) from error
    return payload


def cpu_state(module_or_state) -> dict:
    """A detached CPU copy of a state dict (so later steps do not change it)."""
    state = (
        module_or_state.state_dict() if hasattr(module_or_state, "state_dict") else module_or_state
    )
    return {
        k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else v for k, v in state.items()
    }
