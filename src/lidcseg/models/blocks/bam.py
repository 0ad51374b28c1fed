"""Bottleneck Attention Module (Park, Woo, Lee, Kweon. BAM. BMVC 2018).

M(F) = sigmoid(Mc(F) + Ms(F)) and F' = F + F * M(F), where the channel branch is an MLP on
the average-pooled descriptor (C -> C/r -> C, with batch norm) and the spatial branch is a
1x1 reduction to C/r, two 3x3 convolutions with dilation 4, and a 1x1 to one map.
"""

from __future__ import annotations

import torch
from torch import nn

from lidcseg.models.registry import register_block

DILATION = 4  # of the spatial branch's two 3 x 3 convolutions: BAM's value


def _conv_bn_relu(cin: int, cout: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class GlobalMean(nn.Module):
    """The average pool of BAM's channel branch, (B, C, 1, 1), as a mean over the image:
    ``nn.AdaptiveAvgPool2d(1)`` computes the same, but its CUDA backward has no
    deterministic kernel (an error under ``deterministic: true``); a mean's backward is a
    broadcast."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


@register_block("bam", "attention")
class BAM(nn.Module):
    """Bottleneck attention: channel and spatial weights added, then a residual reweighting.

    Based on: Park, Woo, Lee, Kweon, "BAM: Bottleneck Attention Module", BMVC 2018. One of
    the attention blocks Table 1 compares RB-CBAM with (no equation of its own in the paper;
    docs/paper.md, "Baseline attention blocks"): M(F) = sigmoid(Mc(F) + Ms(F)) and
    F' = F + F * M(F), where the channel branch Mc is an MLP on the average-pooled
    descriptor (C -> C/r -> C, with batch norm) and the
    spatial branch Ms is a 1 x 1 reduction to C/r, two dilated 3 x 3 convolutions and a 1 x 1
    convolution to one map.

    Args:
        channels: C, the channels of the feature, in and out.
        reduction: r, the hidden width C/r of both branches (at least 1).
        gate_channels: unused; taken so that every attention block has the same constructor
            (the attention gate needs the decoder's gating signal).
        cbam_form: unused (CBAM's), taken for the same reason.
    """

    def __init__(self, channels: int, *, gate_channels: int, reduction: int, cbam_form: str):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.channel = nn.Sequential(
            GlobalMean(),
            _conv_bn_relu(channels, hidden, 1),
            nn.Conv2d(hidden, channels, 1),
        )
        self.spatial = nn.Sequential(
            _conv_bn_relu(channels, hidden, 1),
            _conv_bn_relu(hidden, hidden, 3, DILATION),
            _conv_bn_relu(hidden, hidden, 3, DILATION),
            nn.Conv2d(hidden, 1, 1),
        )

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.channel(x) + self.spatial(x))
        return x + x * weights
