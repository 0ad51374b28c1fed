"""Seed noise of the demo: how far apart do runs of one variant land when only the seed changes?

    python benchmarks/seeds.py                          # unet and rbcbam, seeds 2022-2024
    python benchmarks/seeds.py --variants cbam cbam_r --seeds 1 2 3 4 5 --jobs 2

Trains each variant with each seed at the config's settings (config.yaml: the demo) on the
packed dataset the workflow built (run `make run` or snakemake up to
results/dataset/packed first), evaluates it on the test split as `lidcseg evaluate` does,
and prints every run's pooled test DSC, then each variant's mean and sample sd over seeds
(the recipe's target: sd <= 0.05). A module effect smaller than about twice that sd cannot
be told from seed noise on one seed per variant (docs/training.md, "Decision log"). Runs
go ``--jobs`` at a time, one thread each, as the workflow runs them on a 2-core machine;
outputs go to a temporary folder unless ``--out`` names one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lidcseg.config import load  # noqa: E402

TARGET_SD = 0.05


def train_and_score(
    config_path: str, variant: str, seed: int, packed: str, nodules: list[str], out: str
) -> dict:
    """One run: `lidcseg train` then `lidcseg evaluate`, in this process."""
    from lidcseg.evaluation.evaluate import evaluate_model
    from lidcseg.training.train import TrainingJob, run_training

    config = load(config_path)
    out_dir = Path(out) / variant / f"seed{seed}"
    started = time.perf_counter()
    job = TrainingJob.for_variant(
        variant, seed, Path(packed), out_dir, config.models, config.train_run
    )
    summary = run_training(job)
    result = evaluate_model(
        out_dir / "model.pt",
        Path(packed),
        [Path(n) for n in nodules],
        out_dir.with_suffix(".json"),
        config.train_run,
        config.evaluate,
        config.execution.evaluate.batch_size,
    )
    return {
        "variant": variant,
        "seed": seed,
        "dsc": result.pooled["dsc"],
        "best_epoch": summary["best_epoch"],
        "seconds": time.perf_counter() - started,
    }


def spread(runs: list[dict]) -> dict[str, tuple[float, float]]:
    """variant -> (mean, sample sd) of the pooled test DSC over its seeds."""
    by_variant: dict[str, list[float]] = {}
    for run in runs:
        by_variant.setdefault(run["variant"], []).append(run["dsc"])
    return {
        v: (statistics.mean(d), statistics.stdev(d) if len(d) > 1 else float("nan"))
        for v, d in by_variant.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--packed", default="results/dataset/packed")
    parser.add_argument(
        "--nodules", default="results/masks", help="folder of the <patient>.nodules.csv tables"
    )
    parser.add_argument("--variants", nargs="+", default=["unet", "rbcbam"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2022, 2023, 2024])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--out", help="keep the models and metrics here (default: a temporary folder)"
    )
    parser.add_argument("--json", help="also write every run and the spreads to this file")
    args = parser.parse_args()
    packed = Path(args.packed)
    if not (packed / "dataset.json").is_file():
        sys.exit(
            f"{packed}: no packed dataset (run the workflow up to results/dataset/packed first)"
        )
    nodules = [str(p) for p in sorted(Path(args.nodules).glob("*.nodules.csv"))]
    with tempfile.TemporaryDirectory() as scratch, ProcessPoolExecutor(args.jobs) as pool:
        out = args.out or scratch
        futures = [
            pool.submit(train_and_score, args.config, v, s, str(packed), nodules, out)
            for v in args.variants
            for s in args.seeds
        ]
        runs = []
        for future in futures:
            runs.append(future.result())
            r = runs[-1]
            print(
                f"{r['variant']:>12} seed {r['seed']}: pooled test DSC {r['dsc']:.4f} "
                f"(best epoch {r['best_epoch']}, {r['seconds']:.0f} s)",
                flush=True,
            )
    print()
    for variant, (mean, sd) in spread(runs).items():
        verdict = "ok" if sd <= TARGET_SD else f"above the {TARGET_SD} target"
        print(
            f"{variant:>12}: mean {mean:.4f}, sd {sd:.4f} over {len(args.seeds)} seeds ({verdict})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "spread": spread(runs)}, indent=1))


if __name__ == "__main__":
    main()
