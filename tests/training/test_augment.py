"""Training samples: the crop/augment transform (drawn per sample, applied per batch on the
device), nodule-centred crops, and (seed, epoch, index) determinism whatever the number of
loader workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from lidcseg.config import AugmentConfig
from lidcseg.core.scaling import scale_image, scale_mask, scaled_size
from lidcseg.data.dataset.packed import PackedSplit
from lidcseg.training.augment import (
    EpochSampler,
    ResidentSamples,
    ResidentSplit,
    TrainingSamples,
    augment_batch,
)
from tests.support.packed import write_packed

NO_AUGMENT = AugmentConfig(flip=False, rotate_deg=0, scale=(1.0, 1.0), intensity=0)
AUGMENT = AugmentConfig(flip=True, rotate_deg=15, scale=(0.9, 1.1), intensity=0.1)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return PackedSplit(write_packed(tmp_path_factory.mktemp("packed")), "train")


def sample(samples: TrainingSamples, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's (image, mask) of one key: the loader's draws, augmented as a batch of one."""
    images, masks = augment_batch(
        default_collate([samples[key]]),
        samples.image_scale,
        samples.patch_size,
        torch.device("cpu"),
    )
    return images[0], masks[0]


def test_whole_slice_without_augmentation_is_the_slice(split):
    samples = TrainingSamples(split, 0, 1.0, (64, 64), 0.0, NO_AUGMENT)
    image, mask = sample(samples, (0, 3))
    expected_image, expected_mask = split[3]
    assert image.shape == mask.shape == (1, 64, 64)
    torch.testing.assert_close(image[0], torch.from_numpy(expected_image), atol=1e-5, rtol=0)
    assert torch.equal(mask[0], torch.from_numpy(expected_mask).float())


def test_scaled_slice_is_area_averaged_and_mask_thresholded(split):
    samples = TrainingSamples(split, 0, 0.5, (32, 32), 0.0, NO_AUGMENT)
    image, mask = sample(samples, (0, 1))
    full_image, full_mask = split[1]
    expected = full_image.reshape(32, 2, 32, 2).mean(axis=(1, 3))
    torch.testing.assert_close(image[0], torch.from_numpy(expected), atol=1e-5, rtol=0)
    covered = full_mask.reshape(32, 2, 32, 2).mean(axis=(1, 3)) >= 0.5
    assert torch.equal(mask[0].bool(), torch.from_numpy(covered))


def test_foreground_crops_show_the_nodule(split):
    samples = TrainingSamples(split, 0, 1.0, (32, 32), 1.0, AUGMENT)
    hits = [
        sample(samples, (epoch, i))[1].sum() > 0 for epoch in range(3) for i in range(len(split))
    ]
    assert np.mean(hits) >= 0.9  # centred within a third of the crop of a nodule pixel


def test_a_sample_depends_only_on_seed_epoch_and_index(split):
    samples = TrainingSamples(split, 5, 1.0, (32, 32), 0.5, AUGMENT)
    a, b = sample(samples, (2, 7)), sample(samples, (2, 7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(sample(samples, (3, 7))[0], a[0])
    assert not torch.equal(
        sample(TrainingSamples(split, 6, 1.0, (32, 32), 0.5, AUGMENT), (2, 7))[0], a[0]
    )


def test_workers_give_the_same_batches(split):
    def batches(workers):
        samples = TrainingSamples(split, 1, 1.0, (32, 32), 0.5, AUGMENT)
        sampler = EpochSampler(len(samples), 1)
        sampler.set_epoch(4, start=4)
        return list(DataLoader(samples, batch_size=4, sampler=sampler, num_workers=workers))

    for a, b in zip(batches(0), batches(2), strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_sampler_resumes_inside_an_epoch():
    sampler = EpochSampler(10, 3)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.set_epoch(2, start=4)
    assert list(sampler) == whole[4:] and len(sampler) == 6
    assert sorted(i for _, i in whole) == list(range(10)) and {e for e, _ in whole} == {2}


def test_scaling_helpers():
    assert scaled_size((512, 512), 0.5) == (256, 256) and scaled_size((5, 3), 0.1) == (1, 1)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :1] = 1  # half of the top-left 2 x 2 block
    assert scale_mask(mask, 0.5)[0, 0, 0, 0] == 1 and scale_mask(mask, 0.5).sum() == 1
    assert torch.equal(scale_image(mask, 1), mask)


def test_loader_hands_over_the_packed_slice_untouched(split):
    """Workers only slice the arrays: float16 image and boolean mask as stored, plus the draws."""
    image, mask, theta, intensity = TrainingSamples(split, 0, 0.5, (32, 32), 0.5, AUGMENT)[(1, 2)]
    assert image.dtype == torch.float16 and torch.equal(
        image, torch.from_numpy(np.array(split.images[2]))
    )
    assert mask.dtype == torch.bool and torch.equal(
        mask, torch.from_numpy(np.asarray(split.masks[2]) > 0)
    )
    assert theta.shape == (2, 3) and intensity.shape == (2,)


def test_a_batch_is_its_samples_one_by_one(split):
    """Batched augmentation equals augmenting each sample alone (nothing mixes across a batch)."""
    samples = TrainingSamples(split, 3, 0.5, (24, 24), 0.5, AUGMENT)
    keys = [(1, i) for i in range(6)]
    images, masks = augment_batch(
        default_collate([samples[k] for k in keys]),
        0.5,
        (24, 24),
        torch.device("cpu"),
        channels_last=True,
    )
    assert images.shape == masks.shape == (6, 1, 24, 24) and images.is_contiguous(
        memory_format=torch.channels_last
    )
    for i, key in enumerate(keys):
        image, mask = sample(samples, key)
        torch.testing.assert_close(images[i], image, atol=1e-6, rtol=0)
        assert torch.equal(masks[i], mask)


@pytest.mark.parametrize("foreground_fraction", [0.0, 0.9])
def test_a_resident_split_gives_bitwise_the_same_batches(split, foreground_fraction):
    """execution.train.resident_split: the loader draws only (index, theta, intensity) and the
    pixels are gathered from the split held on the device; the network sees the same batch."""
    args = (split, 3, 0.5, (32, 32), foreground_fraction, AUGMENT)
    keys = [(2, i) for i in (5, 0, 11, 7, 3)]
    loaded = default_collate([TrainingSamples(*args)[k] for k in keys])
    drawn = default_collate([ResidentSamples(*args)[k] for k in keys])
    resident = ResidentSplit(split, torch.device("cpu"))
    cpu = torch.device("cpu")
    expected = augment_batch(loaded, 0.5, (32, 32), cpu)
    got = augment_batch(drawn, 0.5, (32, 32), cpu, resident=resident)
    for name, a, b in zip(("images", "masks"), expected, got):
        assert torch.equal(a, b), name
    assert resident.images.dtype == torch.float16 and resident.masks.dtype == torch.bool
