"""Squeeze-and-excitation (Hu, Shen, Sun. Squeeze-and-Excitation Networks. CVPR 2018).

Channel weights sigmoid(W2 ReLU(W1 AvgPool(F))), W1: C -> C/r, W2: C/r -> C, multiply F.
MONAI's ChannelSELayer is exactly this block; r is ``models.reduction``.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import ChannelSELayer
from torch import nn

from lidcseg.models.registry import register_block


@register_block("se", "attention")
class SE(nn.Module):
    """Squeeze-and-excitation: channel weights from the globally average-pooled feature.

    Based on: Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018. One of the
    attention blocks Table 1 compares RB-CBAM with (no equation of its own in the paper;
    docs/paper.md, "Baseline attention blocks"): sigmoid(W2 ReLU(W1 AvgPool(F))) multiplied
    into F, W1: C -> C/r, W2: C/r -> C.
    MONAI's ChannelSELayer is exactly this block.

    Args:
        channels: C, the channels of the feature, in and out.
        reduction: r, the squeeze ratio (``models.reduction``), capped at C.
        gate_channels: unused; taken so that every attention block has the same constructor
            (the attention gate needs the decoder's gating signal).
        cbam_form: unused (CBAM's), taken for the same reason.
    """

    def __init__(self, channels: int, *, gate_channels: int, reduction: int, cbam_form: str):
        super().__init__()
        self.layer = ChannelSELayer(
            spatial_dims=2, in_channels=channels, r=min(reduction, channels)
        )

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return self.layer(x)
