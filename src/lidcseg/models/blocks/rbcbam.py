"""RB-CBAM fusion (docs/paper.md, eq. 9): F_rb = Concat(F_r, F_b) of the reverse- and the
boundary-weighted (CBAM) features, reduced back to the skip's width by a 1 x 1 convolution
with batch norm and ReLU, so the decoder sees the same channels as without it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lidcseg.models.blocks.boundary import apply_boundary, boundary_weights
from lidcseg.models.blocks.reverse import reverse_weights
from lidcseg.models.registry import register_block


@register_block("rbcbam", "fusion", fuses=("reverse", "boundary"))
class ReverseBoundaryFusion(nn.Module):
    """RB-CBAM fusion: reverse- and boundary-weighted features, concatenated and reduced to C.

    Based on: Hwang, Ji, Yoon, Lee, "Boundary and Reverse Attention Module for Lung Nodule
    Segmentation in CT Images" (RB-CBAM), IEMEK J. Embedded Systems and Applications 17(5),
    2022. Eq. (9): F_rb = Concat(F_r, F_b), with F_r of eqs. (5)-(6) and F_b of eqs.
    (7)-(8) computed from the same (CBAM) feature and the deeper level's probability map
    (passed to ``forward``), followed by a 1 x 1 convolution with batch norm and ReLU from 2C
    to C channels, so the decoder sees the same channels as without it.

    Args:
        channels: C, the channels of the feature, in and out (2C inside, after the concat).
        boundary_formula: how the boundary weights are computed from the probability map,
            one of ``boundary.FORMULAS`` (see ``BoundaryAttention``).
        boundary_residual: the boundary branch as (1 + A_b) * F or A_b * F (see
            ``BoundaryAttention``).
    """

    def __init__(self, channels: int, *, boundary_formula: str, boundary_residual: bool):
        super().__init__()
        self.formula, self.boundary_residual = boundary_formula, boundary_residual
        self.reduce = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, probability: torch.Tensor) -> torch.Tensor:
        reverse = x * reverse_weights(probability)
        boundary = apply_boundary(x, probability, self.formula, self.boundary_residual)
        return self.reduce(torch.cat([reverse, boundary], dim=1))

    def forward_without_concat(self, x: torch.Tensor, probability: torch.Tensor) -> torch.Tensor:
        """``forward`` rewritten exactly, without the 2C concatenation: the reverse and
        boundary weights are per pixel (a = 1 - P, b = A_b or 1 + A_b), so
        W [a x; b x] = a (W_r x) + b (W_b x) with W's two halves W_r, W_b. Less memory
        traffic; measured slower on the CPU (a 2C-wide convolution output instead of a 2C
        input: 280 against 265 ms forward and backward at 8 x 64 x 128 x 128, 3.3 against
        3.1 s at 16 x 64 x 256 x 256, one thread), so ``forward`` keeps eq. (9)'s form;
        benchmarks/gpu_check.py times both on a GPU."""
        conv, norm, relu = self.reduce
        w_reverse, w_boundary = conv.weight.chunk(2, dim=1)
        halves = F.conv2d(x, torch.cat([w_reverse, w_boundary], dim=0)).chunk(2, dim=1)
        weights = boundary_weights(probability, self.formula)
        weights = 1.0 + weights if self.boundary_residual else weights
        return relu(norm(reverse_weights(probability) * halves[0] + weights * halves[1]))
