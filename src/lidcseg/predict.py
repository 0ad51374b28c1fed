"""Whole-slice prediction, shared by validation during training and by evaluation.

A slice goes through the network at ``image_scale`` of the packed grid; the logits are
upsampled (bilinear) back to the packed grid, so every DSC is measured on the same pixels
whatever resolution a model was trained at.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from lidcseg.data.dataset import PackedSplit
from lidcseg.data.samples import scale_image
from lidcseg.runtime import autocast, memory_format


@torch.no_grad()
def predict_logits(model: torch.nn.Module, split: PackedSplit, image_scale: float, batch_size: int,
                   device: torch.device, amp: str = "none", channels_last: bool = False
                   ) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield (which slices, float32 logits on the packed grid (n, H, W), on the CPU) per batch."""
    model.eval()
    for start in range(0, len(split), batch_size):
        which = slice(start, min(start + batch_size, len(split)))
        images = torch.from_numpy(np.asarray(split.images[which], dtype=np.float32))[:, None]
        scaled = scale_image(images, image_scale).to(device, memory_format=memory_format(channels_last))
        with autocast(device, amp):
            logits = model(scaled)
        logits = F.interpolate(logits.float(), size=images.shape[-2:], mode="bilinear", align_corners=False)
        yield which, logits[:, 0].cpu()
