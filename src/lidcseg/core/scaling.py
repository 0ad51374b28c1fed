"""Slices at the resolution a model works at: ``train.image_scale`` of the packed grid.

Training crops from scaled slices, and validation, evaluation and ``lidcseg predict`` scale
whole slices the same way, so one function decides what "half resolution" means.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def scaled_size(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    """The slice size at ``scale`` (at least one pixel per axis)."""
    return tuple(max(1, round(n * scale)) for n in shape)


def scale_image(images: torch.Tensor, scale: float) -> torch.Tensor:
    """Area-average (N, C, H, W) images down to ``scale`` (anti-aliased; identity at 1)."""
    if scale == 1:
        return images
    return F.interpolate(images, size=scaled_size(images.shape[-2:], scale), mode="area")


def scale_mask(masks: torch.Tensor, scale: float) -> torch.Tensor:
    """Binary masks at ``scale``: the covered fraction of each new pixel, then >= 0.5 (as
    resample's mask rule)."""
    return (scale_image(masks, scale) >= 0.5).to(masks.dtype)
