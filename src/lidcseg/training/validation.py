"""Validation during training: pooled DSC, precision, recall and the mean loss of a split,
counted on the training device and read back once (a training step never waits for it)."""

from __future__ import annotations

import numpy as np
import torch

from lidcseg.config import TrainConfig
from lidcseg.core.logits import predict_logits
from lidcseg.core.metrics import pooled
from lidcseg.data.dataset.packed import PackedSplit
from lidcseg.training.losses import dice_bce_loss


@torch.no_grad()
def validate(model, split: PackedSplit, train: TrainConfig, device) -> dict:
    """Pooled DSC, precision, recall and the mean loss on ``split`` (the packed grid), counted
    on the device and read back once."""
    if len(split) == 0:
        return {
            "loss": float("nan"),
            "dsc": float("nan"),
            "precision": float("nan"),
            "recall": float("nan"),
        }
    counts, loss_sum = [], torch.zeros((), device=device)
    for which, logits in predict_logits(
        model, split, train.image_scale, train.batch_size, device, train.amp, train.channels_last
    ):
        truth = torch.from_numpy(np.asarray(split.masks[which]) > 0).to(device, non_blocking=True)
        loss_sum += dice_bce_loss(logits, truth.float()) * len(logits)
        counts.append(_confusion(logits >= 0, truth))
    return {"loss": loss_sum.item() / len(split), **pooled(torch.cat(counts).cpu().numpy())}


def _confusion(prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """core.metrics.confusion on the device: (TP, FP, FN) per image, (n, 3) int64."""
    prediction, truth = prediction.flatten(1), truth.flatten(1)
    return torch.stack(
        [(prediction & truth).sum(1), (prediction & ~truth).sum(1), (~prediction & truth).sum(1)], 1
    )
