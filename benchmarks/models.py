"""Training-step speed and peak memory of every configured variant, relative to `unet`.

    python benchmarks/models.py [--size 512] [--batch 2] [--steps 3] [--variants unet rbcbam]

One forward + backward + SGD step per iteration at size x size, after one warm-up step.
Each variant runs in its own process, so the peak memory it reports is its own: the peak
resident set on CPU; torch.cuda.max_memory_allocated on a GPU, where the step runs under
bf16 autocast. Tensors are channels_last on both (on this CPU, dilated convolutions run
~1.6x faster that way). Prints figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(name: str, size: int, batch: int, steps: int) -> dict:
    import torch

    from lidcseg import config
    from lidcseg.models.registry import variants_from_config
    from lidcseg.models.unet import build_model

    models = config.load(REPO / "config.yaml").models.as_dict()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(0)
    model = build_model(
        variants_from_config(models["variants"])[name], models, encoder_weights=None
    ).to(device)
    model = model.to(memory_format=torch.channels_last)  # as training runs (CPU and GPU)
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, size, size, device=device)
    y = (torch.rand(batch, 1, size, size, device=device) > 0.9).float()
    x = x.to(memory_format=torch.channels_last)

    def step():
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        optimiser.step()

    step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "variant": name,
        "device": torch.cuda.get_device_name()
        if cuda
        else f"CPU ({torch.get_num_threads()} threads)",
        "step_s": seconds,
        "images_per_s": batch / seconds,
        "peak_mib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variants", nargs="*", help="default: every configured variant")
    parser.add_argument(
        "--one", help=argparse.SUPPRESS
    )  # internal: measure one variant, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.size, args.batch, args.steps)))
        return
    from lidcseg import config

    names = args.variants or list(config.load(REPO / "config.yaml").models.variants)
    rows = []
    for name in names:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                name,
                "--size",
                str(args.size),
                "--batch",
                str(args.batch),
                "--steps",
                str(args.steps),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"measured {name}", file=sys.stderr, flush=True)
    base = next((r for r in rows if r["variant"] == "unet"), rows[0])
    print(
        f"{rows[0]['device']}, {args.size} x {args.size}, batch {args.batch}, "
        "forward + backward + SGD step\n"
    )
    print("| variant | step (s) | images/s | step vs unet | peak memory (MiB) | memory vs unet |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['step_s']:.3f} | {r['images_per_s']:.2f} | "
            f"{r['step_s'] / base['step_s']:.2f} | "
            f"{r['peak_mib']:.0f} | {r['peak_mib'] / base['peak_mib']:.2f} |"
        )


if __name__ == "__main__":
    main()
