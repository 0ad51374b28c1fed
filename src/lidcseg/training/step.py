"""One optimiser step of a training job (what training/train.py's epochs repeat, and what
the benchmarks time): the loss of docs/paper.md (eq. 13) on one augmented batch."""

from __future__ import annotations

import torch

from lidcseg.config import TrainConfig
from lidcseg.core.runtime import autocast
from lidcseg.training.augment import augment_batch
from lidcseg.training.averaging import WeightAverage
from lidcseg.training.losses import deep_supervision_loss, dice_bce_loss


class TrainingStep:
    """One optimiser step on a loader batch: augmentation on the device (the pixels gathered
    from ``resident``, a ``ResidentSplit``, when the loader gives draws only), forward, the
    loss of eq. (13) (plus the side maps' terms), backward, update, the weight average. Returns
    the loss as a device tensor: reading it would make the host wait for the device."""

    def __init__(
        self,
        model,
        optimizer,
        scaler,
        device: torch.device,
        train: TrainConfig,
        average=None,
        resident=None,
    ):
        self.model, self.optimizer, self.scaler = model, optimizer, scaler
        self.device, self.train, self.resident = device, train, resident
        self.average = average or WeightAverage(model, 0.0)
        self.forward = torch.compile(model) if train.compile else model

    def __call__(self, batch, lr: float) -> torch.Tensor:
        train = self.train
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        images, masks = augment_batch(
            batch,
            train.image_scale,
            train.patch_size,
            self.device,
            train.channels_last,
            self.resident,
        )
        with autocast(self.device, train.amp):
            if any(train.deep_supervision):
                logits, sides = self.forward(images, return_side=True)
            else:
                logits, sides = self.forward(images), None
        logits = logits.float()
        if sides is None:
            loss = dice_bce_loss(logits, masks)
        else:
            loss = deep_supervision_loss(
                logits, [s.float() for s in sides], masks, train.deep_supervision
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if train.gradient_clip:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not fp16-scaled ones
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), train.gradient_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.average.update()
        return loss.detach()
