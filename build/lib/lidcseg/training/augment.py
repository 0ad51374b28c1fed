"""What the network sees: packed slices scaled, cropped near nodules and augmented.

Training samples follow nnU-Net's recipe: a crop of ``patch_size`` from the slice scaled by
``image_scale``; a share ``foreground_fraction`` of crops is centred near a nodule pixel so
that a 1 %-foreground problem still shows nodules in most batches; then a random flip,
rotation, zoom and intensity change. Crop, rotation, zoom and flips are one affine
resampling (``grid_sample``), so a sample costs one interpolation.

Every random number of a sample comes from ``numpy.random.default_rng([seed, epoch, index])``
and the epoch's order from ``default_rng([seed, epoch])``: a sample is the same whichever
worker makes it and however often the job was stopped and resumed. That is what makes a
resumed run end with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from lidcseg.config import AugmentConfig
from lidcseg.data.dataset.packed import PackedSplit


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


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` keys in the epoch's seeded order, from ``start`` on.

    The sampler runs in the training process, so ``set_epoch`` reaches persistent workers.
    """

    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        return iter([(self.epoch, int(i)) for i in order[self.start:]])

    def __len__(self) -> int:
        return self.size - self.start


class TrainingSamples(Dataset):
    """(image, mask) float32 tensors of shape (1, *patch_size) for ``(epoch, index)`` keys."""

    def __init__(self, split: PackedSplit, seed: int, image_scale: float, patch_size: tuple[int, int],
                 foreground_fraction: float, augment: AugmentConfig):
        self.split, self.seed = split, seed
        self.image_scale, self.patch_size = image_scale, tuple(patch_size)
        self.foreground_fraction, self.augment = foreground_fraction, augment

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        image, mask = self.split[index]
        image = scale_image(torch.from_numpy(image)[None, None], self.image_scale)
        mask = scale_image(torch.from_numpy(mask.astype(np.float32))[None, None], self.image_scale)
        centre = self._centre(mask[0, 0], rng)
        theta = self._affine(image.shape[-2:], centre, rng)
        grid = F.affine_grid(theta, [1, 1, *self.patch_size], align_corners=False)
        image = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
        mask = (F.grid_sample(mask, grid, mode="bilinear", align_corners=False)[0] >= 0.5).float()
        return self._intensity(image, rng), mask

    def _centre(self, coverage: torch.Tensor, rng: np.random.Generator) -> tuple[float, float]:
        """(row, col) of the crop centre: near a nodule pixel, or uniform over the slice."""
        rows, cols = coverage.shape
        if rng.random() < self.foreground_fraction:
            nodule = np.argwhere(coverage.numpy() > 0)
            if len(nodule):
                r, c = nodule[rng.integers(len(nodule))]
                jitter = rng.uniform(-1, 1, 2) * np.asarray(self.patch_size) / 3
                return float(r + jitter[0]), float(c + jitter[1])
        low = np.minimum(np.asarray(self.patch_size) / 2, np.asarray([rows, cols]) / 2) - 0.5
        high = np.asarray([rows, cols]) - 1 - low
        return tuple(float(v) for v in rng.uniform(low, np.maximum(low, high)))

    def _affine(self, shape, centre: tuple[float, float], rng: np.random.Generator) -> torch.Tensor:
        """The (1, 2, 3) ``affine_grid`` matrix mapping patch coordinates to the slice."""
        a = self.augment
        angle = math.radians(rng.uniform(-a.rotate_deg, a.rotate_deg)) if a.rotate_deg else 0.0
        zoom = rng.uniform(*a.scale)
        flips = np.where(rng.random(2) < 0.5, -1.0, 1.0) if a.flip else np.ones(2)
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        # (x, y) order, as affine_grid wants: pixels of the patch -> pixels of the slice.
        pixels = rotation @ np.diag(flips) / zoom
        rows, cols = shape
        to_slice = np.diag([2 / cols, 2 / rows]) @ pixels @ np.diag([self.patch_size[1] / 2, self.patch_size[0] / 2])
        shift = [(2 * centre[1] + 1) / cols - 1, (2 * centre[0] + 1) / rows - 1]
        return torch.tensor(np.column_stack([to_slice, shift])[None], dtype=torch.float32)

    def _intensity(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        a = self.augment.intensity
        if not a:
            return image
        contrast, brightness = rng.uniform(1 - a, 1 + a), rng.uniform(-a / 2, a / 2)
        return image * contrast + brightness


def seed_worker(worker_id: int) -> None:
    """One thread per loader worker: the training process owns the cores."""
    torch.set_num_threads(1)
