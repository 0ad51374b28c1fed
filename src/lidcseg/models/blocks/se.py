"""Squeeze-and-excitation (Hu, Shen, Sun. Squeeze-and-Excitation Networks. CVPR 2018).

Channel weights sigmoid(W2 ReLU(W1 AvgPool(F))), W1: C -> C/r, W2: C/r -> C, multiply F.
MONAI's ChannelSELayer is exactly this block; we only fix r (the paper's 16).
"""

from __future__ import annotations

import torch
from monai.networks.blocks import ChannelSELayer
from torch import nn

from lidcseg.models.registry import register_block


@register_block("se", "attention")
class SE(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, gate_channels: int | None = None):
        super().__init__()
        self.layer = ChannelSELayer(spatial_dims=2, in_channels=channels, r=min(reduction, channels))

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        return self.layer(x)
