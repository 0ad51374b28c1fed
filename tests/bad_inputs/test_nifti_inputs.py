"""NIfTI volumes that no stage can use, refused by the one validation of lidcseg.io.load_nifti
(3-D, real and finite voxels, a finite, non-singular, orthogonal affine of 0.1-20 mm voxels)
before any work: exit 2, one line naming the file, nothing written."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from lidcseg.cli import main
from lidcseg.training.train import run_training
from tests.support.packed import make_job, write_packed
from tests.support.paths import REPO

CONFIG = str(REPO / "config.yaml")
AFFINE = np.diag([-0.7, -0.7, 2.5, 1.0])


def _ct(shape=(8, 8, 6), dtype=np.int16) -> np.ndarray:
    return np.full(shape, -800, dtype=dtype)


def _sheared() -> np.ndarray:
    affine = AFFINE.copy()
    affine[0, 2] = 1.0  # z steps 1 mm sideways per slice: a shear of 22 degrees
    return affine


def _rgb() -> np.ndarray:
    rgb = np.zeros((8, 8, 6), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    return rgb


def _with_nan(value) -> np.ndarray:
    array = _ct(dtype=np.float32)
    array[3, 4, 2] = value
    return array


def _write(path, array, affine=AFFINE, raw_affine=None):
    """``array`` as a NIfTI at ``path``; ``raw_affine`` goes into the header's sform fields as
    it is (nibabel would rewrite a NaN or singular affine on saving)."""
    data = bytearray(nib.Nifti1Image(array, affine).to_bytes())
    if raw_affine is not None:
        header = nib.Nifti1Header(bytes(data[:348]))
        for i, row in enumerate("xyz"):
            header[f"srow_{row}"] = raw_affine[i]
        header["sform_code"], header["qform_code"] = 1, 0
        data[:348] = header.binaryblock
    path.write_bytes(gzip.compress(bytes(data)) if path.name.endswith(".gz") else bytes(data))
    return path


BAD = {
    "2-D": (lambda: _ct((8, 8)), None, "2-D data of shape (8, 8): a CT volume is 3-D"),
    "4-D": (lambda: _ct((8, 8, 6, 2)), None, "4-D data of shape (8, 8, 6, 2)"),
    "zero-length": (lambda: _ct((8, 0, 6)), None, "has an axis of length 0"),
    "RGB": (_rgb, None, "(RGB or complex): CT voxels are real"),
    "complex": (lambda: _ct(dtype=np.complex64), None, "voxels of type complex64"),
    "NaN voxel": (lambda: _with_nan(np.nan), None, "1 voxels are NaN or infinite"),
    "inf voxel": (lambda: _with_nan(np.inf), None, "1 voxels are NaN or infinite"),
    "NaN affine": (_ct, np.diag([np.nan, 0.7, 2.5, 1]), "affine holds non-finite values"),
    "singular affine": (_ct, np.diag([0.7, 0.7, 0.0, 1]), "affine is singular"),
    "sheared affine": (_ct, _sheared(), "affine is sheared: voxel axes 0 and 2"),
    "1e-6 mm voxels": (_ct, np.diag([1e-6, 1e-6, 2.5, 1]), "voxel spacing [1e-06, 1e-06, 2.5]"),
    "1e6 mm voxels": (_ct, np.diag([0.7, 0.7, 1e6, 1]), "is outside 0.1-20 mm"),
}


def _one_line(capsys, path, words):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert str(path) in err[0] and words in err[0], err[0]


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_resample_refuses_a_volume_no_stage_can_use(tmp_path, capsys, case, suffix):
    make, affine, words = BAD[case]
    ct = _write(tmp_path / f"ct{suffix}", make(), raw_affine=affine)
    out = tmp_path / "out"
    argv = ["resample", str(ct), str(out / "image.nii.gz"), "--transform", str(out / "grid.json")]
    assert main([*argv, "--settings", CONFIG]) == 2
    _one_line(capsys, ct, words)
    assert not out.exists() or not any(out.iterdir())


def test_a_nan_mask_is_refused_too_and_nothing_is_written(tmp_path, capsys):
    ct = _write(tmp_path / "ct.nii.gz", _ct())
    mask = _write(tmp_path / "mask.nii.gz", _with_nan(np.nan))
    out = tmp_path / "out"
    argv = ["resample", str(ct), str(out / "image.nii.gz")]
    argv += ["--mask", str(mask), str(out / "mask.nii.gz"), "--settings", CONFIG]
    assert main(argv) == 2
    _one_line(capsys, mask, "1 voxels are NaN or infinite")
    assert not out.exists() or not any(out.iterdir())


def test_a_4d_volume_of_one_frame_is_a_3d_volume(tmp_path):
    ct = _write(tmp_path / "ct.nii.gz", _ct((8, 8, 6, 1)))
    out = tmp_path / "image.nii.gz"
    assert main(["resample", str(ct), str(out), "--settings", CONFIG]) == 0
    assert nib.load(out).ndim == 3


def test_a_grid_within_the_limits_is_read_as_it_is(tmp_path):
    """The validation refuses only what it names: a tilted but orthogonal grid is fine."""
    angle = np.deg2rad(10)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.7, 0.7, 2.5])
    ct = _write(tmp_path / "ct.nii.gz", _ct(), affine)
    assert main(["resample", str(ct), str(tmp_path / "i.nii.gz"), "--settings", CONFIG]) == 0


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    run_training(make_job(write_packed(root), root / "unet", epochs=1))
    return root / "unet" / "model.pt"


@pytest.mark.parametrize("case", ["NaN voxel", "2-D", "sheared affine", "1e6 mm voxels"])
def test_predict_refuses_the_volume_instead_of_finding_no_nodule(tmp_path, capsys, model, case):
    make, affine, words = BAD[case]
    ct = _write(tmp_path / "ct.nii.gz", make(), raw_affine=affine)
    out = tmp_path / "pred"
    argv = ["predict", str(ct), str(out), "--model", str(model), "--settings", CONFIG]
    assert main(argv) == 2
    _one_line(capsys, ct, words)
    assert not out.exists() or not any(out.iterdir())
