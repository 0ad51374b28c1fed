"""`lidcseg predict`: a new scan through trained models, back on the scan's own geometry."""

from __future__ import annotations

import csv
import math

import nibabel as nib
import numpy as np
import pytest

from lidcseg.cli import main
from lidcseg.data.resample import plan_grid, resample_image
from lidcseg.inference.outputs import nodule_rows
from lidcseg.inference.predict import back_to_source, nodule_mask
from lidcseg.io import Volume
from lidcseg.training.train import run_training
from tests.support.packed import make_job, write_packed
from tests.support.paths import LIDC_FULL, LIDC_SAMPLES, REPO

CONFIG = str(REPO / "config.yaml")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny unet trained for one epoch on 64 x 64 slices of 5.44 mm (fast to apply)."""
    root = tmp_path_factory.mktemp("model")
    run_training(make_job(write_packed(root), root / "unet", epochs=1))
    return root / "unet" / "model.pt"


def _series(root, patient):
    if not root.is_dir():
        pytest.skip(
            f"real LIDC data not found at {root} (it lives in ../shared, beside a checkout)"
        )
    return next(p for p in (root / patient).glob("*/*") if p.is_dir())


def _predict(input_path, out, *models, extra=()):
    argv = [
        "predict",
        str(input_path),
        str(out),
        "--model",
        *map(str, models),
        "--settings",
        CONFIG,
        *extra,
    ]
    assert main(argv) == 0


@pytest.mark.parametrize(
    "data, patient",
    [(LIDC_FULL, "LIDC-IDRI-0001"), (LIDC_SAMPLES, "LIDC-IDRI-0002")],
    ids=["complete series", "partial series"],
)
def test_outputs_lie_on_the_scans_own_geometry(data, patient, model, tmp_path):
    series = _series(data, patient)
    assert main(["convert", str(series), str(tmp_path / "hu.nii.gz"), "--settings", CONFIG]) == 0
    _predict(series, tmp_path / "pred", model)
    converted = nib.load(tmp_path / "hu.nii.gz")
    for kind in ("prob", "mask"):
        written = nib.load(tmp_path / "pred" / f"{patient}.{kind}.nii.gz")
        assert written.shape == converted.shape and np.array_equal(written.affine, converted.affine)
    assert (tmp_path / "pred" / f"{patient}.overview.png").stat().st_size > 0
    _assert_seg_references(tmp_path / "pred" / f"{patient}.seg.dcm", series)
    assert next(csv.reader((tmp_path / "pred" / f"{patient}.nodules.csv").open()))[:4] == [
        "nodule",
        "centroid_x_mm",
        "centroid_y_mm",
        "centroid_z_mm",
    ]


def _assert_seg_references(path, series):
    """The SEG reads back with pydicom and highdicom and names the source series."""
    import highdicom as hd
    import pydicom

    ds = pydicom.dcmread(path)
    source = pydicom.dcmread(next(series.glob("*.dcm")), stop_before_pixels=True)
    assert ds.Modality == "SEG" and ds.SegmentSequence[0].SegmentLabel == "Lung nodule"
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert ds.StudyInstanceUID == source.StudyInstanceUID and ds.PatientID == source.PatientID
    seg = hd.seg.segread(path)
    assert seg.number_of_segments == 1


def test_a_found_nodule_is_in_the_seg_frame_of_its_slice(tmp_path):
    """A hand-made mask through write_seg: the frame of each source slice holds its pixels."""
    import highdicom as hd
    import pydicom

    from lidcseg.inference.dicom_seg import write_seg

    series = _series(LIDC_SAMPLES, "LIDC-IDRI-0002")
    files = sorted(series.glob("*.dcm"))
    by_z = sorted(
        files,
        key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]),
    )
    first = pydicom.dcmread(by_z[0], stop_before_pixels=True)
    labels = np.zeros((first.Columns, first.Rows, len(files)), np.uint16)
    labels[100:110, 200:204, 3] = 1  # x = column, y = row, z = the 4th slice from the bottom
    write_seg(series, labels, tmp_path / "x.seg.dcm", "unet seed 1")
    seg = hd.seg.segread(tmp_path / "x.seg.dcm")
    source_uid = pydicom.dcmread(by_z[3], stop_before_pixels=True).SOPInstanceUID
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[source_uid], segment_numbers=[1]
    )
    assert pixels.shape[1:3] == (first.Rows, first.Columns)
    assert pixels[0, 200:204, 100:110, 0].all() and pixels.sum() == 40


def test_a_nifti_input_gives_what_its_series_gives(model, tmp_path):
    series = _series(LIDC_SAMPLES, "LIDC-IDRI-0002")
    assert (
        main(
            ["convert", str(series), str(tmp_path / "LIDC-IDRI-0002.nii.gz"), "--settings", CONFIG]
        )
        == 0
    )
    _predict(series, tmp_path / "from_dicom", model)
    _predict(tmp_path / "LIDC-IDRI-0002.nii.gz", tmp_path / "from_nifti", model)
    a, b = (
        nib.load(tmp_path / d / "LIDC-IDRI-0002.prob.nii.gz").get_fdata()
        for d in ("from_dicom", "from_nifti")
    )
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_models_are_averaged_and_a_z_range_limits_the_slices(model, tmp_path):
    series = _series(LIDC_SAMPLES, "LIDC-IDRI-0002")
    _predict(series, tmp_path / "one", model)
    _predict(series, tmp_path / "two", model, model)  # the same model twice: the same mean
    one, two = (nib.load(tmp_path / d / "LIDC-IDRI-0002.prob.nii.gz") for d in ("one", "two"))
    np.testing.assert_allclose(one.get_fdata(), two.get_fdata(), atol=1e-6)
    z = one.affine[2, 3] + np.arange(one.shape[2]) * one.affine[2, 2]
    _predict(series, tmp_path / "part", model, extra=["--z-range", str(z[0]), str(z[2])])
    part = nib.load(tmp_path / "part" / "LIDC-IDRI-0002.prob.nii.gz").get_fdata()
    assert part[:, :, :2].any() and not part[:, :, 5:].any()


def test_a_model_without_an_input_grid_is_named(model, tmp_path, capsys):
    from dataclasses import replace

    from lidcseg.core.model_file import ModelFile

    old = tmp_path / "old.pt"
    saved = ModelFile.load(model)
    replace(saved, grid=dict.fromkeys(saved.grid)).save(old)  # packed data without its grid
    assert (
        main(
            [
                "predict",
                str(tmp_path),
                str(tmp_path / "out"),
                "--model",
                str(old),
                "--settings",
                CONFIG,
            ]
        )
        == 2
    )
    assert (
        f"{old}: holds no input grid" in capsys.readouterr().err and not (tmp_path / "out").exists()
    )


def test_back_to_source_inverts_the_resampling():
    x, y, z = np.meshgrid(np.arange(40), np.arange(36), np.arange(30), indexing="ij")
    smooth = (100 * np.sin(x / 9) + 80 * np.cos(y / 7) + 5 * z).astype(np.int16)
    volume = Volume(smooth, np.diag([0.7, 0.7, 1.25, 1.0]))
    grid = plan_grid(volume, (1.0, 1.0, 2.0), (30, 30))
    resampled = resample_image(volume, grid, "linear", -1024)
    back = back_to_source(resampled.array.astype(np.float32), grid)
    assert back.shape == smooth.shape
    inner = (slice(6, -6), slice(6, -6), slice(3, -3))  # away from the cropped edges
    assert np.abs(back[inner] - smooth[inner]).max() < 6  # linear twice over a smooth field


def test_a_found_nodule_is_measured_in_patient_millimetres():
    affine = np.array([[0.5, 0, 0, -100.0], [0, 0.5, 0, -120.0], [0, 0, 1.0, -300.0], [0, 0, 0, 1]])
    x, y, z = np.meshgrid(np.arange(80), np.arange(80), np.arange(40), indexing="ij")
    ball = ((x - 40) * 0.5) ** 2 + ((y - 30) * 0.5) ** 2 + (z - 20.0) ** 2 <= 6.0**2  # radius 6 mm
    probability = np.where(ball, 0.9, 0.05).astype(np.float32)
    probability[2, 2, 2] = 0.8  # one stray voxel
    labels = nodule_mask(probability, (0.5, 0.5, 1.0), threshold=0.5, min_size_mm3=1.0)
    assert labels.max() == 1  # the stray voxel (0.25 mm3) dropped
    (row,) = nodule_rows(labels, probability, affine)
    ras = affine @ [40, 30, 20, 1]
    assert (row["centroid_x_mm"], row["centroid_y_mm"], row["centroid_z_mm"]) == (
        -ras[0],
        -ras[1],
        ras[2],
    )  # LPS
    assert row["volume_mm3"] == pytest.approx(4 / 3 * math.pi * 6**3, rel=0.05)
    assert row["longest_axial_diameter_mm"] == pytest.approx(12.5, abs=0.6)  # 2 r + one pixel
    assert (row["first_slice"], row["last_slice"], row["max_probability"]) == (14, 26, 0.9)


def test_back_to_source_follows_unevenly_spaced_slices():
    z_mm = np.r_[np.arange(0.0, 12, 1.25), np.arange(12.0, 40, 1.25)]  # a 0.5 mm shift at 12
    x, y, z = np.meshgrid(np.arange(40), np.arange(36), z_mm, indexing="ij")
    smooth = (100 * np.sin(x / 9) + 80 * np.cos(y / 7) + 4 * z).astype(np.int16)
    volume = Volume(smooth, np.diag([0.7, 0.7, 1.25, 1.0]), slice_z=z_mm)
    grid = plan_grid(volume, (1.0, 1.0, 2.0), (30, 30))
    assert grid.source_z is not None
    back = back_to_source(
        resample_image(volume, grid, "linear", -1024).array.astype(np.float32), grid
    )
    inner = (slice(6, -6), slice(6, -6), slice(3, -3))
    assert np.abs(back[inner] - smooth[inner]).max() < 6
