"""Atrous spatial pyramid pooling on a skip connection (Chen et al. DeepLab / Rethinking
Atrous Convolution. 2017), as SPEC.md describes it: four parallel 3 x 3 convolutions with
different dilation rates, concatenated, fused by a 1 x 1 convolution. MONAI's SimpleASPP is
that block; each branch has C/4 channels so the concatenation and the output keep the
skip's width C (and the cost stays near one 3 x 3 convolution's)."""

from __future__ import annotations

import torch
from monai.networks.blocks import SimpleASPP
from torch import nn

from lidcseg.models.registry import register_block


@register_block("aspp", "aspp")
class ASPP(nn.Module):
    def __init__(self, channels: int, rates: tuple[int, ...] = (1, 6, 12, 18)):
        super().__init__()
        if channels % len(rates):
            raise ValueError(f"ASPP: {channels} channels do not split into {len(rates)} branches")
        self.block = SimpleASPP(spatial_dims=2, in_channels=channels, conv_out_channels=channels // len(rates),
                                kernel_sizes=(3,) * len(rates), dilations=tuple(rates), acti_type="RELU")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)
