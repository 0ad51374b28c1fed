"""Reverse attention (SPEC.md eqs. 5-6; after Chen et al. Reverse Attention for Salient
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
    def forward(self, x: torch.Tensor, probability: torch.Tensor) -> torch.Tensor:
        return x * reverse_weights(probability)
