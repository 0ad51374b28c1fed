"""`train`: one variant with one seed, resumable."""

from __future__ import annotations

from pathlib import Path

from lidcseg.cli.base import SEED_MAX, command, execution_settings, log, sections, seed

COMMANDS = ("train",)


def add_commands(stages) -> None:
    p = command(
        stages,
        "train",
        run_train,
        "train one variant with one seed (resumes from its checkpoint)",
        "Train VARIANT on PACKED_DIR's train split, select on its val split, and write "
        "OUT_DIR/{model.pt, log.csv, train.json}. A rerun after a kill or SIGTERM resumes from "
        "OUT_DIR/checkpoint.pt.",
        settings=("models", "train"),
        execution=True,
    )
    p.add_argument("packed_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--variant", required=True)
    p.add_argument("--seed", type=seed, required=True, help=f"0 to {SEED_MAX}")


def run_train(args) -> None:
    from lidcseg.config import TrainRun
    from lidcseg.training.train import TrainingJob, run_training

    models, train = sections(args)
    train = TrainRun.of(train, execution_settings(args).train)
    job = TrainingJob.for_variant(
        args.variant, args.seed, args.packed_dir, args.out_dir, models, train
    )
    summary = run_training(job)
    log.info(
        "train %s seed %d: best val DSC %.4f at epoch %d of %d (%.1f images/s)",
        args.variant,
        args.seed,
        summary["best_val_dsc"],
        summary["best_epoch"],
        summary["epochs_run"],
        summary["images_per_s"],
    )
