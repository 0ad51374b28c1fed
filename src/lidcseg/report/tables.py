"""Tables 1 and 2 of the paper, regenerated beside the paper's numbers, as Markdown, CSV and
LaTeX (booktabs).

Our figures are pooled over the test set (docs/paper.md, "Aggregation of the metrics": the
paper's DSC is the harmonic mean of its precision and recall, which pooled counts give)
with the 95 % patient bootstrap interval in brackets, "mean +- sd" over seeds when there are
several, and the per-image mean DSC beside them. The paper's value and our difference
(ours - paper) sit in adjacent columns. Rows are the paper's, in its order; rows marked
"(ours)" are not in it.

Is a module's effect real? Each row's pooled DSC minus CBAM's (Table 1: the module against
the attention it replaces; Table 2: against the all-off row) and minus the plain U-Net's,
seeds averaged, with the 95 % paired patient-bootstrap interval (evaluation/compare.py);
``*`` marks an interval that excludes 0.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from lidcseg.core.readers_file import ReadersFile
from lidcseg.evaluation.compare import PatientCounts, counts_by_variant, paired_difference
from lidcseg.evaluation.summary import summarize_runs
from lidcseg.io import write_text
from lidcseg.report.paper import ALL_OFF_AS_UNET, READERS_LABEL, TABLE1, TABLE2, PaperRow, Slots

METRICS = ("dsc", "recall", "precision")
NAMES = {"dsc": "DSC", "recall": "Recall", "precision": "Precision"}
# What every row is compared with: (column key, slots of the reference variant).
REFERENCES = (("vs_cbam", Slots(attention="cbam")), ("vs_unet", Slots()))
REFERENCE_HEADERS = {
    1: {"vs_cbam": "Diff vs CBAM", "vs_unet": "Diff vs U-Net"},
    2: {"vs_cbam": "Diff vs all-off (CBAM)", "vs_unet": "Diff vs U-Net"},
}
ALL_OFF_NOTE = (
    "The paper's all-off row (0.3728) is far below its own CBAM in Table 1 (0.5519), so it "
    "cannot be the same model: it is shown beside both readings, the U-Net with CBAM alone "
    "(the ablation's base) and the plain U-Net without attention."
)
PAIRED_NOTE = (
    "Diff: pooled DSC minus the reference's, seeds averaged, with the 95 % paired "
    "patient-bootstrap interval (the same patient draws for both); * marks an interval that "
    "excludes 0."
)
# Below this many test patients the captions say the paired intervals mean little (the demo has 2).
FEW_TEST_PATIENTS = 20


def variant_rows(metric_files: list[Path]) -> dict[Slots, dict]:
    """summarize_runs' rows keyed by slots (a missing or malformed file raises, named)."""
    return {Slots.of(row["slots"]): row for row in summarize_runs(metric_files)}


def readers_row(path: str | os.PathLike) -> dict:
    """The leave-one-reader-out figures as a row like a variant's (one 'seed')."""
    readers = ReadersFile.load(path)
    row = {"variant": "readers", "seeds": ""}
    for metric in METRICS:
        row[metric] = readers.pooled[metric]
        # no interval without a scored pair
        row[f"{metric}_low"], row[f"{metric}_high"] = readers.pooled_ci.get(metric, ("", ""))
        row[f"{metric}_sd"] = ""
    row["dsc_per_image"] = readers.per_image_mean["dsc"]
    return row


def table1(
    ours: dict[Slots, dict], readers: dict | None = None, external: list[dict] = ()
) -> list[dict]:
    """The paper's rows; then each external method (nnU-Net, say: `lidcseg evaluate` of its
    predictions on our test slices) and the readers, marked as ours only."""
    rows = [_row(paper, ours.get(paper.slots), METRICS) for paper in TABLE1]
    for row in external:
        rows.append(
            _row(
                PaperRow(f"{row['variant']}, same split (ours)", Slots(), ours_only=True),
                row,
                METRICS,
            )
        )
    if readers is not None:
        rows.append(_row(PaperRow(READERS_LABEL, Slots(), ours_only=True), readers, METRICS))
    return rows


def table2(ours: dict[Slots, dict]) -> list[dict]:
    """The paper's rows, the all-off row read both ways (CBAM alone, then the plain U-Net)."""
    rows = []
    for paper in (TABLE2[0], ALL_OFF_AS_UNET, *TABLE2[1:]):
        row = _row(paper, ours.get(paper.slots), ("dsc",))
        row.update(
            aspp=_mark(paper.slots.aspp),
            reverse=_mark(paper.slots.reverse),
            boundary=_mark(paper.slots.boundary),
        )
        rows.append(row)
    return rows


