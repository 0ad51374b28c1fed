"""The complete real series in ../shared/lidc-full (LIDC-IDRI-0001, 133 slices and its XML)
through inspect, convert, annotate, resample and extract, as the workflow's rules run them:
its consensus mask is pylidc's own 50 % consensus voxel for voxel, and its nodule slices are
the ones the database-only count (archive-flow) gives, slice for slice."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lidcseg.cli import main
from lidcseg.data.dataset.cohort import _nodule_slices
from lidcseg.data.lidc.annotations import annotate, is_at_gap, scan_nodules
from lidcseg.data.lidc.database import scan_for_patient
from lidcseg.io import load_nifti, read_json, read_rows
from tests.support.consensus import pylidc_consensus
from tests.support.defaults import DEFAULTS
from tests.support.paths import LIDC_FULL, REPO

PATIENT = "LIDC-IDRI-0001"
CONFIG = str(REPO / "config.yaml")


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The five stages once, by their commands, on the real files (read in place, never copied)."""
    series = LIDC_FULL / PATIENT
    if not series.is_dir():
        pytest.skip(
            f"the complete real series is not at {series} "
            "(it lives in ../shared, beside a checkout)"
        )
    out = tmp_path_factory.mktemp("full")
    hu, mask = out / "hu" / f"{PATIENT}.nii.gz", out / "masks" / f"{PATIENT}.nii.gz"
    image, resampled_mask = (
        out / "resampled" / f"{PATIENT}.image.nii.gz",
        out / "resampled" / f"{PATIENT}.mask.nii.gz",
    )
    slices = out / "slices" / f"{PATIENT}.npz"
    for args in (
        ["inspect", str(series), str(out / "qc.json")],  # no --patient: the header names it
        ["convert", str(series), str(hu)],
        ["annotate", str(series), str(mask), "--reference", str(hu)],
        ["resample", str(hu), str(image), "--mask", str(mask), str(resampled_mask)],
        [
            "extract",
            str(image),
            str(resampled_mask),
            str(mask.with_name(f"{PATIENT}.nodules.csv")),
            str(slices),
        ],
    ):
        assert main([*args, "--settings", CONFIG]) == 0, args[0]
    return SimpleNamespace(
        series=series,
        record=read_json(out / "qc.json"),
        hu=hu,
        mask=mask,
        summary=read_json(mask.with_name(f"{PATIENT}.json")),
        rows=read_rows(slices.with_suffix(".csv")),
    )


def test_inspect_names_the_patient_from_the_header_and_accepts_the_scan(chain):
    assert chain.record["patient_id"] == PATIENT and chain.record["status"] == "accepted"
    assert chain.record["n_slices"] == 133 and chain.record["warnings"] == []


def test_consensus_mask_is_pylidcs_50_percent_consensus_voxel_for_voxel(chain):
    labels = load_nifti(chain.mask).array
    expected = pylidc_consensus(
        PATIENT, labels.shape, DEFAULTS.annotate.min_diameter_mm, DEFAULTS.annotate.consensus
    )
    assert expected.any()
    np.testing.assert_array_equal(labels > 0, expected)


def test_nodule_slices_are_the_database_only_count_slice_for_slice(chain):
    scan = scan_for_patient(PATIENT)
    kept = [n for n in scan_nodules(scan) if n.diameter_mm >= DEFAULTS.annotate.min_diameter_mm]
    original, resampled = _nodule_slices(
        scan,
        kept,
        DEFAULTS.annotate.consensus,
        DEFAULTS.extract.min_area_mm2,
        DEFAULTS.resample.spacing_mm[2],
    )
    assert chain.summary["n_slices_with_nodules"] == len(original)
    assert [int(r["slice"]) for r in chain.rows] == sorted(resampled)
    assert {r["patient_id"] for r in chain.rows} == {PATIENT}


def test_a_nodule_reaching_into_a_gap_is_dropped_naming_the_files_and_the_rest_kept(chain):
    """The gap is made up (0001 has none): one just inside the nodule's z range."""
    grid = load_nifti(chain.hu)
    grid.slice_z = np.asarray(read_json(chain.hu.with_name(f"{PATIENT}.json"))["z_mm"])
    gap = [-110.0, -107.5, "000090.dcm", "000091.dcm"]
    labels, rows, summary = annotate(chain.series, grid, DEFAULTS.annotate, gaps=[gap])
    dropped = [r for r in rows if is_at_gap(r["status"])]
    assert dropped and all(
        "000090.dcm" in r["status"] and "000091.dcm" in r["status"] for r in dropped
    )
    assert summary["status"] == "annotated" and not labels.array.any()  # 0001's one nodule >= 3 mm
    assert [r["status"] for r in rows if r not in dropped] == [
        r["status"]
        for r in read_rows(chain.mask.with_name(f"{PATIENT}.nodules.csv"))
        if r["status"] != "kept"
    ]  # the rest as before
