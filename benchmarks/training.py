"""Training throughput: the data loader alone, the model step, and the full paper run's cost.

    python benchmarks/training.py                       # the config's settings, this machine
    python benchmarks/training.py --paper-batch 16      # on a GPU machine (bf16, channels_last)

Prints (1) images/s the loader delivers (TrainingSamples + DataLoader with the configured
workers, no model), (2) images/s a training step consumes for each variant with the
config's settings, and the ratio (target: loader >= 3x the model), (3) images/s of full
512 x 512 slices (the paper's size) for unet and rbcbam, and the wall time that implies for
the paper run: workflow/configs/lidc-paper.yaml's variants x epochs x 4,944 training
slices (+ 1,236 validation slices forward-only). Needs the packed dataset (run the workflow
first) or uses a made-up one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lidcseg.config import load, run_variants  # noqa: E402
from lidcseg.data.dataset.packed import PackedSplit  # noqa: E402
from lidcseg.training.augment import EpochSampler, TrainingSamples, seed_worker  # noqa: E402
from lidcseg.training.losses import dice_bce_loss  # noqa: E402
from lidcseg.models.registry import variants_from_config  # noqa: E402
from lidcseg.models.unet import build_model  # noqa: E402
from lidcseg.training.runtime import autocast, memory_format, pick_device  # noqa: E402

PAPER_TRAIN, PAPER_VAL = 4944, 1236
PAPER_CONFIG = Path(__file__).resolve().parents[1] / "workflow" / "configs" / "lidc-paper.yaml"


def loader_rate(split: PackedSplit, config, workers: int, batches: int) -> float:
    t = config.train
    samples = TrainingSamples(split, 0, t.image_scale, t.patch_size, t.foreground_fraction, t.augment)
    sampler = EpochSampler(len(samples), 0)
    loader = DataLoader(samples, batch_size=t.batch_size, sampler=sampler, num_workers=workers,
                        persistent_workers=workers > 0, worker_init_fn=seed_worker)
    seen, started, epoch = 0, None, 0
    while seen < batches * t.batch_size:
        sampler.set_epoch(epoch)
        for images, _ in loader:
            if started is None:  # the first batch pays for starting the workers
                started, seen = time.perf_counter(), 0
                continue
            seen += len(images)
        epoch += 1
    return seen / (time.perf_counter() - started)


def step_rate(variant, models: dict, shape: tuple[int, int], batch: int, steps: int, device, amp: str,
              channels_last: bool) -> tuple[float, float]:
    """Median images/s of forward + backward + Adam step, and peak CUDA memory (GiB)."""
    model = build_model(variant, models, encoder_weights=None).to(device, memory_format=memory_format(channels_last))
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    images = torch.rand(batch, 1, *shape, device=device).to(memory_format=memory_format(channels_last))
    masks = (torch.rand(batch, 1, *shape, device=device) > 0.99).float()
    times = []
    for i in range(steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast(device, amp):
            logits = model(images)
        loss = dice_bce_loss(logits.float(), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return batch / statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--packed", default="results/dataset/packed")
    parser.add_argument("--variants", nargs="+", default=["unet", "rbcbam"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--paper-batch", type=int, default=None, help="default: 16 on CUDA, 2 on the CPU")
    parser.add_argument("--paper-epochs", type=int, default=100)
    args = parser.parse_args()
    config = load(args.config)
    t = config.train
    torch.set_num_threads(t.threads)
    device = pick_device(t.device)
    split = _packed_train(Path(args.packed))
    variants = variants_from_config(config.models.variants)
    print(f"device: {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'})")

    loader = loader_rate(split, config, t.workers, batches=30)
    print(f"\nloader: {loader:.0f} images/s ({t.workers} workers; scale {t.image_scale}, crops {t.patch_size})")
    print("\n| variant | step images/s (config settings) | loader / model |\n|---|---:|---:|")
    for name in args.variants:
        rate, _ = step_rate(variants[name], config.models.as_dict(), t.patch_size, t.batch_size, args.steps,
                            device, t.amp, t.channels_last)
        print(f"| {name} | {rate:.1f} | {loader / rate:.1f}x |")

    paper_batch = args.paper_batch or (16 if device.type == "cuda" else 2)
    paper_models = {**config.models.as_dict(), "encoder": "resnet34", "decoder_channels": (256, 128, 64, 32, 16)}
    print(f"\npaper size: 512 x 512, ResNet-34, batch {paper_batch}, amp {t.amp if device.type == 'cuda' else 'none'}")
    print("| variant | images/s | peak GPU memory (GiB) |\n|---|---:|---:|")
    rates = {}
    for name in ("unet", "rbcbam"):
        rates[name], peak = step_rate(variants[name], paper_models, (512, 512), paper_batch, args.steps, device,
                                      t.amp, t.channels_last)
        print(f"| {name} | {rates[name]:.2f} | {peak:.1f} |")
    _paper_estimate(rates, args.paper_epochs)


def _paper_variants() -> tuple[int, int]:
    """(variants the paper config trains, of them with ASPP, which run at rbcbam's speed)."""
    models = load(PAPER_CONFIG.parents[2] / "config.yaml", PAPER_CONFIG).models.as_dict()
    names = run_variants(models)
    return len(names), sum(bool(models["variants"][name].get("aspp")) for name in names)


def _paper_estimate(rates: dict, epochs: int) -> None:
    """Variants without ASPP at unet's speed, with ASPP at rbcbam's; validation ~1/3 of a step."""
    n_variants, n_aspp = _paper_variants()
    hours = 0.0
    for rate, count in ((rates["unet"], n_variants - n_aspp), (rates["rbcbam"], n_aspp)):
        hours += count * epochs * (PAPER_TRAIN + PAPER_VAL / 3) / rate / 3600
    print(f"\nestimated paper run: {n_variants} variants ({n_aspp} with ASPP) x {epochs} epochs x {PAPER_TRAIN} "
          f"slices = {hours:.1f} h of training on this device")


def _packed_train(packed: Path) -> PackedSplit:
    if (packed / "train.images.npy").exists():
        return PackedSplit(packed, "train")
    from tests.support.packed import write_packed  # a made-up dataset when the workflow has not run

    root = Path(tempfile.mkdtemp())
    return PackedSplit(write_packed(root, size=512, per_patient=20), "train")


if __name__ == "__main__":
    main()
