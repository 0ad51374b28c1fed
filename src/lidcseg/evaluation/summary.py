"""Test metrics gathered over seeds: one row per variant (what Tables 1-2 and `dvc metrics show` read).

A variant's figure is the mean of its seeds' pooled test metrics with the sample sd beside
it (empty with one seed), and the first seed's bootstrap interval.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from lidcseg.errors import LidcsegError
from lidcseg.io import write_json, write_rows


class MetricsFileError(LidcsegError):
    """A metrics file or nodule table that evaluation cannot use, named."""


SUMMARY_METRICS = ("dsc", "precision", "recall")


def summarize_runs(metric_files: list[Path]) -> list[dict]:
    """One row per variant: pooled test metrics as mean and sample sd over its seeds (sd is
    empty with one seed), the per-image mean DSC, and the first seed's bootstrap interval."""
    runs: dict[str, list[dict]] = {}
    for path in metric_files:
        result = read_metrics(path)
        runs.setdefault(result["variant"], []).append(result)
    rows = []
    for variant, results in runs.items():
        results.sort(key=lambda r: r["seed"])
        row = {
            "variant": variant,
            "seeds": " ".join(str(r["seed"]) for r in results),
            "slots": results[0]["slots"],
        }
        for metric in SUMMARY_METRICS:
            values = np.array([r["pooled"][metric] for r in results], float)
            row[metric] = float(np.mean(values))
            row[f"{metric}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else ""
            low, high = results[0]["pooled_ci"].get(metric, ("", ""))
            row[f"{metric}_low"], row[f"{metric}_high"] = low, high
        row["dsc_per_image"] = float(np.mean([r["per_image_mean"]["dsc"] for r in results]))
        # per-image precision both ways (metrics.per_image_mean), and how many slices differ
        row["precision_per_image"] = float(
            np.mean([r["per_image_mean"]["precision"] for r in results])
        )
        row["precision_per_image_empty_as_0"] = _mean_or_blank(
            [r["per_image_mean"].get("precision_empty_as_0") for r in results]
        )
        row["slices_without_prediction"] = _mean_or_blank(
            [r.get("slices_without_prediction") for r in results]
        )
        rows.append(row)
    return rows


def _mean_or_blank(values: list) -> float | str:
    """Mean over seeds of a figure that metrics files older than it lack ("" then)."""
    return "" if any(v is None for v in values) else float(np.mean(values))


def beside_path(metrics_json: Path, suffix: str) -> Path:
    """Where `lidcseg evaluate` puts a file beside ``metrics_json`` (``seed1.json`` ->
    ``seed1<suffix>``): the one naming rule its writer and its readers share."""
    return Path(metrics_json).with_name(Path(metrics_json).name.removesuffix(".json") + suffix)


def beside(metrics_json: Path, suffix: str) -> Path:
    """The file `lidcseg evaluate` wrote beside ``metrics_json``; a missing one raises, named."""
    path = beside_path(metrics_json, suffix)
    if not path.exists():
        raise MetricsFileError(
            f"{path}: missing (written by lidcseg evaluate beside {Path(metrics_json).name})"
        )
    return path


def read_metrics(path: Path) -> dict:
    """A metrics file of :func:`evaluate_model`; anything else raises, naming the file."""
    try:
        result = json.loads(Path(path).read_text())
        for key in ("variant", "slots", "seed", "pooled", "pooled_ci", "per_image_mean", "by_size"):
            result[key]  # noqa: B018  (presence check)
        return result
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise MetricsFileError(
            f"{path}: not a metrics file of lidcseg evaluate ({type(error).__name__}: {error})"
        ) from error


def summarize_to_files(metric_files: list[Path], out_csv: Path) -> list[dict]:
    """`lidcseg summarize`: the rows as CSV, and as JSON beside it for `dvc metrics show`:
    figures only, null (valid JSON) where a figure is undefined (no sd from one seed, no
    precision without a predicted pixel)."""
    rows = summarize_runs(metric_files)
    write_rows(rows, out_csv, [k for k in rows[0] if k != "slots"])
    write_json(
        {
            r["variant"]: {
                k: _json_number(v) for k, v in r.items() if k not in ("variant", "slots")
            }
            for r in rows
        },
        Path(out_csv).with_suffix(".json"),
    )
    return rows


def _json_number(value):
    return None if value == "" or (isinstance(value, float) and math.isnan(value)) else value
