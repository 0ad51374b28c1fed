"""The prepared GPU check: every figure the README's GPU table holds, from one run.

    python benchmarks/gpu_check.py --out gpu_check.json [--packed results/dataset/packed]

On a CUDA machine (target: done within 8 minutes, --budget-s) it measures and prints:

1. the data loader alone at 512 x 512 (one worker, and the paper config's workers), the
   resident split's delivery (``execution.train.resident_split``: draws in the job's
   process, pixels gathered on the GPU) and the batched augmentation on the GPU;
2. training images/s, peak GPU memory and non-finite gradients after the first backward of
   ``unet`` and ``rbcbam`` at 512 x 512 with the paper's ResNet-34 in bf16, channels_last,
   every step with the weights' average: the batch sweep 16, 32, 64 eager, batch 16 with
   deterministic algorithms (``warn_only=False``: an op without a deterministic kernel
   fails the row, naming it), and compiled (``torch.compile``) at 16 and 32; the compiled
   rows run last and are skipped, saying so, when the budget cannot hold them;
3. a real ``lidcseg train`` of the demo (config.yaml's settings, 2 epochs) on CUDA, SIGKILLed
   once its first epoch's checkpoint exists and rerun: it must resume and finish; on the GPU
   an uninterrupted run beside it gives the weight difference resuming makes there;
4. the paper run's estimated wall time from those rates (one seed and the config's three);
5. where the time goes (benchmarks/where_time_goes.py): a ``torch.profiler`` table by kernel
   family (conv, batch norm, elementwise, reduction, upsampling, index/sort, copy, matmul)
   for unet, rbcbam and deterministic unet, and forward + backward of the decoder's x2
   upsampling (``F.interpolate`` against core.upsampling's exact x2, deterministic or not)
   and of the RB fusion's two exact forms at the stem skip's size;
6. which of the GPU goals those figures meet (unet >= 1,000 images/s at its best batch,
   deterministic within 1.5x of fast, rbcbam within 1.5x of unet, compiled rbcbam finite,
   the paper run's three seeds in <= 6 h).

Without CUDA the same code paths run at a tiny size (64 x 64 slices, a slim ResNet-18,
batch 2 and 4, no compile) in well under a minute, and the JSON says that no GPU figure was
taken (``"gpu": null``); tests/benchmarks/test_gpu_check.py runs it that way so it cannot rot.
Everything goes to --out as one JSON file as well as to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from training import (
    REPO,
    augment_rate,
    build_step,
    full_slices,
    loader_rate,
    packed_train,
    paper_hours,  # noqa: E402
    paper_models,
    paper_variants,
    resident_rate,
    step_rate,
)
from where_time_goes import family_table, fusion_forms, profile_step, upsampling_forms

from lidcseg.config import load  # noqa: E402
from lidcseg.models.registry import variants_from_config  # noqa: E402

PAPER_WORKERS = 6  # workflow/configs/lidc-paper.yaml's execution.train.workers


@dataclasses.dataclass
class Plan:
    """What to measure: the GPU's sizes, or the tiny ones that keep the code paths alive."""

    size: int
    batches: tuple[int, ...]  # the sweep; the first is the paper config's batch
    models: dict
    amp: str
    compile: bool
    workers: int
    steps: int
    skip_shape: tuple[int, int, int, int]  # the stem skip's feature at the first batch


def plan_for(cuda: bool, config) -> Plan:
    if cuda:
        models, stem_skip = paper_models(config), (16, 64, 256, 256)
        return Plan(512, (16, 32, 64), models, "bf16", True, PAPER_WORKERS, 20, stem_skip)
    tiny = {**config.models.as_dict(), "decoder_channels": (16, 16, 16, 16, 8)}
    return Plan(64, (2, 4), tiny, "none", False, 0, 2, (2, 8, 16, 16))


class Budget:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.monotonic(), seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


