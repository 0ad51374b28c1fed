"""The report's methods table: where and how each model was trained and scored, as the jobs
themselves recorded it.

Execution settings (device, threads, loader workers, compile, deterministic kernels,
channels_last, the evaluation batch) never rerun a job (docs/configuration.md, "Recipe and
execution"), so the same results folder can hold models trained on different machines. Each
training job writes what it ran with into its ``train.json`` (beside its ``log.csv``) and each
evaluation job into its metrics file; this table shows them per run, so every number of
Tables 1-2 can be traced to the hardware that made it.
"""

from __future__ import annotations

from pathlib import Path

from lidcseg.core.metrics_file import MetricsFile, MetricsFileError
from lidcseg.io import read_json, write_text
from lidcseg.report import tables

TRAINING_KEYS = ("device", "threads", "workers", "compile", "deterministic", "channels_last", "amp")
EVALUATION_KEYS = ("device", "threads", "batch_size")


def methods_rows(metric_files: list[Path], logs: list[Path]) -> list[dict]:
    """One row per evaluated model: its variant and seed, the training job's execution (from
    the ``train.json`` beside the log of the same variant and seed) and the evaluation's."""
    training = {_run_of(log): _training_execution(log.parent / "train.json") for log in logs}
    rows = []
    for path in metric_files:
        metrics = MetricsFile.load(path)
        row = {"variant": metrics.variant, "seed": metrics.seed}
        ran = training.get((metrics.variant, metrics.seed), {})
        row.update({f"train_{key}": ran.get(key, "") for key in TRAINING_KEYS})
        row.update({f"eval_{key}": metrics.execution.get(key, "") for key in EVALUATION_KEYS})
        rows.append(row)
    return rows


def _run_of(log_csv: Path) -> tuple[str, int]:
    """(variant, seed) of ``results/models/<variant>/seed<k>/log.csv``."""
    return log_csv.parent.parent.name, int(log_csv.parent.name.removeprefix("seed"))


def _training_execution(train_json: Path) -> dict:
    summary = read_json(train_json)
    if not isinstance(summary, dict) or not isinstance(summary.get("execution"), dict):
        raise MetricsFileError(f"{train_json}: no execution record (rerun `lidcseg train` for it)")
    return summary["execution"]


def _spec() -> list[tuple[str, str]]:
    spec = [("Variant", "variant"), ("Seed", "seed")]
    spec += [(f"Training {key.replace('_', ' ')}", f"train_{key}") for key in TRAINING_KEYS]
    spec += [(f"Evaluation {key.replace('_', ' ')}", f"eval_{key}") for key in EVALUATION_KEYS]
    return spec


def write_methods(metric_files: list[Path], logs: list[Path], out_dir: Path) -> list[Path]:
    """``methods.md`` and ``methods.html``: the execution each run recorded."""
    rows = [{k: str(v) for k, v in row.items()} for row in methods_rows(metric_files, logs)]
    caption = (
        "Where and how each model ran: the execution settings its training job (train.json) "
        "and its evaluation job (metrics file) recorded. They do not change the weights beyond "
        "floating-point rounding at a given seed (docs/configuration.md)."
    )
    written = [out_dir / "methods.md", out_dir / "methods.html"]
    write_text(f"# Methods: execution\n\n{caption}\n\n{tables.markdown(rows, _spec())}", written[0])
    write_text(tables.html(rows, _spec(), caption), written[1])
    return written
