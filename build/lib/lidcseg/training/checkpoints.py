"""Checkpoints a killed or preempted training job resumes from, and the finished model file.

- Written atomically (a temporary file in the same folder, fsync, then ``os.replace``), so a
  job killed while saving leaves the previous checkpoint intact.
- Hold only tensors, numbers, strings, lists and dicts, and are read with
  ``torch.load(weights_only=True)``: loading one never runs code from the file.
- Carry a fingerprint of everything that decides the weights (settings, variant, seed,
  dataset): a checkpoint of other settings is never resumed from.
- ``PreemptionGuard`` turns SIGTERM (what SLURM sends before preempting or at the time limit)
  into a flag the training loop checks between batches, so the job saves and exits.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import tempfile
from pathlib import Path

import torch

from lidcseg.errors import LidcsegError

FORMAT = 1


class CheckpointError(LidcsegError):
    """A checkpoint or model file that cannot be used, named."""


def fingerprint(settings: dict) -> str:
    """A short hash of JSON-able ``settings`` (key order does not matter)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


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
        raise CheckpointError(f"{path}: not a readable lidcseg checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a lidcseg checkpoint of format {FORMAT}")
    return payload


def cpu_state(module_or_state) -> dict:
    """A detached CPU copy of a state dict (so later steps do not change it)."""
    state = module_or_state.state_dict() if hasattr(module_or_state, "state_dict") else module_or_state
    return {k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else v for k, v in state.items()}


class PreemptionGuard:
    """Within ``with``: SIGTERM sets ``requested`` instead of killing the process."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __enter__(self) -> "PreemptionGuard":
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, self._previous)
