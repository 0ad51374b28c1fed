"""What the network sees: packed slices scaled, cropped near nodules and augmented.

Training samples follow nnU-Net's recipe: a crop of ``patch_size`` from the slice scaled by
``image_scale``; a share ``foreground_fraction`` of crops is centred near a nodule pixel so
that a 1 %-foreground problem still shows nodules in most batches; then a random flip,
rotation, zoom and intensity change. Crop, rotation, zoom and flips are one affine
resampling (``grid_sample``), so a sample costs one interpolation.

The work is split where it is cheapest, so that a loader worker keeps pace with a GPU:

- ``TrainingSamples`` (the loader workers) only slices the memory-mapped packed arrays and
  draws the sample's random numbers: the float16 slice and its mask as stored, the (2, 3)
  affine matrix and the intensity change. No pixel is interpolated there, so a worker keeps
  pace with a GPU (a float32 sample at 512 x 512 used to cost a worker ~10 ms).
- ``augment_batch`` (the training process, on the training device) applies a whole batch
  at once: scaling, one batched ``affine_grid`` + ``grid_sample``, intensity.

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
from torch.utils.data import DataLoader, Dataset, Sampler

from lidcseg.config import AugmentConfig
from lidcseg.core.scaling import scale_image, scaled_size
from lidcseg.data.dataset.packed import PackedSplit


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
        return iter([(self.epoch, int(i)) for i in order[self.start :]])

    def __len__(self) -> int:
        return self.size - self.start


class TrainingSamples(Dataset):
    """For ``(epoch, index)`` keys: ``(image, mask, theta, intensity)`` of one slice.

    ``image`` (rows, cols) float16 and ``mask`` (rows, cols) bool are the packed slice as
    stored; ``theta`` (2, 3) maps the patch to the scaled slice (``affine_grid``'s matrix) and
    ``intensity`` is (contrast, brightness). ``augment_batch`` turns a batch of them into
    the network's input.
    """

    def __init__(
        self,
        split: PackedSplit,
        seed: int,
        image_scale: float,
        patch_size: tuple[int, int],
        foreground_fraction: float,
        augment: AugmentConfig,
    ):
        self.split, self.seed = split, seed
        self.image_scale, self.patch_size = image_scale, tuple(patch_size)
        self.foreground_fraction, self.augment = foreground_fraction, augment
        self.shape = tuple(split.images.shape[1:])
        self.scaled_shape = scaled_size(self.shape, image_scale)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(
        self, key: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        image = torch.from_numpy(np.array(self.split.images[index], dtype=np.float16))
        mask = torch.from_numpy(np.asarray(self.split.masks[index]) > 0)
        theta, intensity = self._draws(rng, lambda: np.flatnonzero(mask.numpy()))
        return image, mask, theta, intensity

    def _draws(self, rng: np.random.Generator, nodule_pixels) -> tuple[torch.Tensor, torch.Tensor]:
        """(theta, intensity) of one sample, in the order its generator draws them."""
        theta = self._affine(self._centre(nodule_pixels, rng), rng)
        return theta, self._intensity(rng)

    def _centre(self, nodule_pixels, rng: np.random.Generator) -> tuple[float, float]:
        """(row, col) of the crop centre on the scaled slice: near a nodule pixel (one of the
        flat indices ``nodule_pixels()`` returns, asked for only when needed), or uniform.

        Plain floats, not small numpy arrays: this runs once per sample in a loader worker,
        where numpy's per-call overhead on 2-vectors was a third of a sample's cost."""
        (rows, cols), (patch_rows, patch_cols) = self.scaled_shape, self.patch_size
        if rng.random() < self.foreground_fraction:
            nodule = nodule_pixels()
            if len(nodule):
                r, c = divmod(int(nodule[rng.integers(len(nodule))]), self.shape[1])
                # that pixel's centre on the scaled grid (pixel centres at i + 0.5 on both)
                r, c = (
                    (r + 0.5) * rows / self.shape[0] - 0.5,
                    (c + 0.5) * cols / self.shape[1] - 0.5,
                )
                jitter_r, jitter_c = rng.uniform(-1, 1, 2)
                return r + jitter_r * patch_rows / 3, c + jitter_c * patch_cols / 3
        low = [min(p / 2, n / 2) - 0.5 for p, n in ((patch_rows, rows), (patch_cols, cols))]
        high = [max(lo, n - 1 - lo) for lo, n in zip(low, (rows, cols))]
        r, c = rng.uniform(low, high)
        return float(r), float(c)

    def _affine(self, centre: tuple[float, float], rng: np.random.Generator) -> torch.Tensor:
        """The (2, 3) ``affine_grid`` matrix mapping patch coordinates to the scaled slice:
        rotation @ flips / zoom in pixels, in (x, y) order as affine_grid wants, between the
        patch's and the slice's normalised [-1, 1] coordinates."""
        a = self.augment
        angle = math.radians(rng.uniform(-a.rotate_deg, a.rotate_deg)) if a.rotate_deg else 0.0
        zoom = rng.uniform(*a.scale)
        flip_x, flip_y = (-1.0 if u < 0.5 else 1.0 for u in rng.random(2)) if a.flip else (1.0, 1.0)
        cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
        pixels = ((cos * flip_x, -sin * flip_y), (sin * flip_x, cos * flip_y))
        rows, cols = self.scaled_shape
        to_slice, from_patch = (
            (2 / cols, 2 / rows),
            (self.patch_size[1] / 2, self.patch_size[0] / 2),
        )
        shift = ((2 * centre[1] + 1) / cols - 1, (2 * centre[0] + 1) / rows - 1)
        return torch.tensor(
            [
                [to_slice[i] * pixels[i][j] * from_patch[j] for j in (0, 1)] + [shift[i]]
                for i in (0, 1)
            ],
            dtype=torch.float32,
        )

    def _intensity(self, rng: np.random.Generator) -> torch.Tensor:
        """(contrast, brightness): image * contrast + brightness."""
        a = self.augment.intensity
        if not a:
            return torch.tensor([1.0, 0.0])
        return torch.tensor(
            [rng.uniform(1 - a, 1 + a), rng.uniform(-a / 2, a / 2)], dtype=torch.float32
        )


# slices copied to the device (or scanned for nodules) at a time, so that the host never
# holds a second whole copy of the split
RESIDENT_CHUNK = 256


class ResidentSplit:
    """A training split held whole on the training device: ``images`` (n, rows, cols) float16
    and ``masks`` (n, rows, cols) bool, copied once from the packed arrays.

    With it no pixel passes through a loader worker or the host-to-device copy: a batch is a
    gather on the device. Measured: loader workers delivered ~1,800 whole 512 x 512 slices/s
    on a GPU host and did not scale past one worker, a third of what the GPU trains on; the
    paper's split is ~5 GB (float16 images, bool masks) on a 141 GB card."""

    def __init__(self, split: PackedSplit, device: torch.device):
        n, rows, cols = split.images.shape
        self.images = torch.empty((n, rows, cols), dtype=torch.float16, device=device)
        self.masks = torch.empty((n, rows, cols), dtype=torch.bool, device=device)
        for start in range(0, n, RESIDENT_CHUNK):
            part = slice(start, min(start + RESIDENT_CHUNK, n))
            self.images[part] = torch.from_numpy(np.array(split.images[part], dtype=np.float16))
            self.masks[part] = torch.from_numpy(np.asarray(split.masks[part]) > 0)

    def gather(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = index.to(self.images.device, non_blocking=True)
        # index_select, not images[index]: the CPU's advanced indexing of float16 was 10x
        # slower (7.5 against 0.7 ms for 16 slices of 512 x 512)
        return self.images.index_select(0, index), self.masks.index_select(0, index)


class ResidentSamples(TrainingSamples):
    """For ``(epoch, index)`` keys: ``(index, theta, intensity)``, the draws of
    ``TrainingSamples`` without the pixels, which a ``ResidentSplit`` holds on the device.

    The same generator draws the same numbers in the same order, from each slice's nodule
    pixels found once here instead of per sample, so a batch is bitwise the batch
    ``TrainingSamples`` gives (tests/training/test_augment.py)."""

    def __init__(self, split: PackedSplit, *args, **kwargs):
        super().__init__(split, *args, **kwargs)
        self.nodules = [
            np.flatnonzero(mask)
            for start in range(0, len(split), RESIDENT_CHUNK)
            for mask in np.asarray(split.masks[start : start + RESIDENT_CHUNK])
        ]

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        theta, intensity = self._draws(rng, lambda: self.nodules[index])
        return torch.tensor(index), theta, intensity


def augment_batch(
    batch,
    image_scale: float,
    patch_size: tuple[int, int],
    device: torch.device,
    channels_last: bool = False,
    resident: ResidentSplit | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A collated batch of ``TrainingSamples`` (or of ``ResidentSamples``, whose pixels
    ``resident`` holds) as the network's (images, masks), float32 (n, 1, *patch_size) on
    ``device``: one batched interpolation per tensor."""
    if resident is not None:
        index, *draws = batch
        batch = (*resident.gather(index), *draws)
    images, masks, theta, intensity = (t.to(device, non_blocking=True) for t in batch)
    images = scale_image(images[:, None].float(), image_scale)
    masks = scale_image(masks[:, None].float(), image_scale)  # covered fraction, thresholded below
    grid = F.affine_grid(theta, [len(images), 1, *patch_size], align_corners=False)
    images = F.grid_sample(
        images, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    masks = (F.grid_sample(masks, grid, mode="bilinear", align_corners=False) >= 0.5).float()
    images = images * intensity[:, 0, None, None, None] + intensity[:, 1, None, None, None]
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, masks


def training_loader(
    split: PackedSplit, seed: int, train, device: torch.device
) -> tuple[DataLoader, EpochSampler, ResidentSplit | None]:
    """A training job's loader of ``split`` (``train``: a TrainRun), its sampler, and the
    split held on ``device`` when ``train.resident_split`` (the loader then only draws each
    sample's random numbers, microseconds, in the job's own process; the same batches)."""
    resident = ResidentSplit(split, device) if train.resident_split else None
    samples = (ResidentSamples if resident else TrainingSamples)(
        split, seed, train.image_scale, train.patch_size, train.foreground_fraction, train.augment
    )
    sampler = EpochSampler(len(samples), seed)
    workers = 0 if resident else train.workers
    loader = DataLoader(
        samples,
        batch_size=train.batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda" and not resident,
        worker_init_fn=seed_worker,
        # Whole batches only: a last batch of one slice stops BAM's batch norm on its 1 x 1
        # map; the order is shuffled every epoch, so every slice still takes part.
        drop_last=len(samples) >= train.batch_size,
    )
    return loader, sampler, resident


def seed_worker(worker_id: int) -> None:
    """One thread per loader worker: the training process owns the cores."""
    torch.set_num_threads(1)
