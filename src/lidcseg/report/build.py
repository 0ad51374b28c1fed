"""`lidcseg report`: every table and figure of results/report/ from the evaluation outputs.

Inputs are the files of `lidcseg evaluate` (``<variant>/seed<k>.json`` and, beside each, its
``.nodules.csv`` and ``.predictions.npz``), the training logs (and the ``train.json`` beside
each, for the methods table), the readers' figures and the packed test split. Figure 3 and
the size plot use each variant's first seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lidcseg.core.metrics_file import MetricsFile, read_nodules, read_probability
from lidcseg.core.sizes import size_labels
from lidcseg.data.dataset.packed import PackedSplit
from lidcseg.io import staged_folder, write_rows, write_text
from lidcseg.report import figures, methods, tables
from lidcseg.report.paper import TABLE1, Slots

SIZE_FIELDS = (
    "variant",
    "size",
    "nodules",
    "detected",
    "dsc",
    "dsc_low",
    "dsc_high",
    "recall",
    "precision",
)


def build_report(
    metric_files: list[Path],
    logs: list[Path],
    packed_dir: Path,
    out_dir: Path,
    readers_json: Path | None,
    threshold: float,
    size_bins_mm: tuple[float, ...],
    external: list[Path],
    bootstrap: tuple[int, float],
) -> list[Path]:
    """Every file of the report into ``out_dir``, all together or (on an error) none;
    ``bootstrap``: resamples and confidence of the paired comparisons (config.yaml
    ``evaluate:``, as are ``threshold`` and ``size_bins_mm``)."""
    with staged_folder(out_dir) as staging:
        written = _build(
            metric_files,
            logs,
            packed_dir,
            staging,
            readers_json,
            threshold,
            size_bins_mm,
            external,
            bootstrap,
        )
    return [Path(out_dir) / path.relative_to(staging) for path in written]


def _build(
    metric_files,
    logs,
    packed_dir,
    out_dir: Path,
    readers_json,
    threshold,
    size_bins_mm,
    external,
    bootstrap,
) -> list[Path]:
    first = _first_seed(metric_files)
    tables.write_tables(metric_files, out_dir, readers_json, external, *bootstrap)
    by_size = {variant: metrics.by_size for variant, (_, metrics) in first.items()}
    _write_size_table(by_size, out_dir, size_bins_mm)
    written = figures.size_plot(by_size, out_dir / "dsc_by_size")
    written += figures.curves({_run_name(p): p for p in logs}, out_dir / "training_curves")
    written += methods.write_methods(metric_files, logs, out_dir)
    test = PackedSplit(packed_dir, "test")
    nodules = read_nodules(next(iter(first.values()))[0])
    picks = figures.pick_slices(test, nodules, size_bins_mm)
    write_rows(
        picks,
        out_dir / "figure3_slices.csv",
        ["size", "patient_id", "nodule", "diameter_mm", "slice", "index"],
    )
    pixel_mm = float(test.meta["spacing_mm"][0])
    written += figures.figure3(
        test, picks, _table1_predictions(first), threshold, pixel_mm, out_dir / "figure3"
    )
    return written


def _first_seed(metric_files: list[Path]) -> dict[str, tuple[Path, MetricsFile]]:
    """variant -> (path, contents) of its lowest seed's metrics file, each file read once."""
    chosen: dict[str, tuple[Path, MetricsFile]] = {}
    for path in metric_files:
        metrics = MetricsFile.load(path)
        if metrics.variant not in chosen or metrics.seed < chosen[metrics.variant][1].seed:
            chosen[metrics.variant] = (path, metrics)
    return chosen


def _table1_predictions(first: dict[str, tuple[Path, MetricsFile]]) -> dict[str, np.ndarray]:
    """Table 1's modules that were run, in the table's order: label -> uint8 probabilities."""
    by_slots = {Slots.of(metrics.slots): path for path, metrics in first.values()}
    return {
        row.label: read_probability(by_slots[row.slots])
        for row in TABLE1
        if row.slots in by_slots and not row.ours_only
    }


def _run_name(log_csv: Path) -> str:
    """results/models/<variant>/seed<k>/log.csv -> '<variant>'
    (with the seed when not the only one)."""
    return f"{log_csv.parent.parent.name} {log_csv.parent.name}"


def _write_size_table(
    by_size: dict[str, list[dict]], out_dir: Path, size_bins_mm: tuple[float, ...]
) -> None:
    rows = [
        {
            "variant": variant,
            **row,
            "dsc_low": row.get("dsc_ci", ["", ""])[0],
            "dsc_high": row.get("dsc_ci", ["", ""])[1],
        }
        for variant, table in by_size.items()
        for row in table
    ]
    write_rows(rows, out_dir / "dsc_by_size.csv", SIZE_FIELDS)
    labels = size_labels(size_bins_mm)
    lines = [
        "| variant | " + " | ".join(f"{lab} mm" for lab in labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for variant, table in by_size.items():
        cells = [
            f"{r['dsc']:.3f} ({r['detected']}/{r['nodules']})" if r["nodules"] else ""
            for r in table
        ]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    note = (
        "Pooled test DSC by nodule diameter; in brackets: nodules detected / nodules in the group."
    )
    write_text("\n".join(lines) + "\n\n" + note + "\n", out_dir / "dsc_by_size.md")
    cells = [
        {
            "variant": v,
            **{
                lab: f"{r['dsc']:.3f} ({r['detected']}/{r['nodules']})" if r["nodules"] else ""
                for lab, r in zip(labels, table)
            },
        }
        for v, table in by_size.items()
    ]
    spec = [("Variant", "variant")] + [(f"{lab} mm", lab) for lab in labels]
    write_text(tables.html(cells, spec, note), out_dir / "dsc_by_size.html")