def measure_loader(split, t, plan: Plan, device) -> dict:
    whole = full_slices(t, (plan.size, plan.size), batch_size=plan.batches[0], channels_last=True)
    result = {
        "slices": [plan.size, plan.size],
        "batch": whole.batch_size,
        "per_worker_images_per_s": loader_rate(
            split, whole, workers=0, seconds=2.0 if plan.workers else 0.5
        ),
        "augment_images_per_s": augment_rate(split, whole, device),
        # execution.train.resident_split: draws in the job's process, pixels gathered on the
        # device; the paper config's way (target: >= 3,000 images/s)
        "resident_images_per_s": resident_rate(
            split, whole, device, seconds=3.0 if plan.workers else 0.5
        ),
    }
    if plan.workers:
        result["workers"] = plan.workers
        result["images_per_s"] = loader_rate(
            split, whole, plan.workers, seconds=4.0, pin_memory=device.type == "cuda"
        )
    return result


def step_config(config, plan: Plan):
    return full_slices(config.train_run, (plan.size, plan.size), amp=plan.amp, channels_last=True)


def measure_steps(split, config, plan: Plan, device, budget: Budget) -> list[dict]:
    """Eager rows first (the batch sweep without deterministic algorithms, then the first
    batch with them), compiled rows while time lasts. Every step includes the weights'
    average (benchmarks/training.py)."""
    variants = variants_from_config(config.models.variants)
    base = step_config(config, plan)
    models = ("unet", "rbcbam")
    runs = [(name, batch, False, False) for batch in plan.batches for name in models]
    runs += [(name, plan.batches[0], True, False) for name in models]
    if plan.compile:
        runs += [(name, batch, False, True) for batch in plan.batches[:2] for name in models]
    rows, compile_cost = [], 0.0
    for name, batch, deterministic, compiled in runs:
        row = {"variant": name, "batch": batch, "deterministic": deterministic, "compile": compiled}
        if compiled and budget.left() < max(120.0, 1.5 * compile_cost):
            rows.append({**row, "skipped": f"{budget.left():.0f} s of the budget left"})
            print(f"  {name} batch {batch} compiled: skipped (budget)", flush=True)
            continue
        t = dataclasses.replace(
            base, batch_size=batch, deterministic=deterministic, compile=compiled
        )
        torch._dynamo.reset()
        measured = step_rate(variants[name], plan.models, split, t, device, steps=plan.steps)
        compile_cost = max(compile_cost, measured["first_step_s"]) if compiled else compile_cost
        rows.append({**row, **measured})
        print(
            f"  {name} batch {batch} deterministic={deterministic} compile={compiled}: "
            f"{measured['images_per_s']:.1f} images/s, "
            f"first step {measured['first_step_s']:.1f} s, "
            f"peak GPU memory {_gib(measured['peak_gib'])}, "
            f"non-finite gradients after the first backward: "
            f"{measured['first_backward_non_finite']}"
            f"{'' if measured['loss_finite'] else ', LOSS NOT FINITE'}",
            flush=True,
        )
    return rows


def measure_where_time_goes(split, config, plan: Plan, device, budget: Budget) -> dict:
    """The profiler's table by kernel family for unet and rbcbam (eager, the first batch,
    without and, for unet, with deterministic algorithms), and the micro-benchmarks of the
    upsampling and fusion forms; each skipped, saying so, once the budget is spent."""
    variants = variants_from_config(config.models.variants)
    out = {}
    for name, deterministic in (("unet", False), ("rbcbam", False), ("unet", True)):
        label = f"{name}{' deterministic' if deterministic else ''}"
        if budget.left() < 30:
            out[label] = {"skipped": f"{budget.left():.0f} s of the budget left"}
            continue
        t = dataclasses.replace(
            step_config(config, plan), batch_size=plan.batches[0], deterministic=deterministic
        )
        step, batch = build_step(variants[name], plan.models, split, t, device)
        for _ in range(3):  # warm-up: cuDNN's choices, the allocator
            step(batch, 1e-4)
        out[label] = profile_step(step, batch, device)
        print(family_table(label, out[label]), flush=True)
    torch.use_deterministic_algorithms(False)
    if budget.left() >= 20:
        out["upsampling_forms"] = upsampling_forms(plan.skip_shape, device, plan.amp)
        out["fusion_forms"] = fusion_forms(plan.skip_shape, device, plan.amp)
        print("upsampling forms:", json.dumps(out["upsampling_forms"]), flush=True)
        print("fusion forms:", json.dumps(out["fusion_forms"]), flush=True)
    return out


