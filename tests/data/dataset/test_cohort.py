"""The cohort flow: database-only counts agree with the image pipeline; reports list drop-outs."""

from __future__ import annotations

from lidcseg.data.dataset.cohort import _nodule_slices, processed_flow, write_flow
from lidcseg.data.lidc.annotations import AT_GAP, scan_nodules
from lidcseg.data.lidc.database import scan_for_patient
from lidcseg.io import read_rows, write_json, write_rows


def test_database_counts_equal_the_image_pipeline_slice_for_slice(synthetic_slices):
    summary, slices = synthetic_slices.summary, synthetic_slices.slice_rows
    scan = scan_for_patient("LIDC-IDRI-0078")
    original, resampled = _nodule_slices(
        scan, [n for n in scan_nodules(scan) if n.diameter_mm >= 3], 0.5, 0.0, 2.0
    )
    assert len(original) == summary["n_slices_with_nodules"]
    assert sorted(resampled) == [r["slice"] for r in slices]


def test_processed_flow_counts_and_lists_what_dropped_out(tmp_path):
    write_rows(
        [
            {"patient_id": "LIDC-IDRI-0001", "status": "accepted", "reason": ""},
            {
                "patient_id": "LIDC-IDRI-0002",
                "status": "rejected",
                "reason": "x.dcm: truncated pixel data",
            },
            {"patient_id": "LIDC-IDRI-0003", "status": "accepted", "reason": ""},
        ],
        tmp_path / "scans.tsv",
        ("patient_id", "status", "reason"),
    )
    summaries = []
    for patient, status, n_ann, reason in (
        ("LIDC-IDRI-0001", "annotated", 4, ""),
        ("LIDC-IDRI-0003", "failed", 3, "pylidc could not cluster the annotations: boom"),
    ):
        summaries.append(tmp_path / f"{patient}.json")
        write_json(
            {
                "patient_id": patient,
                "status": status,
                "reason": reason,
                "n_annotations": n_ann,
                "n_nodules": 2 if status == "annotated" else 0,
                "n_slices_with_nodules": 5,
            },
            summaries[-1],
        )
    write_rows(
        [
            {"patient_id": "LIDC-IDRI-0001", "nodule": 1, "status": "kept"},
            {"patient_id": "LIDC-IDRI-0001", "nodule": 2, "status": "diameter < 3 mm"},
        ],
        tmp_path / "n.csv",
        ("patient_id", "nodule", "status"),
    )
    write_rows(
        [{"patient_id": "LIDC-IDRI-0001", "slice": k} for k in range(7)],
        tmp_path / "s.csv",
        ("patient_id", "slice"),
    )
    counts, notes = processed_flow(
        ["LIDC-IDRI-0001", "LIDC-IDRI-0002", "LIDC-IDRI-0003"],
        tmp_path / "scans.tsv",
        summaries,
        [tmp_path / "n.csv"],
        [tmp_path / "s.csv"],
    )
    assert counts["scans"] == 3 and counts["scans_accepted"] == 2
    assert counts["patients_with_annotations"] == 2 and counts["annotations"] == 7
    assert (
        counts["scans_not_clustered"] == 1
        and counts["nodules"] == 2
        and counts["nodules_min_diameter"] == 1
    )
    assert counts["slices_resampled"] == 7
    reasons = {(n["patient_id"], n["stage"]) for n in notes}
    assert reasons == {("LIDC-IDRI-0002", "inspect"), ("LIDC-IDRI-0003", "annotate")}
    write_flow(
        {"scans": 1018, "patients_with_annotations": 875},
        counts,
        notes,
        "rule",
        tmp_path / "f.csv",
        tmp_path / "f.md",
    )
    flow = {r["step"]: r for r in read_rows(tmp_path / "f.csv")}
    assert (
        flow["patients with annotations"]["archive"] == "875"
        and flow["patients with annotations"]["paper"] == "875"
    )
    assert flow["nodule slices after resampling (the images)"]["paper"] == "8230"
    text = (tmp_path / "f.md").read_text()
    assert (
        "x.dcm: truncated pixel data" in text
        and "could not cluster" in text
        and "| 1,018 |" in text
    )


def test_a_nodule_dropped_at_a_gap_and_the_archives_geometry_are_listed_in_the_flow(tmp_path):
    write_rows(
        [{"patient_id": "LIDC-IDRI-0001", "status": "accepted", "reason": ""}],
        tmp_path / "scans.tsv",
        ("patient_id", "status", "reason"),
    )
    write_json(
        {
            "patient_id": "LIDC-IDRI-0001",
            "status": "annotated",
            "reason": "",
            "n_annotations": 4,
            "n_nodules": 2,
            "n_slices_with_nodules": 5,
        },
        tmp_path / "s.json",
    )
    gap = AT_GAP.format(-110.0, "000090.dcm", -105.0, "000092.dcm")
    write_rows(
        [
            {"patient_id": "LIDC-IDRI-0001", "nodule": 1, "status": "kept"},
            {"patient_id": "LIDC-IDRI-0001", "nodule": 2, "status": gap},
        ],
        tmp_path / "n.csv",
        ("patient_id", "nodule", "status"),
    )
    counts, notes = processed_flow(
        ["LIDC-IDRI-0001"], tmp_path / "scans.tsv", [tmp_path / "s.json"], [tmp_path / "n.csv"], []
    )
    assert counts["nodules_min_diameter"] == 2 and counts["nodules_at_gap"] == 1
    geometry = [
        {
            "patient_id": "LIDC-IDRI-0514",
            "stage": "geometry",
            "reason": "stray slice at z=-286.00: dropped",
        }
    ]
    write_flow(
        {"scans_refused_geometry": 0},
        counts,
        notes,
        "rule",
        tmp_path / "f.csv",
        tmp_path / "f.md",
        geometry,
    )
    text = (tmp_path / "f.md").read_text()
    assert f"- LIDC-IDRI-0001 (annotate): nodule 2: {gap}" in text
    assert "- LIDC-IDRI-0514: stray slice at z=-286.00: dropped" in text
    assert "| scans refused for their slice geometry | 0 |" in text