def _mark(on: bool) -> str:
    return "o" if on else ""


def _row(paper: PaperRow, ours: dict | None, metrics: tuple[str, ...]) -> dict:
    """Numbers only (None where there is none): the formats are made when writing."""
    row = {
        "module": paper.label,
        "variant": ours["variant"] if ours else None,
        "seeds": ours["seeds"] if ours else None,
        "dsc_per_image": _num(ours, "dsc_per_image"),
    }
    for key in (
        "precision_per_image",
        "precision_per_image_empty_as_0",
        "slices_without_prediction",
    ):
        row[key] = _num(ours, key)  # the csv only: the two readings of per-image precision
    for metric in metrics:
        for suffix in ("", "_sd", "_low", "_high"):
            row[metric + suffix] = _num(ours, metric + suffix)
        published = getattr(paper, metric)
        row[f"paper_{metric}"] = published
        value = row[metric]
        row[f"diff_{metric}"] = None if value is None or published is None else value - published
    return row


def _num(row: dict | None, key: str) -> float | None:
    if row is None or row.get(key) in (None, ""):
        return None
    value = float(row[key])
    return None if math.isnan(value) else value


def add_comparisons(
    rows: list[dict],
    ours: dict[Slots, dict],
    counts: dict[str, PatientCounts],
    resamples: int,
    level: float,
) -> None:
    """Each row's paired DSC difference against every reference variant that was run (in place)."""
    for row in rows:
        for key, slots in REFERENCES:
            reference = ours[slots]["variant"] if slots in ours else None
            row[key] = None
            if row["variant"] in counts and reference is not None:
                row[key] = paired_difference(
                    counts[row["variant"]], counts[reference], resamples, level
                )


def columns(metrics: tuple[str, ...], table: int) -> list[tuple[str, str]]:
    """(header, how to fill it) of the Markdown / LaTeX tables."""
    head = (
        [("ASPP", "aspp"), ("Reverse", "reverse"), ("Boundary", "boundary")] if table == 2 else []
    )
    head += [("Module", "module"), ("Variant", "variant")]
    ours = [(f"{NAMES[m]} [95% CI]", f"ours:{m}") for m in metrics] + [
        ("DSC per image", "plain:dsc_per_image")
    ]
    paired = [
        (f"{REFERENCE_HEADERS[table][key]} [95% CI]", f"paired:{key}") for key, _ in REFERENCES
    ]
    paper = []
    for m in metrics:
        paper += [(f"Paper {NAMES[m]}", f"plain:paper_{m}"), (f"Diff {NAMES[m]}", f"diff:diff_{m}")]
    return head + ours + paired + paper


def cell(row: dict, how: str, plus_minus: str = "+-") -> str:
    kind, _, key = how.partition(":")
    if not key:
        value = row.get(kind)
        return "" if value is None else str(value)
    if kind == "paired":
        found = row.get(key)
        if found is None:
            return ""
        mark = " *" if found["excludes_zero"] else ""
        return f"{found['diff']:+.4f} [{found['low']:+.4f}, {found['high']:+.4f}]{mark}"
    if kind == "plain":
        return "" if row[key] is None else f"{row[key]:.4f}"
    if kind == "diff":
        return "" if row[key] is None else f"{row[key]:+.4f}"
    if row[key] is None:
        return "not run"
    text = f"{row[key]:.4f}"
    if row[f"{key}_sd"] is not None:
        text += f" {plus_minus} {row[f'{key}_sd']:.4f}"
    if row[f"{key}_low"] is not None:
        text += f" [{row[f'{key}_low']:.4f}, {row[f'{key}_high']:.4f}]"
    return text


def markdown(rows: list[dict], spec: list[tuple[str, str]]) -> str:
    lines = [
        "| " + " | ".join(h for h, _ in spec) + " |",
        "|" + "|".join("---:" if how.partition(":")[2] else "---" for _, how in spec) + "|",
    ]
    lines += ["| " + " | ".join(cell(r, how) for _, how in spec) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def latex(rows: list[dict], spec: list[tuple[str, str]], caption: str, label: str) -> str:
    align = "".join("r" if how.partition(":")[2] else "l" for _, how in spec)
    body = [" & ".join(_tex(cell(r, how, r"$\pm$")) for _, how in spec) + r" \\" for r in rows]
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            f"\\caption{{{_tex(caption)}}}",
            f"\\label{{{label}}}",
            f"\\begin{{tabular}}{{{align}}}",
            r"\toprule",
            " & ".join(_tex(h) for h, _ in spec) + r" \\",
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    )


