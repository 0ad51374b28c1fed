"""Convolutional Block Attention Module (Woo, Park, Lee, Kweon. CBAM. ECCV 2018);
docs/paper.md, "CBAM", eqs. (1)-(4):

    Mc(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F))),  MLP = W1 ReLU(W0 .) shared   (2)
    F'    = Mc(F) * F                                                                  (1)
    Ms(F') = sigmoid(conv7x7([mean_c(F'); max_c(F')]))                                 (4)
    F''   = Ms(F') * F'                                                                (3)

``cbam_form="official"`` follows the authors' code instead (github.com/Jongchan/attention-module,
MODELS/cbam.py): the MLP's two layers have biases, and batch norm follows the 7 x 7 conv.
"""

from __future__ import annotations

import torch
from torch import nn

from lidcseg.models.registry import register_block


class ChannelAttention(nn.Module):
    """Channel attention Mc of CBAM: per-channel weights of a feature, (B, C, 1, 1).

    Based on: Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018.
    Eq. (2), one MLP shared by the average- and max-pooled descriptors:
    Mc(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F))), MLP = W1 ReLU(W0 .), the two weights
    1 x 1 convolutions without bias. It returns the weights, not the product.

    Args:
        channels: C, the channels of the feature.
        reduction: r, the MLP's hidden width C/r (at least 1).
        bias: biases in the MLP (the official code's), not in eq. (2).
    """

    def __init__(self, channels: int, reduction: int, bias: bool):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(_channel_max(x)))


def _channel_max(x: torch.Tensor) -> torch.Tensor:
    """MaxPool of eq. (2): each channel's maximum over the image, (B, C, 1, 1).

    ``max(...).values``, not ``amax``: amax's gradient is split among the elements equal to
    the maximum, found by comparing the input with the output again in the backward. Under
    ``torch.compile`` the backward recomputes ReLU's output without the forward's bf16
    rounding, no element equals the maximum any more, and the gradient is 0 / 0 = NaN
    (measured: 43 non-finite parameters after the compiled ``rbcbam``'s first backward;
    pytorch/pytorch#195214). ``max`` keeps the index it found: its gradient goes there, with
    no count. The two differ only on ties, where either is a valid subgradient."""
    return x.flatten(2).max(2).values[..., None, None]


class SpatialAttention(nn.Module):
    """Spatial attention Ms of CBAM: per-pixel weights of a feature, (B, 1, H, W).

    Based on: Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018.
    Eq. (4), a 7 x 7 convolution over the channel mean and max maps:
    Ms(F') = sigmoid(conv7x7([mean_c(F'); max_c(F')])), the convolution without bias. It
    returns the weights, not the product.

    Args:
        batch_norm: batch norm after the convolution (the official code's), not in eq. (4).
        kernel_size: the side of the convolution over the two maps (CBAM's 7); odd, so the
            padding keeps the size.
    """

    def __init__(self, batch_norm: bool, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.BatchNorm2d(1) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(1, keepdim=True), x.max(1, keepdim=True).values], dim=1)
        return torch.sigmoid(self.norm(self.conv(pooled)))


@register_block("cbam", "attention")
class CBAM(nn.Module):
    """Convolutional block attention: channel, then spatial weights multiplied into a feature.

    Based on: Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018.
    Eqs. (1)-(4): F' = Mc(F) * F (1) with Mc of eq. (2) (``ChannelAttention``), then
    F'' = Ms(F') * F' (3) with Ms of eq. (4) (``SpatialAttention``, 7 x 7). In RB-CBAM it is
    the attention on each skip's ASPP output; alone, a baseline of the paper's Table 1.

    Args:
        channels: C, the channels of the feature, in and out.
        reduction: r, the channel MLP's hidden width C/r (at least 1).
        gate_channels: unused; taken so that every attention block has the same constructor
            (the attention gate needs the decoder's gating signal).
        cbam_form: ``paper`` (eqs. 2 and 4 as written) or ``official`` (the authors' code:
            MLP biases, batch norm after the 7 x 7 conv).
    """

    def __init__(self, channels: int, *, gate_channels: int, reduction: int, cbam_form: str):
        super().__init__()
        if cbam_form not in ("paper", "official"):
            raise ValueError(f"CBAM: unknown form {cbam_form!r} (paper or official)")
        self.channel = ChannelAttention(channels, reduction, bias=cbam_form == "official")
        self.spatial = SpatialAttention(batch_norm=cbam_form == "official")

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        x = self.channel(x) * x
        return self.spatial(x) * x
