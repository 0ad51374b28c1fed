"""Test metrics gathered over seeds: one row per variant
(what Tables 1-2 and `dvc metrics show` read).

A variant's figure is the mean of its seeds' pooled test metrics with the sample sd beside
it (empty with one seed), and the first seed's bootstrap interval.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lidcseg.core.metrics_file import MetricsFile, MetricsFileError
from lidcseg.io import write_json, write_rows

SUMMARY_METRICS = ("dsc", "precision", "recall")


def summarize_runs(metric_files: list[Path]) -> list[dict]:
    """One row per variant: pooled test metrics as mean and sample sd over its seeds (sd is
    empty with one seed), the per-image mean DSC, and the first seed's bootstrap interval."""
    runs: dict[str, list[MetricsFile]] = {}
    seen: dict[tuple[str, int], Path] = {}
    for path in metric_files:
        result = MetricsFile.load(path)
        _once(seen, (result.variant, result.seed), Path(path))
        runs.setdefault(result.variant, []).append(result)
    rows = []
    for variant, results in runs.items():
        results.sort(key=lambda r: r.seed)
        row = {
            "variant": variant,
            "seeds": " ".join(str(r.seed) for r in results),
            "slots": results[0].slots,
        }
        for metric in SUMMARY_METRICS:
            values = np.array([r.pooled[metric] for r in results], float)
            row[metric] = float(np.mean(values))
            row[f"{metric}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else ""
            # no interval without a test slice
            low, high = results[0].pooled_ci.get(metric, ("", ""))
            row[f"{metric}_low"], row[f"{metric}_high"] = low, high
        row["dsc_per_image"] = _mean([r.per_image_mean["dsc"] for r in results])
        # per-image precision both ways (metrics.per_image_mean), and how many slices differ
        row["precision_per_image"] = _mean([r.per_image_mean["precision"] for r in results])
        row["precision_per_image_empty_as_0"] = _mean(
            [r.per_image_mean["precision_empty_as_0"] for r in results]
        )
        row["slices_without_prediction"] = _mean([r.slices_without_prediction for r in results])
        rows.append(row)
    return rows


def _once(seen: dict, run: tuple[str, int], path: Path) -> None:
    """Each (variant, seed) once: the same file given twice, or a copy under another name,
    would pass for two seeds (a mean over one seed counted twice, an sd of 0)."""
    first = seen.setdefault(run, path)
    if first is not path:
        again = "given twice" if first.resolve() == path.resolve() else f"as {first} is"
        raise MetricsFileError(
            f"{path}: metrics of {run[0]} seed {run[1]}, {again}; each seed's file once"
        )


def _mean(values: list) -> float:
    return float(np.mean(values))


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
