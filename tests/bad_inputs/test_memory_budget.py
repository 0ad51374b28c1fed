"""The memory budget (lidcseg.core.budget, execution.memory_limit_gb): an array whose size a
file declares is refused before it is allocated, in one line naming the file, the shape and
the limit. The files here are a few hundred bytes; what they declare is terabytes."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import yaml

from lidcseg.cli import main
from lidcseg.core import budget
from tests.support.hostile import AFFINE, nifti_header_only
from tests.support.paths import REPO
from tests.support.series import make_series

CONFIG = str(REPO / "config.yaml")


def _one_line(capsys, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert all(w in err[0] for w in words), err[0]
    return err[0]


def _nothing_in(folder):
    return not folder.exists() or not any(folder.iterdir())


def test_a_header_declaring_terabytes_is_refused_before_reading(tmp_path, capsys):
    ct = nifti_header_only(tmp_path / "ct.nii.gz", (32767, 32767, 2000))
    out = tmp_path / "out"
    assert main(["resample", str(ct), str(out / "i.nii.gz"), "--settings", CONFIG]) == 2
    _one_line(capsys, str(ct), "32767 x 32767 x 2000 int16", "memory limit of 2 GB")
    assert _nothing_in(out)


def test_the_limit_comes_from_the_environment(tmp_path, capsys, monkeypatch):
    """1024 x 1024 x 500 int16 (1 GB, inflated and read: 2 GB) is refused at a 1 GB limit."""
    monkeypatch.setenv(budget.ENVIRONMENT, "1")
    ct = nifti_header_only(tmp_path / "ct.nii.gz", (1024, 1024, 500))
    out = tmp_path / "out"
    assert main(["resample", str(ct), str(out / "i.nii.gz"), "--settings", CONFIG]) == 2
    _one_line(capsys, str(ct), "1024 x 1024 x 500", "memory limit of 1 GB", budget.ENVIRONMENT)
    assert _nothing_in(out)


def test_the_limit_comes_from_the_config(tmp_path, capsys):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["execution"]["memory_limit_gb"] = 0.5
    settings = tmp_path / "config.yaml"
    settings.write_text(yaml.safe_dump(config))
    ct = nifti_header_only(tmp_path / "ct.nii.gz", (1024, 1024, 200))
    out = tmp_path / "out"
    assert main(["resample", str(ct), str(out / "i.nii.gz"), "--settings", str(settings)]) == 2
    _one_line(capsys, str(ct), "memory limit of 0.5 GB", budget.KEY)
    assert _nothing_in(out)


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "0"])
def test_a_bad_limit_in_the_environment_is_named(tmp_path, capsys, monkeypatch, value):
    monkeypatch.setenv(budget.ENVIRONMENT, value)
    ct = nifti_header_only(tmp_path / "ct.nii.gz", (8, 8, 4))
    assert main(["resample", str(ct), str(tmp_path / "i.nii.gz"), "--settings", CONFIG]) == 2
    _one_line(capsys, budget.ENVIRONMENT, "is not a positive number")


def test_a_bad_limit_in_the_config_is_named(tmp_path, capsys):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["execution"]["memory_limit_gb"] = -1
    settings = tmp_path / "config.yaml"
    settings.write_text(yaml.safe_dump(config))
    ct = nifti_header_only(tmp_path / "ct.nii.gz", (8, 8, 4))
    assert main(["resample", str(ct), str(tmp_path / "i.nii.gz"), "--settings", str(settings)]) == 2
    _one_line(capsys, "execution.memory_limit_gb")


def test_slices_kilometres_apart_do_not_size_the_resampled_grid(tmp_path, capsys):
    """Convert's slice positions beside the volume, 10 km apart: the grid between them would
    be millions of slices; refused before it is planned."""
    ct = tmp_path / "hu.nii.gz"
    nib.save(nib.Nifti1Image(np.full((8, 8, 3), -800, np.int16), AFFINE), ct)
    (tmp_path / "hu.json").write_text(json.dumps({"z_mm": [0.0, 2.5, 1e7]}))
    out = tmp_path / "out"
    assert main(["resample", str(ct), str(out / "i.nii.gz"), "--settings", CONFIG]) == 2
    _one_line(capsys, str(ct), "memory limit")
    assert _nothing_in(out)


def test_a_series_too_large_to_stack_is_refused_naming_its_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(budget.ENVIRONMENT, "0.00001")  # 10 kB; the series stacks to 2 x 6.9 kB
    folder = tmp_path / "s"
    make_series(folder)
    out = tmp_path / "out"
    assert main(["convert", str(folder), str(out / "hu.nii.gz"), "--settings", CONFIG]) == 2
    _one_line(capsys, str(folder), "6 x 24 x 24 int16")
    assert _nothing_in(out)


def test_a_nodule_id_beyond_the_uint8_masks_is_refused_naming_the_patient(tmp_path, capsys):
    """Mask and nodule table agree on nodule 300, which uint8 masks would keep as 44."""
    image = tmp_path / "image.nii.gz"
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.full((8, 8, 3), -800, np.int16), AFFINE), image)
    labels = np.zeros((8, 8, 3), np.uint16)
    labels[2:5, 2:5, 1] = 300
    nib.save(nib.Nifti1Image(labels, AFFINE), mask)
    table = tmp_path / "mask.nodules.csv"
    table.write_text("patient_id,nodule,n_readers,diameter_mm\nLIDC-IDRI-9999,300,4,6.0\n")
    out = tmp_path / "slices" / "LIDC-IDRI-9999.npz"
    argv = ["extract", str(image), str(mask), str(table), str(out), "--patient", "LIDC-IDRI-9999"]
    assert main([*argv, "--settings", CONFIG]) == 2
    _one_line(capsys, "LIDC-IDRI-9999", "nodule id 300")
    assert _nothing_in(out.parent)


def test_predict_refuses_a_scan_too_large_for_its_grids_before_inflating_it(tmp_path, capsys):
    """1024 x 1024 x 500 would take 2.1 GB to read, and predict's probabilities on the
    scan's own grid (float64, float32, int32 components) 8.4 GB: refused from the header,
    before a voxel is inflated."""
    from lidcseg.training.train import run_training
    from tests.support.packed import make_job, write_packed

    run_training(make_job(write_packed(tmp_path / "packed"), tmp_path / "unet", epochs=1))
    ct = nifti_header_only(tmp_path / "ct.nii.gz", (1024, 1024, 500))
    out = tmp_path / "pred"
    model = str(tmp_path / "unet" / "model.pt")
    capsys.readouterr()  # training's progress bar
    assert main(["predict", str(ct), str(out), "--model", model, "--settings", CONFIG]) == 2
    _one_line(capsys, str(ct), "1024 x 1024 x 500", "memory limit of 2 GB")
    assert _nothing_in(out)
