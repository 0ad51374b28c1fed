"""Training loss of the paper (docs/paper.md, "Loss", eqs. 10-13), on logits.

    Dice   = 2 sum(p g) / (sum p + sum g),  L_dice = 1 - Dice          (10, 11)
    L_bce  = -(1/N) sum(g log p + (1 - g) log(1 - p))                   (12)
    L      = L_dice + L_bce                                             (13)

with p = sigmoid(logits), sums over every pixel of the batch (the equations have one sum,
not one per image). ``eps`` (1e-6) only keeps 0/0 finite when a batch has no nodule pixel
and no prediction. BCE is torch's ``binary_cross_entropy_with_logits``: the same function
as eq. (12), computed stably from logits (tests/training/test_losses.py checks both against a
direct implementation). Deep supervision adds ``weight_i * L(side_i)`` for each side map,
upsampled to the target's size (bilinear, deterministic: core.upsampling).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from lidcseg.core.upsampling import bilinear


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Eqs. (10)-(11) over the whole batch."""
    p = torch.sigmoid(logits)
    dice = (2 * (p * target).sum() + eps) / (p.sum() + target.sum() + eps)
    return 1 - dice


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. (13): L_dice + L_bce."""
    return dice_loss(logits, target) + F.binary_cross_entropy_with_logits(logits, target)


def deep_supervision_loss(
    logits: torch.Tensor,
    sides: Sequence[torch.Tensor],
    target: torch.Tensor,
    side_weights: Sequence[float],
) -> torch.Tensor:
    """Eq. (13) on the output plus each side map's eq. (13), weighted (deepest first)."""
    if len(side_weights) != len(sides):
        raise ValueError(f"{len(side_weights)} side weights for {len(sides)} side maps")
    total = dice_bce_loss(logits, target)
    for weight, side in zip(side_weights, sides):
        if weight:
            upsampled = bilinear(side, target.shape[-2:])
            total = total + weight * dice_bce_loss(upsampled, target)
    return total
