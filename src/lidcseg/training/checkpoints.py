"""Checkpoints a killed or preempted training job resumes from.

- Written and read as the model file is (``core/model_file.py``: atomic, weights only).
- Carry a fingerprint of everything that decides the weights (settings, variant, seed,
  dataset): a checkpoint of other settings is never resumed from.
- ``TrainingState`` is what a job carries from step to step, ``Checkpoint`` the file's
  contract; ``resume_or_start`` gives a job the saved state, or a fresh one when there is no
  checkpoint of its settings.
- ``PreemptionGuard`` turns SIGTERM (what SLURM sends before preempting or at the time limit)
  into a flag the training loop checks between batches, so the job saves and exits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lidcseg.core.file_format import contract_fields, contract_payload
from lidcseg.core.model_file import CheckpointError, cpu_state, load_weights_only, save_atomic

log = logging.getLogger(__name__)

# The checkpoint's own format: its content is unchanged since the model file's format 1, so
# a job killed before this lidcseg still resumes.
FORMAT = 1
RERUN = "the training job afresh: delete it, then `lidcseg train` (or snakemake) again"


def fingerprint(settings: dict) -> str:
    """A short hash of JSON-able ``settings`` (key order does not matter)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


@dataclass
class Progress:
    """The running sums of the epoch under way."""

    loss_sum: float = 0.0
    images: int = 0
    seconds: float = 0.0


@dataclass
class TrainingState:
    """A training job's state between steps; a fresh one is the state before its first."""

    epoch: int = 0  # epochs finished
    batch: int = 0  # batches of the epoch under way finished
    step: int = 0  # optimiser steps over the whole job (the learning rate's clock)
    progress: Progress = field(default_factory=Progress)
    history: list[dict] = field(default_factory=list)  # one log.csv row per epoch
    best_dsc: float = -1.0
    best_epoch: int = -1
    stale_epochs: int = 0  # validations since the best one
    stopped: bool = False  # early stopping
    resumes: int = 0
    best_state: dict | None = None  # the weights of the best epoch (CPU tensors)

    def plain(self) -> dict:
        """Everything but the best weights, as plain dicts and lists (``weights_only`` reads it)."""
        return {k: v for k, v in asdict(self).items() if k != "best_state"}

    @classmethod
    def from_plain(cls, plain: dict, best_state: dict | None) -> TrainingState:
        fields = {**plain, "progress": Progress(**plain["progress"])}
        return cls(**fields, best_state=best_state)


@dataclass(frozen=True)
class Checkpoint:
    """``checkpoint.pt``: the whole state of an unfinished training job. The training state
    is saved as a plain dict (``state``) beside the best weights and the state dicts of
    model, optimiser, scaler and weight average."""

    fingerprint: str
    state: dict  # TrainingState.plain()
    best_state: dict | None
    model: dict
    optimizer: dict
    scaler: dict
    average: dict

    @classmethod
    def of(cls, fingerprint: str, state: TrainingState, model, optimizer, scaler, average):
        return cls(
            fingerprint,
            state.plain(),
            state.best_state,
            cpu_state(model),
            optimizer.state_dict(),
            scaler.state_dict(),
            average.state_dict(),
        )

    def save(self, path: Path) -> None:
        save_atomic(contract_payload(self, FORMAT), path)

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        payload = load_weights_only(path)
        return cls(
            **contract_fields(cls, payload, path, "checkpoint", FORMAT, RERUN, CheckpointError)
        )

    def training_state(self) -> TrainingState:
        return TrainingState.from_plain(self.state, self.best_state)


def resume_or_start(
    checkpoint: Path, fingerprint_now: str, model, optimizer, scaler, average
) -> TrainingState:
    """The saved state (weights, optimiser, scaler and weight average loaded) when
    ``checkpoint`` holds one of the same settings, else a fresh one."""
    if not checkpoint.exists():
        return TrainingState()
    saved = Checkpoint.load(checkpoint)
    if saved.fingerprint != fingerprint_now:
        log.warning("%s: written with other settings; training starts afresh", checkpoint)
        return TrainingState()
    model.load_state_dict(saved.model)
    optimizer.load_state_dict(saved.optimizer)
    scaler.load_state_dict(saved.scaler)
    average.load_state_dict(saved.average)
    state = saved.training_state()
    state.resumes += 1
    log.info("resuming %s from epoch %d, batch %d", checkpoint, state.epoch + 1, state.batch)
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
