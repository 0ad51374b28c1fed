"""Boundary attention (docs/paper.md, eqs. 7-8): weights highest at the predicted nodule's edge,
F_b = A_b * F, from the deeper level's probability map P. The paper's eq. (7) did not
survive extraction; the formula is switchable:

- ``uncertainty`` (default): A_b = 1 - |2P - 1|, highest where P = 0.5: the predicted edge,
  where the probability falls from the nodule's centre outward (the paper's wording);
- ``gradient``: the morphological gradient of P (3 x 3 max minus min);
- ``blur``: 2 |P - mean5x5(P)|, clipped to [0, 1] (P minus a blurred P).

Applied as residual attention by default, F_b = (1 + A_b) * F (Wang et al., "Residual
Attention Network for Image Classification", CVPR 2017; BAM adds its map the same way): the
edge is emphasised, the rest of the feature kept. Eq. (8) as written, F_b = A_b * F, closes
the skip wherever the side map is sure, inside the nodule and everywhere in the background,
and it is sure of the background within the first epoch: measured on the demo,
``cbam_b`` then never left an all-background output (pooled test DSC 0.000 after 15 epochs,
0.671 with the residual form, all else equal). ``residual=False`` gives eq. (8) as written.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lidcseg.models.registry import register_block

FORMULAS = ("uncertainty", "gradient", "blur")


def boundary_weights(probability: torch.Tensor, formula: str) -> torch.Tensor:
    if formula == "uncertainty":
        return 1.0 - (2.0 * probability - 1.0).abs()
    if formula == "gradient":
        return F.max_pool2d(probability, 3, 1, 1) + F.max_pool2d(-probability, 3, 1, 1)
    if formula == "blur":
        return (
            2.0 * (probability - F.avg_pool2d(probability, 5, 1, 2, count_include_pad=False)).abs()
        ).clamp(0, 1)
    raise ValueError(f"unknown boundary formula '{formula}' (one of {FORMULAS})")


@register_block("boundary", "boundary")
class BoundaryAttention(nn.Module):
    """Boundary attention: reweights a feature toward the predicted nodule's edge.

    Based on: Hwang, Ji, Yoon, Lee, "Boundary and Reverse Attention Module for Lung Nodule
    Segmentation in CT Images" (RB-CBAM), IEMEK J. Embedded Systems and Applications 17(5),
    2022. Eqs. (7)-(8): F_b = A_b * F, with A_b from the deeper level's probability
    map P (passed to ``forward`` with the feature, upsampled to its size). The paper's eq. (7)
    did not survive extraction, so the weight is switchable (see ``boundary_weights``);
    the default, A_b = 1 - |2P - 1|, is highest where P = 0.5, where the probability falls
    from the nodule's centre outward (the paper's wording). The block has no weights.

    Args:
        channels: unused; taken so that every block has its kind's constructor.
        boundary_formula: how A_b is computed from P, one of ``FORMULAS``: ``uncertainty``
            (1 - |2P - 1|), ``gradient`` (the morphological gradient of P, 3 x 3 max minus
            min) or ``blur`` (2 |P - mean5x5(P)|, clipped to [0, 1]). An unknown name fails
            here, at construction, with ValueError.
        boundary_residual: F_b = (1 + A_b) * F (see the module) or A_b * F (eq. 8 as
            written).
    """

    def __init__(self, channels: int, *, boundary_formula: str, boundary_residual: bool):
        super().__init__()
        # fail at construction on a bad name, not at the first batch
        boundary_weights(torch.zeros(1, 1, 3, 3), boundary_formula)
        self.formula, self.residual = boundary_formula, boundary_residual

    def forward(self, x: torch.Tensor, probability: torch.Tensor) -> torch.Tensor:
        return apply_boundary(x, probability, self.formula, self.residual)


def apply_boundary(
    x: torch.Tensor, probability: torch.Tensor, formula: str, residual: bool
) -> torch.Tensor:
    """F_b of eq. (8), or its residual form (1 + A_b) * F."""
    weights = boundary_weights(probability, formula)
    return x * (1.0 + weights) if residual else x * weights
