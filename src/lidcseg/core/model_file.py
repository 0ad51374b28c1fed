"""Files of weights a job writes and another reads: the finished model file and the
training checkpoint share how they are written and read.

- Written atomically (a temporary file in the same folder, fsync, then ``os.replace``), so a
  job killed while saving leaves the previous file intact.
- Hold only tensors, numbers, strings, lists and dicts, and are read with
  ``torch.load(weights_only=True)``: loading one never runs code from the file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from lidcseg.errors import LidcsegError

FORMAT = 1


class CheckpointError(LidcsegError):
    """A checkpoint or model file that cannot be used, named."""


def save_atomic(payload: dict, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_weights_only(path: str | os.PathLike) -> dict:
    """Read a file written by :func:`save_atomic`; refuse anything else with its name."""
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
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a lidcseg checkpoint of format {FORMAT}")
    return payload


def cpu_state(module_or_state) -> dict:
    """A detached CPU copy of a state dict (so later steps do not change it)."""
    state = (
        module_or_state.state_dict() if hasattr(module_or_state, "state_dict") else module_or_state
    )
    return {
        k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else v for k, v in state.items()
    }
