"""Whole-slice prediction: validation during training, evaluation and ``lidcseg predict``.

A slice goes through the network at ``image_scale`` of the packed grid; the logits are
upsampled (bilinear) back to the packed grid, so every DSC is measured on the same pixels
whatever resolution a model was trained at.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from lidcseg.core.runtime import autocast, memory_format
from lidcseg.core.scaling import scale_image
from lidcseg.core.upsampling import bilinear


@torch.no_grad()
def logits_of(
    model: torch.nn.Module,
    images: torch.Tensor,
    image_scale: float,
    device: torch.device,
    amp: str = "none",
    channels_last: bool = False,
) -> torch.Tensor:
    """Float32 logits (n, 1, H, W) of whole slices (n, 1, H, W) in [0, 1]: through the model
    at ``image_scale``, upsampled (bilinear) back to the slices' own size."""
    model.eval()
    scaled = scale_image(images.to(device).float(), image_scale).contiguous(
        memory_format=memory_format(channels_last)
    )
    with autocast(device, amp):
        logits = model(scaled)
    return bilinear(logits.float(), images.shape[-2:])


def predict_logits(
    model: torch.nn.Module,
    split,
    image_scale: float,
    batch_size: int,
    device: torch.device,
    amp: str = "none",
    channels_last: bool = False,
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield (which slices, float32 logits on the packed grid (n, H, W), on ``device``)
    per batch."""
    for start in range(0, len(split), batch_size):
        which = slice(start, min(start + batch_size, len(split)))
        # float16 as packed to the device, then scaled there (half the bytes to move)
        images = torch.from_numpy(np.array(split.images[which]))[:, None].to(
            device, non_blocking=True
        )
        yield which, logits_of(model, images, image_scale, device, amp, channels_last)[:, 0]
