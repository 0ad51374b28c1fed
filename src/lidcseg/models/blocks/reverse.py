"""Reverse attention (docs/paper.md, eqs. 5-6; after Chen et al. Reverse Attention for Salient
Object Detection, ECCV 2018): A_r = 1 - sigmoid(Up(D_{i+1})), F_r = A_r * F. It turns the
features toward what the deeper level has not yet found: missed parts and small nodules."""

from __future__ import annotations

import torch
from torch import nn

from lidcseg.models.registry import register_block


def reverse_weights(probability: torch.Tensor) -> torch.Tensor:
    return 1.0 - probability


@register_block("reverse", "reverse")
class ReverseAttention(nn.Module):
    """Reverse attention: turns a feature toward what the deeper level has not yet found.

    Based on: Chen, Tan, Wang, Hu, "Reverse Attention for Salient Object Detection", ECCV
    2018, as used for medical segmentation by Fan et al., "PraNet: Parallel Reverse Attention
    Network for Polyp Segmentation", MICCAI 2020, and by the RB-CBAM paper (Hwang, Ji, Yoon,
    Lee, IEMEK J. Embedded Systems and Applications 17(5), 2022). Eqs. (5)-(6):
    A_r = 1 - sigmoid(Up(D_{i+1})) and F_r = A_r * F; ``forward`` takes the feature and the
    probability map sigmoid(Up(D_{i+1})), so missed parts and small nodules get the weight.

    It has no weights.

    Args:
        channels: unused; taken so that every block has its kind's constructor.
    """

    def __init__(self, channels: int):
        super().__init__()

    def forward(self, x: torch.Tensor, probability: torch.Tensor) -> torch.Tensor:
        return x * reverse_weights(probability)