def goals(report: dict) -> dict:
    """Which of the GPU goals the figures meet: True or False per goal, None where its figure
    was not measured; no verdict at all without a GPU (the tiny sizes say nothing)."""
    if report["gpu"] is None:
        return {"measured": None}
    steps = report["steps"]
    first = steps[0]["batch"]
    unet_best = _best(steps, "unet", compile=False)
    unet_fast = _best(steps, "unet", batch=first, compile=False, deterministic=False)
    unet_deterministic = _best(steps, "unet", batch=first, deterministic=True)
    rbcbam_fast = _best(steps, "rbcbam", batch=first, compile=False, deterministic=False)
    compiled = [
        r for r in steps if r["variant"] == "rbcbam" and r["compile"] and "loss_finite" in r
    ]
    hours = report["paper_estimate"].get("hours_three_seeds_fastest")

    def verdict(*figures, holds):
        return None if any(f is None for f in figures) else bool(holds())

    return {
        "unet >= 1000 images/s at its best batch": verdict(
            unet_best, holds=lambda: unet_best >= 1000
        ),
        "deterministic within 1.5x of fast (unet)": verdict(
            unet_fast, unet_deterministic, holds=lambda: unet_fast / unet_deterministic <= 1.5
        ),
        "rbcbam within 1.5x of unet": verdict(
            unet_fast, rbcbam_fast, holds=lambda: unet_fast / rbcbam_fast <= 1.5
        ),
        "compiled rbcbam finite": verdict(
            compiled or None,
            holds=lambda: all(
                r["loss_finite"] and not r["first_backward_non_finite"] for r in compiled
            ),
        ),
        "paper run (3 seeds) <= 6 h": verdict(hours, holds=lambda: hours <= 6),
    }


def _best(steps: list[dict], name: str, **match) -> float | None:
    """The highest finite images/s of ``name``'s rows matching ``match``, or None."""
    rates = [
        r["images_per_s"]
        for r in steps
        if r["variant"] == name
        and r.get("loss_finite")
        and all(r[k] == v for k, v in match.items())
    ]
    return max(rates) if rates else None


def _gib(value) -> str:
    return "n/a" if value is None else f"{value:.1f} GiB"


