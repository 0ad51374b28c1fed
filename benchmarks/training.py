"""Training throughput: the data loader alone, the training step, and the full paper run's cost.

    python benchmarks/training.py                  # this machine, the config's settings
    python benchmarks/gpu_check.py                 # the prepared check for a GPU machine

Prints (1) ``loader images/s per worker`` for 512 x 512 slices: one loader worker slicing the
packed arrays and drawing each sample's augmentation (training/augment.py); the pixels are
augmented on the training device, measured as (2) ``augment images/s``; (2b) ``resident
split images/s``: what ``execution.train.resident_split`` delivers (the split held on the
device, each batch drawn and gathered there); (3) images/s of the configured
training step (``TrainingStep``: device augmentation, forward, loss, backward, update and
the weights' average, with the config's determinism) for each variant at the config's
crop; (4)
``train images/s (<variant>, 512)`` for full 512 x 512 slices with the paper's ResNet-34 at
batch 2 (``--paper-batch``), and the wall time that implies for the paper run. Needs the
packed dataset (run the workflow first) or uses a made-up one. The functions here are what
benchmarks/gpu_check.py measures with.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, default_collate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lidcseg.config import TrainConfig, load, run_variants  # noqa: E402
from lidcseg.core.runtime import memory_format, pick_device, seed_everything  # noqa: E402
from lidcseg.data.dataset.packed import PackedSplit  # noqa: E402
from lidcseg.models.registry import variants_from_config  # noqa: E402
from lidcseg.models.unet import build_model  # noqa: E402
from lidcseg.training.augment import (  # noqa: E402
    EpochSampler,
    ResidentSamples,
    ResidentSplit,
    TrainingSamples,
    augment_batch,
    seed_worker,
)
from lidcseg.training.averaging import WeightAverage  # noqa: E402
from lidcseg.training.schedule import make_optimizer  # noqa: E402
from lidcseg.training.train import TrainingStep  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PAPER_CONFIG = REPO / "workflow" / "configs" / "lidc-paper.yaml"
# the paper's split (docs/paper.md, "Data"); ours has ~6,000 training slices
PAPER_TRAIN, PAPER_VAL = 4944, 1236
PAPER_DECODER = (256, 128, 64, 32, 16)


def full_slices(t: TrainConfig, shape, **changes) -> TrainConfig:
    """``t`` on whole slices of ``shape`` at scale 1 (the paper's input), with ``changes``."""
    return dataclasses.replace(
        t, image_scale=1.0, patch_size=tuple(shape), foreground_fraction=0.0, **changes
    )


def samples_of(split: PackedSplit, t: TrainConfig) -> TrainingSamples:
    return TrainingSamples(split, 0, t.image_scale, t.patch_size, t.foreground_fraction, t.augment)


def loader_rate(
    split: PackedSplit, t: TrainConfig, workers: int, seconds: float = 3.0, pin_memory: bool = False
) -> float:
    """Images/s ``workers`` loader processes deliver
    (0: in this process, i.e. one worker's rate)."""
    samples = samples_of(split, t)
    sampler = EpochSampler(len(samples), 0)
    loader = DataLoader(
        samples,
        batch_size=t.batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        worker_init_fn=seed_worker,
        pin_memory=pin_memory,
    )
    seen, started, epoch = 0, None, 0
    while started is None or time.perf_counter() - started < seconds:
        sampler.set_epoch(epoch)
        for batch in loader:
            if started is None:  # the first batch pays for starting the workers
                started = time.perf_counter()
                continue
            seen += len(batch[0])
        epoch += 1
    return seen / (time.perf_counter() - started)


def one_batch(split: PackedSplit, t: TrainConfig, batch: int, device: torch.device):
    """A loader batch of ``batch`` samples (pinned when the device is CUDA)."""
    samples = samples_of(split, t)
    collated = default_collate([samples[(0, i % len(samples))] for i in range(batch)])
    return [x.pin_memory() for x in collated] if device.type == "cuda" else collated


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def augment_rate(
    split: PackedSplit, t: TrainConfig, device: torch.device, repeats: int = 10
) -> float:
    """Images/s of ``augment_batch`` on ``device`` (copy to the device included)."""
    batch = one_batch(split, t, t.batch_size, device)
    augment_batch(batch, t.image_scale, t.patch_size, device, t.channels_last)
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        augment_batch(batch, t.image_scale, t.patch_size, device, t.channels_last)
    _synchronize(device)
    return repeats * t.batch_size / (time.perf_counter() - start)


def build_step(variant, models: dict, split: PackedSplit, t: TrainConfig, device: torch.device):
    """(the training loop's ``TrainingStep`` for ``variant`` with random weights, one loader
    batch), seeded: what the rates and profiles time."""
    seed_everything(0, t.deterministic, t.threads)
    model = build_model(variant, {**models, "encoder_weights": None}).to(
        device, memory_format=memory_format(t.channels_last)
    )
    optimizer = make_optimizer(model.parameters(), t, fused=device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and t.amp == "fp16")
    # the weights' average is part of every training step, so of every figure
    average = WeightAverage(model, t.weight_average)
    step = TrainingStep(model.train(), optimizer, scaler, device, t, average)
    return step, one_batch(split, t, t.batch_size, device)


def step_rate(
    variant,
    models: dict,
    split: PackedSplit,
    t: TrainConfig,
    device: torch.device,
    steps: int = 10,
    warmup: int = 3,
) -> dict:
    """Images/s of ``TrainingStep`` (the training loop's step) on one loader batch, repeated;
    the host waits for the device only before and after the timed steps, as training does.
    Returns images/s, seconds of the first step (compilation, autotuning) and peak GPU GiB."""
    step, batch = build_step(variant, models, split, t, device)
    model = step.model
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    step(batch, 1e-4)
    _synchronize(device)
    first = time.perf_counter() - start
    # the first backward's gradients: where a compiled graph's NaN shows (CBAM's amax did)
    non_finite = [n for n, p in model.named_parameters() if not _finite(p.grad)]
    for _ in range(warmup - 1):
        step(batch, 1e-4)
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = step(batch, 1e-4)
    _synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    # a rate of a step that went non-finite is no rate to plan a run with: say so beside it
    return {
        "images_per_s": steps * t.batch_size / seconds,
        "first_step_s": first,
        "peak_gib": peak,
        "loss_finite": bool(torch.isfinite(loss)),
        "first_backward_non_finite": len(non_finite),
        "weight_average": t.weight_average,
    }


def _finite(tensor) -> bool:
    return tensor is None or bool(torch.isfinite(tensor).all())


def resident_rate(split: PackedSplit, t: TrainConfig, device: torch.device, seconds=3.0) -> float:
    """Images/s the resident split delivers on ``device`` (execution.train.resident_split):
    the loader's draws in this process, then the pixels gathered there; what the loader
    workers' rate is compared with (the augmentation after it is the same either way and
    measured by ``augment_rate``)."""
    resident = ResidentSplit(split, device)
    samples = ResidentSamples(
        split, 0, t.image_scale, t.patch_size, t.foreground_fraction, t.augment
    )
    sampler = EpochSampler(len(samples), 0)
    loader = DataLoader(samples, batch_size=t.batch_size, sampler=sampler)
    seen, started, epoch = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        sampler.set_epoch(epoch)
        for batch in loader:
            images, _ = resident.gather(batch[0])
            seen += len(images)
        epoch += 1
    _synchronize(device)
    return seen / (time.perf_counter() - started)


def paper_models(config) -> dict:
    return {**config.models.as_dict(), "encoder": "resnet34", "decoder_channels": PAPER_DECODER}


def paper_variants() -> tuple[int, int]:
    """(variants the paper config trains, of them with ASPP, which run at rbcbam's speed)."""
    models = load(REPO / "config.yaml", PAPER_CONFIG).models.as_dict()
    names = run_variants(models)
    return len(names), sum(bool(models["variants"][name].get("aspp")) for name in names)


def paper_hours(unet_rate: float, rbcbam_rate: float, epochs: int = 100, seeds: int = 1) -> float:
    """Hours of the paper run: variants without ASPP at unet's rate, with ASPP at rbcbam's;
    validation is forward-only, ~1/3 of a training step."""
    n_variants, n_aspp = paper_variants()
    images = epochs * seeds * (PAPER_TRAIN + PAPER_VAL / 3)
    return images * ((n_variants - n_aspp) / unet_rate + n_aspp / rbcbam_rate) / 3600


def packed_train(packed: Path, size: int = 512, per_patient: int = 20) -> PackedSplit:
    """The workflow's packed training split when its slices are ``size`` x ``size``, else a
    made-up one of that size."""
    if (packed / "train.images.npy").exists():
        split = PackedSplit(packed, "train")
        if split.images.shape[1:] == (size, size):
            return split
    from tests.support.packed import write_packed  # a made-up dataset when the workflow has not run

    return PackedSplit(
        write_packed(Path(tempfile.mkdtemp()), size=size, per_patient=per_patient), "train"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--packed", default="results/dataset/packed")
    parser.add_argument("--variants", nargs="+", default=["unet", "rbcbam"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--paper-batch", type=int, default=2)
    parser.add_argument("--paper-epochs", type=int, default=100)
    args = parser.parse_args()
    config = load(args.config)
    t = config.train_run
    seed_everything(0, t.deterministic, t.threads)
    device = pick_device(t.device)
    split = packed_train(Path(args.packed))
    variants = variants_from_config(config.models.variants)
    print(
        f"device: {device} "
        f"({torch.cuda.get_device_name() if device.type == 'cuda' else f'{t.threads} threads'}); "
        f"deterministic: {t.deterministic}; slices {tuple(split.images.shape[1:])}"
    )

    whole = full_slices(t, split.images.shape[1:])
    print(
        f"\nloader images/s per worker: {loader_rate(split, whole, workers=0):.0f} "
        f"({tuple(whole.patch_size)} slices, batch {t.batch_size})"
    )
    print(
        f"augment images/s ({device}, {tuple(whole.patch_size)}): "
        f"{augment_rate(split, whole, device):.0f}"
    )
    print(
        f"resident split images/s ({device}, draws + gather, "
        f"{tuple(whole.patch_size)}): {resident_rate(split, whole, device):.0f}"
    )

    print(
        f"\nconfigured step (scale {t.image_scale}, crops {tuple(t.patch_size)}, "
        f"batch {t.batch_size}, "
        f"amp {t.amp}; the weights' average included):\n| variant | images/s |\n|---|---:|"
    )
    for name in args.variants:
        rate = step_rate(variants[name], config.models.as_dict(), split, t, device, args.steps)[
            "images_per_s"
        ]
        print(f"| {name} | {rate:.1f} |")

    paper = full_slices(t, (512, 512), batch_size=args.paper_batch)
    print(f"\npaper size: 512 x 512, ResNet-34, batch {args.paper_batch}")
    rates = {}
    for name in ("unet", "rbcbam"):
        rates[name] = step_rate(
            variants[name],
            paper_models(config),
            split,
            paper,
            device,
            steps=max(2, args.steps // 2),
            warmup=1,
        )["images_per_s"]
        print(f"train images/s ({name}, 512): {rates[name]:.2f}")
    n_variants, n_aspp = paper_variants()
    print(
        f"\nestimated paper run: {n_variants} variants ({n_aspp} with ASPP) x "
        f"{args.paper_epochs} epochs x {PAPER_TRAIN} slices = "
        f"{paper_hours(rates['unet'], rates['rbcbam'], args.paper_epochs):.1f} h "
        f"of training on this device, one seed"
    )


if __name__ == "__main__":
    main()
