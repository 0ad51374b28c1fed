"""Checkpoints a killed or preempted training job resumes from.

- Written and read as the model file is (``core/model_file.py``: atomic, weights only).
- Carry a fingerprint of everything that decides the weights (settings, variant, seed,
  dataset): a checkpoint of other settings is never resumed from.
- ``resume_or_start`` gives a job the saved state, or a fresh one when there is no
  checkpoint of its settings.
- ``PreemptionGuard`` turns SIGTERM (what SLURM sends before preempting or at the time limit)
  into a flag the training loop checks between batches, so the job saves and exits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
from pathlib import Path

from lidcseg.core.model_file import load_weights_only

log = logging.getLogger(__name__)


def fingerprint(settings: dict) -> str:
    """A short hash of JSON-able ``settings`` (key order does not matter)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def fresh_progress() -> dict:
    """The running sums of an epoch not yet begun."""
    return {"loss_sum": 0.0, "images": 0, "seconds": 0.0}


def fresh_state() -> dict:
    """A training job's state before its first step."""
    return {
        "epoch": 0,
        "batch": 0,
        "step": 0,
        "progress": fresh_progress(),
        "history": [],
        "best_dsc": -1.0,
        "best_epoch": -1,
        "stale_epochs": 0,
        "stopped": False,
        "resumes": 0,
        "best_state": None,
    }


def resume_or_start(
    checkpoint: Path, fingerprint_now: str, model, optimizer, scaler, average=None
) -> dict:
    """The saved state (weights, optimiser, scaler and weight average loaded) when
    ``checkpoint`` holds one of the same settings, else a fresh one."""
    if not checkpoint.exists():
        return fresh_state()
    saved = load_weights_only(checkpoint)
    if saved["fingerprint"] != fingerprint_now:
        log.warning("%s: written with other settings; training starts afresh", checkpoint)
        return fresh_state()
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scaler.load_state_dict(saved["scaler"])
    if average is not None:
        average.load_state_dict(saved.get("average", {}))
    state = {**saved["state"], "best_state": saved["best_state"]}
    state["resumes"] += 1
    log.info("resuming %s from epoch %d, batch %d", checkpoint, state["epoch"] + 1, state["batch"])
    return state


class PreemptionGuard:
    """Within ``with``: SIGTERM sets ``requested`` instead of killing the process."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __enter__(self) -> PreemptionGuard:
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, self._previous)