def html(rows: list[dict], spec: list[tuple[str, str]], caption: str) -> str:
    """A standalone page of the table (what the Snakemake report shows)."""
    from html import escape

    right = ["num" if how.partition(":")[2] else "" for _, how in spec]
    head = "".join(
        f'<th class="{r}">{escape(h).replace(" [", "<br>[")}</th>' for (h, _), r in zip(spec, right)
    )

    def html_cell(
        row: dict, how: str
    ) -> str:  # the interval on its own line keeps the table narrow
        return (
            escape(cell(row, how, "±"))
            .replace(" [", '<br><span class="ci">[')
            .replace("]", "]</span>")
        )

    body = "".join(
        "<tr>"
        + "".join(f'<td class="{r}">{html_cell(row, how)}</td>' for (_, how), r in zip(spec, right))
        + "</tr>"
        for row in rows
    )
    style = (
        "body{font-family:sans-serif;font-size:12px}table{border-collapse:collapse}"
        "caption{text-align:left;padding:4px 0 8px}"
        "th,td{padding:3px 7px;border-bottom:1px solid #ccc}"
        "th{border-bottom:2px solid #333;text-align:left}.num{text-align:right;white-space:nowrap}"
        ".ci{color:#555;font-size:11px}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style></head>"
        f"<body><table><caption>{escape(caption)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        "</body></html>\n"
    )


def _tex(text: str) -> str:
    for raw, escaped in (("%", r"\%"), ("_", r"\_"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(raw, escaped)
    return text


def csv_text(rows: list[dict]) -> str:
    """Every number at full precision (the formatted tables round to 4 digits); a paired
    comparison as its four columns (``vs_cbam``, ``_low``, ``_high``, ``_excludes_zero``)."""
    flat = [_flat(r) for r in rows]
    out = io.StringIO()
    writer = csv.DictWriter(out, list(flat[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in flat)
    return out.getvalue()


def _flat(row: dict) -> dict:
    flat = {k: v for k, v in row.items() if k not in dict(REFERENCES)}
    for key, _ in REFERENCES:
        found = row.get(key) or {}
        flat.update(
            {
                key: found.get("diff"),
                f"{key}_low": found.get("low"),
                f"{key}_high": found.get("high"),
                f"{key}_excludes_zero": found.get("excludes_zero"),
            }
        )
    return flat


def write_tables(
    metric_files: list[Path],
    out_dir: Path,
    readers_json: Path | None,
    external_files: list[Path],
    resamples: int,
    level: float,
) -> dict[str, list[dict]]:
    """table1 and table2 as .md, .csv, .tex and .html (for the Snakemake report) in ``out_dir``;
    ``external_files``: metrics of external predictions, one Table 1 row per method. Every
    metrics file needs its ``.images.csv`` beside it (the paired comparisons, of ``resamples``
    draws at confidence ``level``: config.yaml ``evaluate:``)."""
    ours = variant_rows(metric_files)
    readers = readers_row(readers_json) if readers_json else None
    external = summarize_runs(list(external_files)) if external_files else []
    counts = counts_by_variant([*metric_files, *external_files])
    patients = max((len(c.patients) for c in counts.values()), default=0)
    sample = f" Test set: {patients} patients" + (
        ", too few for the intervals to mean much." if patients < FEW_TEST_PATIENTS else "."
    )
    tables = {
        "table1": (
            table1(ours, readers, external),
            METRICS,
            "Table 1: pretrained U-Net with each attention "
            "module, test set, pooled over slices; paper's values and differences (ours - paper). "
            + PAIRED_NOTE
            + sample,
        ),
        "table2": (
            table2(ours),
            ("dsc",),
            "Table 2: ablation of ASPP, reverse and boundary attention "
            "on CBAM, pooled test DSC, in the paper's row order. "
            + PAIRED_NOTE
            + sample
            + " "
            + ALL_OFF_NOTE,
        ),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (rows, metrics, caption) in tables.items():
        add_comparisons(rows, ours, counts, resamples, level)
        spec = columns(metrics, 2 if name == "table2" else 1)
        for suffix, text in (
            ("md", markdown(rows, spec) + "\n" + caption + "\n"),
            ("csv", csv_text(rows)),
            ("html", html(rows, spec, caption)),
            ("tex", latex(rows, spec, caption, f"tab:{name}")),
        ):
            write_text(text, out_dir / f"{name}.{suffix}")
    return {name: rows for name, (rows, _, _) in tables.items()}
