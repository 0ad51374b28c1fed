"""Train one variant with one seed: the loss of docs/paper.md (eqs. 10-13) on the packed splits.

Optimiser, schedule, epochs, augmentation: config (``train:``; docs/paper.md, "Training recipe").
The model kept is the epoch with the best pooled validation DSC, with optional early stopping.

Fault tolerance: after every epoch the whole training state (weights, optimiser, epoch,
history, best weights) is written atomically to ``checkpoint.pt``; rerunning the same job
resumes from it. SIGTERM (SLURM's preemption / time-limit warning) saves mid-epoch and
exits. Because the data order and every augmentation are functions of (seed, epoch, index)
(training/augment.py), the resumed run ends with the same weights as an uninterrupted one. A
non-finite loss stops the job with an error and writes no model.

Speed: a step never waits for the device (docs/training.md, "On a GPU"): batched
augmentation on it, losses read back every ``READ_EVERY`` steps (a non-finite one still
names its batch), a fused optimiser on CUDA, validation counted on the device.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from lidcseg.config import ModelsConfig, TrainConfig
from lidcseg.core.model_file import ModelFile, cpu_state
from lidcseg.core.runtime import (
    execution_record,
    memory_format,
    pick_device,
    seed_everything,
)
from lidcseg.data.dataset.packed import PackedSplit, input_grid
from lidcseg.errors import ConfigError, LidcsegError
from lidcseg.io import write_json, write_rows
from lidcseg.models.registry import Variant, variants_from_config
from lidcseg.models.unet import build_model
from lidcseg.training.augment import training_loader
from lidcseg.training.averaging import WeightAverage
from lidcseg.training.checkpoints import (
    Checkpoint,
    PreemptionGuard,
    Progress,
    TrainingState,
    fingerprint,
    resume_or_start,
)
from lidcseg.training.schedule import learning_rate_at, make_optimizer
from lidcseg.training.step import TrainingStep
from lidcseg.training.validation import validate

log = logging.getLogger(__name__)

EPOCH_FIELDS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_dsc",
    "val_precision",
    "val_recall",
    "lr",
    "images_per_s",
    "seconds",
)
# Settings that change how fast a job runs, not the weights it ends with.
SPEED_ONLY = ("workers", "threads", "device", "compile", "resident_split")
# Steps between reading the batch losses back from the device (each read waits for it).
READ_EVERY = 25


class TrainingDiverged(LidcsegError):
    """The loss or the weights stopped being finite."""


class Preempted(LidcsegError):
    """SIGTERM arrived; the state is saved and a rerun resumes."""


@dataclass
class TrainingJob:
    variant_name: str
    variant: Variant
    seed: int
    packed_dir: Path
    out_dir: Path
    models: dict
    train: TrainConfig
    dataset_id: str = field(default="")

    @classmethod
    def for_variant(
        cls,
        name: str,
        seed: int,
        packed_dir: Path,
        out_dir: Path,
        models: ModelsConfig,
        train: TrainConfig,
    ) -> TrainingJob:
        """The job of variant ``name`` of the ``models`` section; an unknown name names its key."""
        variants = variants_from_config(models.variants)
        if name not in variants:
            raise ConfigError(
                "models.variants", f"no variant {name!r} (configured: {', '.join(variants)})"
            )
        # Plain lists, as the config has them: the dict is saved in model.pt and fingerprinted.
        architecture = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in models.as_dict().items()
            if k not in ("variants", "run")
        }
        return cls(name, variants[name], seed, Path(packed_dir), Path(out_dir), architecture, train)

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def fingerprint(self) -> str:
        train = {k: v for k, v in self.train.__dict__.items() if k not in SPEED_ONLY}
        return fingerprint(
            {
                "variant": asdict(self.variant),
                "seed": self.seed,
                "models": self.models,
                "train": train,
                "dataset": self.dataset_id,
            }
        )


def dataset_id(packed_dir: Path) -> str:
    """What identifies the packed data a model learns from: its metadata and slice tables."""
    return fingerprint(
        {name: (packed_dir / name).read_text() for name in ("dataset.json", "train.csv", "val.csv")}
    )


def run_training(job: TrainingJob) -> dict:
    """Train (or resume) ``job``; write model.pt, log.csv and train.json; return the summary."""
    train = job.train
    seed_everything(job.seed, train.deterministic, train.threads)
    device = pick_device(train.device)
    job.dataset_id = job.dataset_id or dataset_id(job.packed_dir)
    train_split, val_split = (
        PackedSplit(job.packed_dir, "train"),
        PackedSplit(job.packed_dir, "val"),
    )
    model = build_model(job.variant, job.models).to(
        device, memory_format=memory_format(train.channels_last)
    )
    optimizer = make_optimizer(model.parameters(), train, fused=device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and train.amp == "fp16")
    average = WeightAverage(model, train.weight_average)
    state = resume_or_start(job.checkpoint, job.fingerprint(), model, optimizer, scaler, average)
    loader, sampler, resident = training_loader(train_split, job.seed, train, device)
    step = TrainingStep(model, optimizer, scaler, device, train, average, resident)
    epochs = EpochDriver(job, step, len(loader))
    with PreemptionGuard() as guard:
        while state.epoch < train.epochs and not state.stopped:
            epochs.train_epoch(loader, sampler, state, guard)
            epochs.end_epoch(val_split, state)
    return _write_outputs(job, average.model, state, device)


class EpochDriver:
    """Runs a job's epochs one at a time: the training steps of an epoch, then its
    validation, model selection, checkpoint and log; holds what every epoch needs."""

    def __init__(self, job, step: TrainingStep, steps_per_epoch):
        self.job, self.step = job, step
        self.model, self.optimizer, self.device = step.model, step.optimizer, step.device
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = steps_per_epoch * job.train.epochs
        self.pending = []  # (batch number, images, loss on the device) not yet read back

    def train_epoch(self, loader, sampler, state: TrainingState, guard) -> None:
        train, epoch = self.job.train, state.epoch
        sampler.set_epoch(epoch, state.batch * train.batch_size)
        progress = state.progress
        self.model.train()
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=state.batch,
            file=sys.stderr,
            leave=False,
            desc=f"{self.job.variant_name} seed {self.job.seed} epoch {epoch + 1}/{train.epochs}",
            mininterval=1 if sys.stderr.isatty() else 30,
        )
        tick = time.perf_counter()
        for batch in loader:
            lr = learning_rate_at(state.step, self.total_steps, self.steps_per_epoch, train)
            self.pending.append((state.batch + 1, len(batch[0]), self.step(batch, lr)))
            state.batch += 1
            state.step += 1
            bar.update()
            if len(self.pending) >= READ_EVERY or guard.requested:
                self._read_losses(state)
            if guard.requested:
                progress.seconds += time.perf_counter() - tick
                self.save(state)
                raise Preempted(
                    f"SIGTERM: {self.job.checkpoint} saved at epoch {epoch + 1}, batch "
                    f"{state.batch}; rerun the same command to resume"
                )
        self._read_losses(state)
        bar.close()
        progress.seconds += time.perf_counter() - tick

    def _read_losses(self, state: TrainingState) -> None:
        """Add the pending batch losses to the epoch's progress; a non-finite one stops the job."""
        if not self.pending:
            return
        losses = torch.stack([loss for _, _, loss in self.pending]).cpu().tolist()
        pending, self.pending = self.pending, []
        for (batch, images, _), loss in zip(pending, losses):
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"{self.job.variant_name} seed {self.job.seed}: loss is {loss} at epoch "
                    f"{state.epoch + 1}, batch {batch}; no model written (the last checkpoint "
                    "is kept). Lower train.learning_rate or use train.amp: bf16 instead of fp16."
                )
            state.progress.loss_sum += loss * images
            state.progress.images += images

    def end_epoch(self, val_split: PackedSplit, state: TrainingState) -> None:
        train = self.job.train
        epoch = state.epoch + 1
        if epoch % train.validate_every == 0 or epoch == train.epochs:
            self._select(validate(self.step.average.model, val_split, train, self.device), state)
        else:
            state.history.append(
                self._row(state, dict.fromkeys(("loss", "dsc", "precision", "recall"), ""))
            )
        state.epoch, state.batch, state.progress = epoch, 0, Progress()
        log.info(
            "epoch %(epoch)d: loss %(train_loss).4f, val DSC %(val_dsc).6s, "
            "%(images_per_s).1f images/s",
            state.history[-1],
        )
        _check_finite(self.model, self.job, epoch)
        self.save(state)
        write_rows(state.history, self.job.out_dir / "log.csv", EPOCH_FIELDS)

    def _row(self, state: TrainingState, val: dict) -> dict:
        progress = state.progress
        return {
            "epoch": state.epoch + 1,
            "train_loss": progress.loss_sum / max(progress.images, 1),
            **{f"val_{k}": v for k, v in val.items()},
            "lr": self.optimizer.param_groups[0]["lr"],
            "images_per_s": progress.images / max(progress.seconds, 1e-9),
            "seconds": progress.seconds,
        }

    def _select(self, val: dict, state: TrainingState) -> None:
        """Keep the weights when validation DSC improved; count validations without gain."""
        state.history.append(self._row(state, val))
        # no validation data: the last epoch is kept
        score = val["dsc"] if math.isfinite(val["dsc"]) else float(state.epoch)
        if score > state.best_dsc:
            state.best_dsc, state.best_epoch, state.stale_epochs = score, state.epoch + 1, 0
            state.best_state = cpu_state(self.step.average.model)
        else:
            state.stale_epochs += 1
        patience = self.job.train.early_stopping_patience
        state.stopped = bool(patience and state.stale_epochs >= patience)

    def save(self, state: TrainingState) -> None:
        step = self.step
        checkpoint = Checkpoint.of(
            self.job.fingerprint(), state, self.model, self.optimizer, step.scaler, step.average
        )
        checkpoint.save(self.job.checkpoint)


