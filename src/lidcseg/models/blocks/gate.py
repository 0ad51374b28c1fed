"""Attention gate of Attention U-Net (Oktay et al. Attention U-Net: Learning Where to Look
for the Pancreas. MIDL 2018): alpha = sigmoid(psi(ReLU(W_x x + W_g g))), output x * alpha,
with g the coarser decoder feature (the gating signal) resampled to x's size. MONAI's
AttentionBlock is this gate (with batch norm after each 1x1 convolution)."""

from __future__ import annotations

import torch
from monai.networks.nets.attentionunet import AttentionBlock
from torch import nn

from lidcseg.core.upsampling import bilinear
from lidcseg.models.registry import register_block


@register_block("gate", "attention")
class AttentionGate(nn.Module):
    """Attention gate: weights a skip feature by where the coarser decoder feature points.

    Based on: Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas", MIDL
    2018. One of the attention blocks Table 1 compares RB-CBAM with (no equation of its own
    in the paper; docs/paper.md, "Baseline attention blocks"):
    alpha = sigmoid(psi(ReLU(W_x x + W_g g))), output x * alpha, with g the coarser decoder
    feature (the gating signal, ``forward``'s ``gate``) resampled
    bilinearly to x's size. MONAI's AttentionBlock is this gate (with batch norm after each
    1 x 1 convolution); its intermediate width is C/2.

    Args:
        channels: C, the channels of the skip feature x, in and out.
        gate_channels: the channels of the gating signal g.
        reduction, cbam_form: unused; taken so that every attention block has the same
            constructor.
    """

    def __init__(self, channels: int, *, gate_channels: int, reduction: int, cbam_form: str):
        super().__init__()
        self.block = AttentionBlock(
            spatial_dims=2, f_int=max(1, channels // 2), f_g=gate_channels, f_l=channels
        )

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        gate = bilinear(gate, x.shape[-2:])
        return self.block(gate, x)
