"""Train one variant with one seed: the loss of SPEC.md (eqs. 10-13) on the packed splits.

SPEC.md gives no optimiser, schedule, epochs or augmentation; all of them are config
(``train:`` in config.yaml). The model kept is the epoch with the best pooled validation
DSC (the headline metric), with optional early stopping on it.

Fault tolerance: after every epoch the whole training state (weights, optimiser, epoch,
history, best weights) is written atomically to ``checkpoint.pt``; rerunning the same job
resumes from it. SIGTERM (SLURM's preemption / time-limit warning) saves mid-epoch and
exits. Because the data order and every augmentation are functions of (seed, epoch, index)
(training/augment.py), the resumed run ends with the same weights as an uninterrupted one. A
non-finite loss stops the job with an error and writes no model.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from lidcseg.training.checkpoints import PreemptionGuard, cpu_state, fingerprint, load_weights_only, save_atomic
from lidcseg.config import ModelsConfig, TrainConfig
from lidcseg.data.dataset.packed import PackedSplit
from lidcseg.training.augment import EpochSampler, TrainingSamples, seed_worker
from lidcseg.io import write_json, write_rows
from lidcseg.errors import ConfigError, LidcsegError
from lidcseg.training.losses import deep_supervision_loss, dice_bce_loss
from lidcseg.evaluation.metrics import confusion, pooled
from lidcseg.models.registry import Variant, variants_from_config
from lidcseg.models.unet import build_model
from lidcseg.inference.predict import predict_logits
from lidcseg.training.runtime import autocast, memory_format, pick_device, seed_everything
from lidcseg.training.schedule import learning_rate_at, make_optimizer

log = logging.getLogger(__name__)

EPOCH_FIELDS = ("epoch", "train_loss", "val_loss", "val_dsc", "val_precision", "val_recall", "lr",
                "images_per_s", "seconds")
# Settings that change how fast a job runs, not the weights it ends with.
SPEED_ONLY = ("workers", "threads", "device", "compile")


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
    def for_variant(cls, name: str, seed: int, packed_dir: Path, out_dir: Path, models: ModelsConfig,
                    train: TrainConfig) -> "TrainingJob":
        """The job of variant ``name`` of the ``models`` section; an unknown name names its key."""
        variants = variants_from_config(models.variants)
        if name not in variants:
            raise ConfigError("models.variants", f"no variant {name!r} (configured: {', '.join(variants)})")
        # Plain lists, as the config has them: the dict is saved in model.pt and fingerprinted.
        architecture = {k: list(v) if isinstance(v, tuple) else v for k, v in models.as_dict().items()
                        if k not in ("variants", "run")}
        return cls(name, variants[name], seed, Path(packed_dir), Path(out_dir), architecture, train)

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def fingerprint(self) -> str:
        train = {k: v for k, v in self.train.__dict__.items() if k not in SPEED_ONLY}
        return fingerprint({"variant": asdict(self.variant), "seed": self.seed, "models": self.models,
                            "train": train, "dataset": self.dataset_id})


def dataset_id(packed_dir: Path) -> str:
    """What identifies the packed data a model learns from: its metadata and slice tables."""
    return fingerprint({name: (packed_dir / name).read_text()
                        for name in ("dataset.json", "train.csv", "val.csv")})


def run_training(job: TrainingJob) -> dict:
    """Train (or resume) ``job``; write model.pt, log.csv and train.json; return the summary."""
    t = job.train
    seed_everything(job.seed, t.deterministic, t.threads)
    device = pick_device(t.device)
    job.dataset_id = job.dataset_id or dataset_id(job.packed_dir)
    train_split, val_split = PackedSplit(job.packed_dir, "train"), PackedSplit(job.packed_dir, "val")
    model = build_model(job.variant, job.models).to(device, memory_format=memory_format(t.channels_last))
    optimizer = make_optimizer(model.parameters(), t)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and t.amp == "fp16")
    state = _resume_or_start(job, model, optimizer, scaler)
    samples = TrainingSamples(train_split, job.seed, t.image_scale, t.patch_size, t.foreground_fraction, t.augment)
    sampler = EpochSampler(len(samples), job.seed)
    loader = DataLoader(samples, batch_size=t.batch_size, sampler=sampler, num_workers=t.workers,
                        persistent_workers=t.workers > 0, pin_memory=device.type == "cuda",
                        worker_init_fn=seed_worker)
    step_model = torch.compile(model) if t.compile else model
    loop = _Loop(job, model, step_model, optimizer, scaler, device, math.ceil(len(samples) / t.batch_size))
    with PreemptionGuard() as guard:
        while state["epoch"] < t.epochs and not state["stopped"]:
            loop.train_epoch(loader, sampler, state, guard)
            loop.end_epoch(val_split, state)
    return _write_outputs(job, model, state, device)


def _fresh_state() -> dict:
    return {"epoch": 0, "batch": 0, "step": 0, "progress": {"loss_sum": 0.0, "images": 0, "seconds": 0.0},
            "history": [], "best_dsc": -1.0, "best_epoch": -1, "stale_epochs": 0, "stopped": False, "resumes": 0}


def _resume_or_start(job: TrainingJob, model, optimizer, scaler) -> dict:
    """The saved state when a checkpoint of the same settings exists, else a fresh one."""
    if not job.checkpoint.exists():
        return {**_fresh_state(), "best_state": None}
    saved = load_weights_only(job.checkpoint)
    if saved["fingerprint"] != job.fingerprint():
        log.warning("%s: written with other settings; training starts afresh", job.checkpoint)
        return {**_fresh_state(), "best_state": None}
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scaler.load_state_dict(saved["scaler"])
    state = {**saved["state"], "best_state": saved["best_state"]}
    state["resumes"] += 1
    log.info("resuming %s from epoch %d, batch %d", job.checkpoint, state["epoch"] + 1, state["batch"])
    return state


class _Loop:
    """The steps of one job; holds what every epoch needs."""

    def __init__(self, job, model, step_model, optimizer, scaler, device, steps_per_epoch):
        self.job, self.model, self.step_model = job, model, step_model
        self.optimizer, self.scaler, self.device = optimizer, scaler, device
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = steps_per_epoch * job.train.epochs

    def train_epoch(self, loader, sampler, state, guard) -> None:
        t, epoch = self.job.train, state["epoch"]
        sampler.set_epoch(epoch, state["batch"] * t.batch_size)
        progress = state["progress"]
        self.model.train()
        bar = tqdm(total=self.steps_per_epoch, initial=state["batch"], file=sys.stderr, leave=False,
                   desc=f"{self.job.variant_name} seed {self.job.seed} epoch {epoch + 1}/{t.epochs}",
                   mininterval=1 if sys.stderr.isatty() else 30)
        tick = time.perf_counter()
        for images, masks in loader:
            loss = self._step(images, masks, state["step"])
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"{self.job.variant_name} seed {self.job.seed}: loss is {loss} at epoch {epoch + 1}, batch "
                    f"{state['batch'] + 1}; no model written (the last checkpoint is kept). Lower "
                    f"train.learning_rate or use train.amp: bf16 instead of fp16.")
            state["batch"] += 1
            state["step"] += 1
            progress["loss_sum"] += loss * len(images)
            progress["images"] += len(images)
            bar.update()
            if guard.requested:
                progress["seconds"] += time.perf_counter() - tick
                self.save(state)
                raise Preempted(f"SIGTERM: {self.job.checkpoint} saved at epoch {epoch + 1}, batch "
                                f"{state['batch']}; rerun the same command to resume")
        bar.close()
        progress["seconds"] += time.perf_counter() - tick

    def _step(self, images, masks, step: int) -> float:
        t = self.job.train
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate_at(step, self.total_steps, self.steps_per_epoch, t)
        images = images.to(self.device, non_blocking=True, memory_format=memory_format(t.channels_last))
        masks = masks.to(self.device, non_blocking=True)
        with autocast(self.device, t.amp):
            if any(t.deep_supervision):
                logits, sides = self.step_model(images, return_side=True)
            else:
                logits, sides = self.step_model(images), None
        logits = logits.float()
        if sides is None:
            loss = dice_bce_loss(logits, masks)
        else:
            loss = deep_supervision_loss(logits, [s.float() for s in sides], masks, t.deep_supervision)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()

    def end_epoch(self, val_split: PackedSplit, state: dict) -> None:
        t = self.job.train
        epoch = state["epoch"] + 1
        if epoch % t.validate_every == 0 or epoch == t.epochs:
            self._select(validate(self.model, val_split, t, self.device), state)
        else:
            state["history"].append(self._row(state, dict.fromkeys(("loss", "dsc", "precision", "recall"), "")))
        state.update(epoch=epoch, batch=0, progress={"loss_sum": 0.0, "images": 0, "seconds": 0.0})
        log.info("epoch %(epoch)d: loss %(train_loss).4f, val DSC %(val_dsc).6s, %(images_per_s).1f images/s",
                 state["history"][-1])
        _check_finite(self.model, self.job, epoch)
        self.save(state)
        write_rows(state["history"], self.job.out_dir / "log.csv", EPOCH_FIELDS)

    def _row(self, state: dict, val: dict) -> dict:
        progress = state["progress"]
        return {"epoch": state["epoch"] + 1, "train_loss": progress["loss_sum"] / max(progress["images"], 1),
                **{f"val_{k}": v for k, v in val.items()}, "lr": self.optimizer.param_groups[0]["lr"],
                "images_per_s": progress["images"] / max(progress["seconds"], 1e-9), "seconds": progress["seconds"]}

    def _select(self, val: dict, state: dict) -> None:
        """Keep the weights when validation DSC improved; count validations without gain."""
        state["history"].append(self._row(state, val))
        score = val["dsc"] if math.isfinite(val["dsc"]) else float(state["epoch"])  # no val: the last epoch
        if score > state["best_dsc"]:
            state.update(best_dsc=score, best_epoch=state["epoch"] + 1, stale_epochs=0,
                         best_state=cpu_state(self.model))
        else:
            state["stale_epochs"] += 1
        patience = self.job.train.early_stopping_patience
        state["stopped"] = bool(patience and state["stale_epochs"] >= patience)

    def save(self, state: dict) -> None:
        plain = {k: v for k, v in state.items() if k != "best_state"}
        save_atomic({"format": 1, "fingerprint": self.job.fingerprint(), "state": plain,
                     "best_state": state["best_state"], "model": cpu_state(self.model),
                     "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()},
                    self.job.checkpoint)


def validate(model, split: PackedSplit, t: TrainConfig, device) -> dict:
    """Pooled DSC, precision, recall and the mean loss on ``split`` (the packed grid)."""
    if len(split) == 0:
        return {"loss": float("nan"), "dsc": float("nan"), "precision": float("nan"), "recall": float("nan")}
    counts, loss_sum = [], 0.0
    for which, logits in predict_logits(model, split, t.image_scale, t.batch_size, device, t.amp, t.channels_last):
        truth = torch.from_numpy(np.asarray(split.masks[which]) > 0)
        loss_sum += dice_bce_loss(logits, truth.float()).item() * len(logits)
        counts.append(confusion(logits.numpy() >= 0, truth.numpy()))
    return {"loss": loss_sum / len(split), **pooled(np.concatenate(counts))}


def _check_finite(model, job: TrainingJob, epoch: int) -> None:
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise TrainingDiverged(f"{job.variant_name} seed {job.seed}: {name} is not finite after epoch {epoch}; "
                                   "no model written")


def _write_outputs(job: TrainingJob, model, state: dict, device) -> dict:
    history = state["history"]
    summary = {"variant": job.variant_name, "seed": job.seed, "device": str(device),
               "epochs_run": len(history), "best_epoch": state["best_epoch"],
               "best_val_dsc": history[state["best_epoch"] - 1]["val_dsc"] if history else None,
               "stopped_early": state["stopped"], "resumes": state["resumes"],
               "train_seconds": sum(r["seconds"] for r in history),
               "images_per_s": sum(r["images_per_s"] for r in history) / max(len(history), 1),
               "parameters": sum(p.numel() for p in model.parameters()), "fingerprint": job.fingerprint()}
    save_atomic({"format": 1, "variant": job.variant_name, "slots": asdict(job.variant),
                 "models": job.models, "image_scale": job.train.image_scale, "seed": job.seed,
                 "epoch": state["best_epoch"], "fingerprint": job.fingerprint(),
                 "state_dict": state["best_state"]}, job.out_dir / "model.pt")
    write_rows(history, job.out_dir / "log.csv", EPOCH_FIELDS)
    write_json(summary, job.out_dir / "train.json")
    job.checkpoint.unlink(missing_ok=True)  # done: a rerun of a finished job starts afresh
    return summary