def _check_finite(model, job: TrainingJob, epoch: int) -> None:
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise TrainingDiverged(
                f"{job.variant_name} seed {job.seed}: {name} is not finite after epoch {epoch}; "
                "no model written"
            )


def _write_outputs(job: TrainingJob, model, state: TrainingState, device) -> dict:
    history, train = state.history, job.train
    execution = execution_record(
        device,
        threads=train.threads,
        workers=train.workers,
        compile=train.compile,
        deterministic=train.deterministic,
        channels_last=train.channels_last,
        amp=train.amp,
    )
    summary = {
        "variant": job.variant_name,
        "seed": job.seed,
        "device": str(device),
        "epochs_run": len(history),
        "best_epoch": state.best_epoch,
        "best_val_dsc": history[state.best_epoch - 1]["val_dsc"] if history else None,
        "stopped_early": state.stopped,
        "resumes": state.resumes,
        "train_seconds": sum(r["seconds"] for r in history),
        "images_per_s": sum(r["images_per_s"] for r in history) / max(len(history), 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "fingerprint": job.fingerprint(),
        "execution": execution,
    }
    ModelFile(
        variant=job.variant_name,
        slots=asdict(job.variant),
        models=job.models,
        image_scale=train.image_scale,
        seed=job.seed,
        epoch=state.best_epoch,
        fingerprint=job.fingerprint(),
        grid=input_grid(job.packed_dir),
        state_dict=state.best_state,
        execution=execution,
    ).save(job.out_dir / "model.pt")
    write_rows(history, job.out_dir / "log.csv", EPOCH_FIELDS)
    write_json(summary, job.out_dir / "train.json")
    job.checkpoint.unlink(missing_ok=True)  # done: a rerun of a finished job starts afresh
    return summary
