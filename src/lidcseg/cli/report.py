"""`report`: the paper's Tables 1-2 and Figure 3, and what goes past them."""

from __future__ import annotations

from pathlib import Path

from lidcseg.cli.base import command, log, sections

COMMANDS = ("report",)


def add_commands(stages) -> None:
    p = command(
        stages,
        "report",
        run_report,
        "render Tables 1-2, Figure 3, the size table and training curves",
        "Write OUT_DIR/{table1,table2}.{md,csv,tex}, figure3.{png,pdf}, "
        "dsc_by_size.{md,csv,png,pdf} "
        "training_curves.{png,pdf} and methods.{md,html} from the METRICS files of "
        "lidcseg evaluate (with their "
        ".images.csv, .nodules.csv and .predictions.npz), the training logs and "
        "the packed test split.",
        settings=("evaluate",),
    )
    p.add_argument("out_dir", type=Path)
    p.add_argument("--metrics", type=Path, nargs="+", required=True)
    p.add_argument(
        "--logs",
        type=Path,
        nargs="+",
        required=True,
        help="the training jobs' log.csv (their train.json beside them)",
    )
    p.add_argument("--packed-dir", type=Path, required=True)
    p.add_argument(
        "--readers", type=Path, help="lidcseg readers' JSON: adds the readers row to Table 1"
    )
    p.add_argument(
        "--external",
        type=Path,
        nargs="+",
        default=[],
        help="lidcseg evaluate's JSON of external predictions (nnU-Net's, say): a Table 1 row each",
    )


def run_report(args) -> None:
    from lidcseg.report.build import build_report

    (settings,) = sections(args)
    written = build_report(
        args.metrics,
        args.logs,
        args.packed_dir,
        args.out_dir,
        args.readers,
        settings.threshold,
        settings.size_bins_mm,
        args.external,
        (settings.bootstrap_resamples, settings.confidence),
    )
    log.info("report: %d figures in %s", len(written), args.out_dir)
