"""Optimiser and per-step learning rate of a training job (config.yaml ``train:``).

The learning rate is a pure function of the global step, so a resumed job needs no
scheduler state: linear warm-up over ``warmup_epochs``, then cosine to 0, nnU-Net's
polynomial decay (1 - progress) ** 0.9, or constant.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from lidcseg.config import TrainConfig


def make_optimizer(
    parameters: Iterable[torch.nn.Parameter], train: TrainConfig, fused: bool = False
) -> torch.optim.Optimizer:
    """``fused``: one kernel for the whole update (CUDA); the CPU keeps the default
    implementation, so CPU runs keep their weights."""
    fused = fused or None  # None, not False: torch then picks its default (foreach)
    if train.optimizer == "adam":
        return torch.optim.Adam(
            parameters, lr=train.learning_rate, weight_decay=train.weight_decay, fused=fused
        )
    if train.optimizer == "adamw":
        return torch.optim.AdamW(
            parameters, lr=train.learning_rate, weight_decay=train.weight_decay, fused=fused
        )
    if train.optimizer == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=train.learning_rate,
            weight_decay=train.weight_decay,
            momentum=0.99,
            nesterov=True,
            fused=fused,
        )  # nnU-Net's SGD
    raise ValueError(f"train.optimizer: unknown optimiser {train.optimizer!r}")


def learning_rate_at(
    step: int, total_steps: int, steps_per_epoch: int, train: TrainConfig
) -> float:
    """The learning rate of (0-based) ``step`` of ``total_steps``."""
    warmup = train.warmup_epochs * steps_per_epoch
    if step < warmup:
        return train.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(total_steps - warmup, 1)
    if train.schedule == "cosine":
        return train.learning_rate * 0.5 * (1 + math.cos(math.pi * progress))
    if train.schedule == "poly":
        return train.learning_rate * (1 - progress) ** 0.9
    return train.learning_rate
