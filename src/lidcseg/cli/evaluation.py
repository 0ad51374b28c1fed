"""`evaluate`, `summarize` and `readers`: test metrics of a model, over seeds,
and of the readers."""

from __future__ import annotations

from pathlib import Path

from lidcseg.cli.base import command, execution_settings, log, sections

COMMANDS = ("evaluate", "summarize", "readers")


def add_commands(stages) -> None:
    p = command(
        stages,
        "evaluate",
        run_evaluate,
        "score a trained model (or external predictions) on the test split",
        "Predict PACKED_DIR's test split with MODEL and write OUT_JSON (pooled and per-image "
        "metrics, bootstrap intervals, the size table) with .images.csv, .nodules.csv and "
        ".predictions.npz beside it. MODEL may instead be a folder of predicted label images, "
        "<case>.png per test slice (nnU-Net's output for the export-nnunet dataset's imagesTs), "
        "scored the same way.",
        settings=("train", "evaluate"),
        execution=True,
    )
    p.add_argument(
        "model", type=Path, help="model.pt of lidcseg train, or a folder of predicted <case>.png"
    )
    p.add_argument(
        "--name", help="the row name of external predictions (default: the folder's name)"
    )
    p.add_argument("packed_dir", type=Path)
    p.add_argument("out_json", type=Path)
    p.add_argument(
        "--nodules", type=Path, nargs="+", required=True, help="nodule tables of the test patients"
    )
    p = command(
        stages,
        "summarize",
        run_summarize,
        "gather every variant's test metrics in one table",
        "Write OUT_CSV: one row per variant with its pooled metrics (mean and sd over seeds, "
        "interval of the first seed) from the METRICS files of lidcseg evaluate, and the same "
        "figures as JSON beside it (what `dvc metrics show` reads).",
    )
    p.add_argument("out_csv", type=Path)
    p.add_argument("metrics", type=Path, nargs="+")
    p = command(
        stages,
        "readers",
        run_readers,
        "score each radiologist against the other readers (test slices)",
        "Leave one reader out on PACKED_DIR's test slices: each reader's mask of a nodule against "
        "the consensus of its other readers, through the same painting and resampling as the "
        "ground truth; write OUT_JSON (pooled, interval, per-image mean) and the rows as .csv "
        "beside it.",
        settings=("annotate", "resample", "evaluate"),
    )
    p.add_argument("packed_dir", type=Path)
    p.add_argument("out_json", type=Path)
    p.add_argument(
        "--lidc-root",
        type=Path,
        required=True,
        help="the raw folder (<root>/<patient>/series.json)",
    )
    p.add_argument("--hu-dir", type=Path, required=True, help="convert's NIfTI files")
    p.add_argument("--resampled-dir", type=Path, required=True, help="resample's .grid.json files")


def run_evaluate(args) -> None:
    from lidcseg.config import TrainRun
    from lidcseg.evaluation.evaluate import evaluate_model, evaluate_predictions

    train, settings = sections(args)
    run = execution_settings(args)
    if args.model.is_dir():
        result = evaluate_predictions(
            args.model, args.packed_dir, args.nodules, args.out_json, settings, args.name
        )
    else:
        result = evaluate_model(
            args.model,
            args.packed_dir,
            args.nodules,
            args.out_json,
            TrainRun.of(train, run.train),
            settings,
            run.evaluate.batch_size,
        )
    p, ci = result.pooled, result.pooled_ci
    log.info(
        "evaluate %s seed %d: pooled DSC %.4f (%.4f-%.4f), recall %.4f, precision %.4f",
        result.variant,
        result.seed,
        p["dsc"],
        *ci.get("dsc", (float("nan"),) * 2),
        p["recall"],
        p["precision"],
    )


def run_summarize(args) -> None:
    from lidcseg.evaluation.summary import summarize_to_files

    for row in summarize_to_files(args.metrics, args.out_csv):
        log.info("%-12s pooled DSC %.4f", row["variant"], row["dsc"])


def run_readers(args) -> None:
    from lidcseg.evaluation.readers import readers_to_files

    result = readers_to_files(
        args.packed_dir,
        args.lidc_root,
        args.hu_dir,
        args.resampled_dir,
        args.out_json,
        *sections(args),
    )
    log.info(
        "readers: pooled DSC %.4f over %d (nodule, reader) pairs",
        result.pooled["dsc"],
        result.pairs,
    )
