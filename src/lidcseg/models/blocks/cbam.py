"""Convolutional Block Attention Module (Woo, Park, Lee, Kweon. CBAM. ECCV 2018); SPEC.md
eqs. (1)-(4):

    Mc(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F))),  MLP = W1 ReLU(W0 .) shared   (2)
    F'    = Mc(F) * F                                                                  (1)
    Ms(F') = sigmoid(conv7x7([mean_c(F'); max_c(F')]))                                 (4)
    F''   = Ms(F') * F'                                                                (3)
"""

from __future__ import annotations

import torch
from torch import nn

from lidcseg.models.registry import register_block


class ChannelAttention(nn.Module):
    """Mc of eq. (2): one MLP shared by the average- and max-pooled descriptors."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True)))


class SpatialAttention(nn.Module):
    """Ms of eq. (4): a 7 x 7 convolution over the channel mean and max maps."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)))


@register_block("cbam", "attention")
class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, gate_channels: int | None = None):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention()

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        x = self.channel(x) * x
        return self.spatial(x) * x
