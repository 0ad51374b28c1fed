"""The loss equals a direct implementation of eqs. (10)-(13) (docs/paper.md)."""

from __future__ import annotations

import pytest
import torch

from lidcseg.training.losses import deep_supervision_loss, dice_bce_loss, dice_loss


def _direct(logits: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits.double())
    g = g.double()
    dice = 2 * (p * g).sum() / (p.sum() + g.sum())  # (10)
    bce = -(g * torch.log(p) + (1 - g) * torch.log(1 - p)).mean()  # (12)
    return (1 - dice) + bce  # (11) + (13)


@pytest.mark.parametrize("seed", range(5))
def test_loss_equals_equations_10_to_13(seed):
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(4, 1, 17, 23, generator=generator)
    target = (torch.rand(4, 1, 17, 23, generator=generator) > 0.8).float()
    torch.testing.assert_close(
        dice_bce_loss(logits, target).double(), _direct(logits, target), rtol=1e-5, atol=1e-6
    )


def test_dice_loss_ends():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:6, 2:6] = 1
    assert dice_loss(torch.where(target > 0, 50.0, -50.0), target).item() == pytest.approx(
        0, abs=1e-6
    )
    assert dice_loss(torch.full_like(target, -50.0), target).item() == pytest.approx(1, abs=1e-6)
    empty = torch.zeros(1, 1, 8, 8)
    assert torch.isfinite(dice_loss(torch.full_like(empty, -50.0), empty))


def test_deep_supervision_adds_weighted_side_losses():
    generator = torch.Generator().manual_seed(0)
    target = (torch.rand(2, 1, 16, 16, generator=generator) > 0.7).float()
    logits = torch.randn(2, 1, 16, 16, generator=generator)
    sides = [
        torch.randn(2, 1, 4, 4, generator=generator),
        torch.randn(2, 1, 8, 8, generator=generator),
    ]
    plain = dice_bce_loss(logits, target)
    assert deep_supervision_loss(logits, sides, target, [0.0, 0.0]) == plain
    upsampled = torch.nn.functional.interpolate(
        sides[1], size=(16, 16), mode="bilinear", align_corners=False
    )
    expected = plain + 0.5 * dice_bce_loss(upsampled, target)
    torch.testing.assert_close(deep_supervision_loss(logits, sides, target, [0.0, 0.5]), expected)
    with pytest.raises(ValueError, match="side weights"):
        deep_supervision_loss(logits, sides, target, [1.0])
