"""Names taken from data never lead an output out of its folder, and an output is the file
its name says.

A PatientID, a packed row's patient id or an option names files; each is checked by one rule
(errors.safe_name) before any work, so ``..``, an absolute path, a separator or an empty
name is one line naming where it came from, exit 2, and nothing is written anywhere.
"""

from __future__ import annotations

import argparse

import numpy as np
import pydicom
import pytest

from lidcseg.cli import main
from lidcseg.data.dataset.nnunet import export_nnunet
from lidcseg.errors import SAFE_NAME, UnsafeNameError, safe_name
from lidcseg.io import read_rows, save_npz, write_rows
from lidcseg.training.train import run_training
from tests.support.packed import make_job, write_packed
from tests.support.paths import REPO

CONFIG = str(REPO / "config.yaml")
HOSTILE = {
    "parent folders": "../../../escaped",
    "a separator": "a/escaped",
    "a backslash": "a\\escaped",
    "only dots": "..",
    "hidden": ".escaped",
    "empty": "",
    "too long": "x" * 65,
}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny model (one epoch on 64 x 64 slices): predict loads its models first."""
    root = tmp_path_factory.mktemp("model")
    run_training(make_job(write_packed(root), root / "unet", epochs=1))
    return root / "unet" / "model.pt"


def _files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def _retag_all(folder, patient_id):
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.PatientID = patient_id
        ds.save_as(path)


def _one_line(capsys, *words):
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    for word in words:
        assert word in err, err
    return err


def _option_error(capsys, option, *words):
    """argparse's refusal: its usage, then one error line naming the option."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"argument {option}:" in errors[0], err
    assert "Traceback" not in err and all(word in errors[0] for word in words), err


@pytest.mark.parametrize(
    "patient_id",
    [
        HOSTILE["parent folders"],
        HOSTILE["a separator"],
        HOSTILE["only dots"],
        "ABSOLUTE",  # replaced by a path under tmp_path
    ],
    ids=["parent folders", "a separator", "only dots", "absolute"],
)
@pytest.mark.filterwarnings("ignore:The value length")  # pydicom: a long PatientID is written
def test_predict_refuses_a_patient_id_that_would_name_a_path_elsewhere(
    series, model, tmp_path, capsys, patient_id
):
    folder, _, _ = series
    if patient_id == "ABSOLUTE":
        patient_id = str(tmp_path / "elsewhere" / "escaped")
    _retag_all(folder, patient_id)
    out = tmp_path / "a" / "b" / "c" / "out"
    before = _files(tmp_path)
    argv = ["predict", str(folder), str(out), "--model", str(model)]
    assert main([*argv, "--settings", CONFIG]) == 2
    _one_line(capsys, "lidcseg predict: error:", f"{folder}: PatientID", "cannot name a file")
    assert _files(tmp_path) == before  # nothing written, inside the output folder or out of it
    assert not out.exists()


def test_predict_refuses_a_nifti_whose_name_is_empty(model, tmp_path, capsys):
    scan = tmp_path / ".nii.gz"  # the name left once the suffixes are taken off: ""
    scan.write_bytes(b"not read: the name is refused first")
    out = tmp_path / "out"
    assert main(["predict", str(scan), str(out), "--model", str(model), "--settings", CONFIG]) == 2
    _one_line(capsys, f"{scan}: the file name", "'' cannot name a file")
    assert not out.exists()


def test_an_empty_patient_id_falls_back_on_the_folder_name_under_the_same_rule(
    series, model, tmp_path, capsys
):
    from lidcseg.inference.predict import scan_name

    folder, _, _ = series
    _retag_all(folder, "")
    assert scan_name(folder) == folder.name
    hidden = folder.rename(tmp_path / ".hidden")
    out = tmp_path / "out"
    assert (
        main(["predict", str(hidden), str(out), "--model", str(model), "--settings", CONFIG]) == 2
    )
    _one_line(capsys, f"{hidden}: the folder name", "'.hidden' cannot name a file")
    assert not out.exists()


@pytest.mark.parametrize("patient_id", list(HOSTILE.values()), ids=list(HOSTILE))
def test_export_nnunet_refuses_a_packed_patient_id_that_would_name_a_path_elsewhere(
    tmp_path, capsys, patient_id
):
    packed = write_packed(tmp_path / "data")
    rows = read_rows(packed / "test.csv")
    rows[1]["patient_id"] = patient_id
    write_rows(rows, packed / "test.csv", list(rows[0]))
    out = tmp_path / "nnunet_raw"
    before = _files(tmp_path)
    assert main(["export-nnunet", str(packed), str(out)]) == 2
    err = _one_line(capsys, f"{packed / 'test.csv'}", "patient_id")
    # an empty id is refused by the packed rows' own check first (naming file and column)
    assert not patient_id or "row 2: patient_id" in err and "cannot name a file" in err
    assert _files(tmp_path) == before and not out.exists()


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/escaped", "a/b", ""])
def test_export_nnunet_refuses_a_name_that_would_name_a_path_elsewhere(tmp_path, capsys, name):
    packed = write_packed(tmp_path / "data")
    out = tmp_path / "nnunet_raw"
    with pytest.raises(SystemExit) as stopped:  # argparse names the option
        main(["export-nnunet", str(packed), str(out), "--name", name])
    assert stopped.value.code == 2
    _option_error(capsys, "--name")
    with pytest.raises(UnsafeNameError, match="--name"):  # and the function, called directly
        export_nnunet(packed, out, 501, name)
    assert not out.exists()


@pytest.mark.parametrize("name", list(HOSTILE.values()) + [None, 7], ids=[*HOSTILE, "None", "int"])
def test_the_rule_refuses_every_name_that_could_leave_its_folder(name):
    with pytest.raises(UnsafeNameError, match="where it came from"):
        safe_name(name, "where it came from")


@pytest.mark.parametrize("name", ["LIDC-IDRI-0001", "1.3.6.1.4.1.14519.5.2.1", "scan_2", "A" * 64])
def test_the_rule_keeps_the_names_the_data_really_has(name):
    assert safe_name(name, "x") == name and SAFE_NAME.fullmatch(name)


def test_extract_refuses_an_output_that_is_not_an_npz_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["extract", "image.nii.gz", "mask.nii.gz", "nodules.csv", str(out / "slices")]
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--settings", CONFIG])
    assert stopped.value.code == 2
    _option_error(capsys, "out_npz", "does not end in .npz")
    assert not out.exists()


def test_arrays_are_written_to_exactly_the_named_file(tmp_path):
    """NumPy adds .npz to a name without it: the writer hands it an open file instead, so
    the named file holds the arrays and no hidden file is left beside it."""
    target = tmp_path / "slices"
    save_npz(target, images=np.ones((2, 3, 3), np.float16))
    assert [p.name for p in tmp_path.iterdir()] == ["slices"]
    with np.load(target) as data:
        assert data["images"].shape == (2, 3, 3)


def test_the_npz_type_is_what_the_extract_parser_uses():
    from lidcseg.cli.preprocess import npz_path

    assert npz_path("out/LIDC-IDRI-0001.npz").name == "LIDC-IDRI-0001.npz"
    with pytest.raises(argparse.ArgumentTypeError):
        npz_path("out/LIDC-IDRI-0001")