def demo_train(packed: Path, cuda: bool, work: Path) -> dict:
    """`lidcseg train` of the demo on this device: SIGKILL after epoch 1's checkpoint, rerun to
    resume; an uninterrupted run for comparison."""
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    data["train"].update(epochs=2, validate_every=1)
    data["execution"]["train"]["device"] = "cuda" if cuda else "cpu"
    if not cuda:  # the tiny fallback: seconds per epoch
        data["models"]["decoder_channels"] = [16, 16, 16, 16, 8]
        data["train"].update(batch_size=4, image_scale=1.0, patch_size=[32, 32])
    settings = work / "settings.yaml"
    settings.write_text(yaml.safe_dump(data))

    def train(out: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lidcseg.cli",
                "train",
                str(packed),
                str(out),
                "--variant",
                "unet",
                "--seed",
                "2022",
                "--settings",
                str(settings),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    result, reference_err = {}, ""
    # on the CPU, tests/training/test_train.py shows resuming bitwise: no need to pay for it here
    if cuda:
        start = time.perf_counter()
        reference = train(work / "uninterrupted")
        reference_err = reference.communicate()[1]
        result = {
            "uninterrupted_s": time.perf_counter() - start,
            "uninterrupted_rc": reference.returncode,
        }
    killed_out = work / "killed"
    job = train(killed_out)
    while not (killed_out / "checkpoint.pt").exists() and job.poll() is None:
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.communicate()
    result["killed_before_model"] = not (killed_out / "model.pt").exists()
    rerun = train(killed_out)
    rerun_err = rerun.communicate()[1]
    result.update(resumed_rc=rerun.returncode, resumed="resuming" in rerun_err)
    if rerun.returncode or result.get("uninterrupted_rc"):
        result["stderr_tail"] = (rerun_err or reference_err)[-1500:]
        return result
    resumed = json.loads((killed_out / "train.json").read_text())
    result.update(
        device=resumed["device"],
        resumes=resumed["resumes"],
        epochs_run=resumed["epochs_run"],
        images_per_s=resumed["images_per_s"],
        best_val_dsc=resumed["best_val_dsc"],
        max_weight_difference=_weight_difference(work / "uninterrupted", killed_out)
        if cuda
        else None,
    )
    return result


def _weight_difference(a: Path, b: Path) -> float:
    from lidcseg.core.model_file import load_weights_only

    wa, wb = (load_weights_only(p / "model.pt")["state_dict"] for p in (a, b))
    return max(
        float((wa[k].double() - wb[k].double()).abs().max())
        for k in wa
        if wa[k].is_floating_point()
    )


def estimate(rows: list[dict]) -> dict:
    """Hours of the paper run (one seed, 100 epochs)
    at the fastest measured setting of each kind."""

    n_variants, n_aspp = paper_variants()
    out = {"variants": n_variants, "with_aspp": n_aspp, "epochs": 100}
    for label, match in (
        ("eager_deterministic", {"compile": False, "deterministic": True}),
        ("eager", {"compile": False, "deterministic": False}),
        ("fastest", {}),
    ):
        unet, rbcbam = _best(rows, "unet", **match), _best(rows, "rbcbam", **match)
        out[f"hours_{label}"] = paper_hours(unet, rbcbam) if unet and rbcbam else None
    # the paper config trains three seeds (workflow/configs/lidc-paper.yaml)
    for label in ("eager_deterministic", "fastest"):
        hours = out[f"hours_{label}"]
        out[f"hours_three_seeds_{label}"] = 3 * hours if hours else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--packed", type=Path, default=REPO / "results" / "dataset" / "packed")
    parser.add_argument(
        "--budget-s", type=float, default=420.0, help="compiled rows are skipped past it"
    )
    args = parser.parse_args()
    budget = Budget(args.budget_s)
    config = load(REPO / "config.yaml")
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    plan = plan_for(cuda, config)
    if cuda:  # the check runs its determinism itself; cuBLAS reads this before its first call
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "cpu_cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(
        "GPU:",
        report["gpu"] or "none: no GPU figure is taken; tiny sizes keep the code paths tested",
        flush=True,
    )
    split = packed_train(args.packed, plan.size, per_patient=20 if cuda else 4)

    report["loader"] = measure_loader(split, config.train_run, plan, device)
    print(f"loader ({budget.elapsed():.0f} s):", json.dumps(report["loader"]), flush=True)
    with tempfile.TemporaryDirectory() as work:
        # the workflow's demo data where it is packed at 512 x 512, else the made-up set
        report["demo_train"] = demo_train(Path(split.images.filename).parent, cuda, Path(work))
    print(f"demo train ({budget.elapsed():.0f} s):", json.dumps(report["demo_train"]), flush=True)
    print("steps (512 x 512, ResNet-34):" if cuda else "steps (tiny):", flush=True)
    report["steps"] = measure_steps(split, config, plan, device, budget)
    report["paper_estimate"] = estimate(report["steps"])
    print("paper run:", json.dumps(report["paper_estimate"]), flush=True)
    report["where_time_goes"] = measure_where_time_goes(split, config, plan, device, budget)
    report["goals"] = goals(report)
    print("goals:", json.dumps(report["goals"]), flush=True)
    report["seconds"] = round(budget.elapsed(), 1)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"written {args.out} after {report['seconds']} s", flush=True)


if __name__ == "__main__":
    main()
