"""Malformed side files (bad JSON, a missing field, a wrong type or length, a number that is not
finite): a grid transform, the slice positions beside a NIfTI, a nodule table, extract's slice
rows, a packed split's rows and record, a metrics file and an inspect record. Each reader
refuses its file in one line naming it, exit 2, and nothing is written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lidcseg.cli import main
from lidcseg.io import Volume, read_rows, save_nifti, write_json, write_rows
from tests.support.metrics_files import metrics_file
from tests.support.packed import write_packed
from tests.support.paths import REPO

CONFIG = str(REPO / "config.yaml")
PATIENT = "LIDC-IDRI-0078"


def _refused(argv, named, out, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and f"{named}: " in err[0] and "Traceback" not in err[0], err
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*")), list(out.rglob("*"))
    return err[0]


def _volume(path, shape=(16, 16, 4), value=-800) -> None:
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    save_nifti(Volume(np.full(shape, value, np.int16), affine), path)


GOOD_GRID = {
    "input_shape": [16, 16, 4],
    "output_shape": [16, 16, 6],
    "scale": [1.0, 1.0, 0.5],
    "offset": [0.0, 0.0, 0.0],
    "input_affine": np.diag([2.0, 2.0, 3.0, 1.0]).tolist(),
    "output_affine": np.diag([2.0, 2.0, 1.5, 1.0]).tolist(),
    "source_z": None,
}


@pytest.mark.parametrize(
    "text, words",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2, 3]", "a list, not a mapping"),
        (json.dumps({k: v for k, v in GOOD_GRID.items() if k != "scale"}), "'scale' is missing"),
        (json.dumps({**GOOD_GRID, "scale": [1.0, 1.0]}), "holds 2 values, not 3"),
        (json.dumps({**GOOD_GRID, "scale": [1.0, float("nan"), 1.0]}), "not a finite number"),
        (json.dumps({**GOOD_GRID, "scale": [1.0, 0.0, 1.0]}), "'scale': item 1"),
        (json.dumps({**GOOD_GRID, "output_shape": ["16", 16, 6.5]}), "'output_shape'"),
        (json.dumps({**GOOD_GRID, "output_shape": [16, 16, -1]}), "is below 1"),
        (json.dumps({**GOOD_GRID, "input_affine": [[1, 0, 0]]}), "'input_affine'"),
        (json.dumps({**GOOD_GRID, "source_z": "up"}), "'source_z'"),
        (json.dumps({**GOOD_GRID, "extra": 1}), "unknown field(s) ['extra']"),
    ],
)
def test_a_malformed_grid_transform_is_named(tmp_path, capsys, text, words):
    _volume(tmp_path / "in.nii.gz")
    grid = tmp_path / "grid.json"
    grid.write_text(text)
    out = tmp_path / "out"
    argv = ["resample", str(tmp_path / "in.nii.gz"), str(out / "image.nii.gz"), "--grid"]
    line = _refused([*argv, str(grid), "--settings", CONFIG], grid, out, capsys)
    assert words in line, line


@pytest.mark.parametrize(
    "z_mm, words",
    [
        ("abcd", "not a list of finite, rising slice positions"),
        (5, "not a list of finite"),
        ([0.0, 3.0, float("nan"), 9.0], "not a list of finite"),
        ([0.0, 3.0, "6", 9.0], "not a list of finite"),
        ([9.0, 6.0, 3.0, 0.0], "rising"),
        ([0.0, 3.0, 6.0], "records 3 slice positions for a volume of 4 slices"),
    ],
)
def test_malformed_slice_positions_beside_a_volume_are_named(tmp_path, capsys, z_mm, words):
    _volume(tmp_path / "in.nii.gz")
    write_json({"z_mm": z_mm}, tmp_path / "in.json")
    out = tmp_path / "out"
    argv = ["resample", str(tmp_path / "in.nii.gz"), str(out / "image.nii.gz")]
    line = _refused([*argv, "--settings", CONFIG], tmp_path / "in.json", out, capsys)
    assert words in line, line


NODULE = {"patient_id": PATIENT, "nodule": "1", "diameter_mm": "8.5", "n_readers": "3"}


@pytest.mark.parametrize(
    "change, words",
    [
        ({"diameter_mm": "big"}, "line 2, column 'diameter_mm': 'big' is not a number"),
        ({"diameter_mm": "nan"}, "column 'diameter_mm': nan is not a finite number"),
        ({"diameter_mm": "-3"}, "column 'diameter_mm': -3.0 is below 0"),
        ({"nodule": "one"}, "column 'nodule'"),
        ({"nodule": "0"}, "column 'nodule': 0 is below 1"),
        ({"n_readers": ""}, "column 'n_readers'"),
        ({"patient_id": ""}, "column 'patient_id'"),
        ({"diameter_mm": None}, "lacks the column(s) diameter_mm"),
    ],
)
def test_a_malformed_nodule_table_is_named_by_extract(tmp_path, capsys, change, words):
    _volume(tmp_path / "image.nii.gz")
    _volume(tmp_path / "mask.nii.gz", value=1)
    row = {**NODULE, **change}
    table = tmp_path / "mask.nodules.csv"
    write_rows([row], table, [k for k, v in row.items() if v is not None])
    out = tmp_path / "out"
    argv = ["extract", str(tmp_path / "image.nii.gz"), str(tmp_path / "mask.nii.gz"), str(table)]
    argv += [str(out / f"{PATIENT}.npz"), "--patient", PATIENT, "--settings", CONFIG]
    line = _refused(argv, table, out, capsys)
    assert words in line, line


SLICE = {"patient_id": PATIENT, "slice": "3", "nodules": "1;2", "diameter_mm": "8.5"}


@pytest.mark.parametrize(
    "change, words",
    [
        ({"slice": "x"}, "column 'slice'"),
        ({"slice": "-1"}, "column 'slice': -1 is below 0"),
        ({"nodules": "1;b"}, "column 'nodules'"),
        ({"diameter_mm": "inf"}, "column 'diameter_mm': inf is not a finite number"),
        ({"patient_id": None}, "lacks the column(s) patient_id"),
    ],
)
def test_malformed_slice_rows_are_named_by_split(tmp_path, capsys, change, words):
    row = {**SLICE, **change}
    rows = tmp_path / "slices" / f"{PATIENT}.csv"
    write_rows([SLICE, row], rows, [k for k, v in row.items() if v is not None])
    out = tmp_path / "out"
    argv = ["split", str(rows.parent), str(out), "--patients", PATIENT, "--settings", CONFIG]
    line = _refused(argv, rows, out, capsys)
    assert words in line, line


@pytest.mark.parametrize(
    "name, change, words",
    [
        ("test.csv", lambda rows: rows[0].update(slice="2.5"), "line 2, column 'slice'"),
        ("test.csv", lambda rows: rows[1].update(diameter_mm="nan"), "line 3, column 'diameter"),
        ("dataset.json", lambda meta: meta.update(spacing_mm=[1, 1]), "'spacing_mm': holds 2"),
        ("dataset.json", lambda meta: meta.update(window="lung"), "'window'"),
        (
            "dataset.json",
            lambda meta: meta.update(image_shape=[64, float("nan")]),
            "'image_shape'",
        ),
    ],
)
def test_a_malformed_packed_split_is_named(tmp_path, capsys, name, change, words):
    packed = write_packed(tmp_path / "root", size=32, per_patient=2)
    path = packed / name
    if name.endswith(".csv"):
        rows = read_rows(path)
        change(rows)
        write_rows(rows, path, list(rows[0]))
    else:
        meta = json.loads(path.read_text())
        change(meta)
        write_json(meta, path)
    out = tmp_path / "nnunet"
    line = _refused(["export-nnunet", str(packed), str(out)], path, out, capsys)
    assert words in line, line


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda m: m.update(seed="7"), "field 'seed'"),
        (lambda m: m.update(threshold=float("nan")), "field 'threshold'"),
        (lambda m: m["pooled"].pop("dsc"), "field 'pooled': lacks 'dsc'"),
        (lambda m: m["pooled"].update(dsc=1.5), "'dsc': 1.5 is not from 0 to 1"),
        (lambda m: m["pooled"].update(dsc=float("inf")), "'dsc'"),
        (lambda m: m.update(by_size={}), "field 'by_size'"),
        (lambda m: m.update(test=[]), "field 'test'"),
        (lambda m: m.update(variant=None), "field 'variant'"),
    ],
)
def test_a_malformed_metrics_file_is_named_by_summarize(tmp_path, capsys, change, words):
    path = metrics_file(tmp_path, "unet", 1, 0.7)
    metrics = json.loads(path.read_text())
    change(metrics)
    path.write_text(json.dumps(metrics))
    out = tmp_path / "out"
    line = _refused(["summarize", str(out / "summary.csv"), str(path)], path, out, capsys)
    assert words in line, line


@pytest.mark.parametrize(
    "record, words",
    [
        ({"patient_id": PATIENT, "status": "maybe"}, "field 'status': 'maybe' is not one of"),
        ({"patient_id": 78, "status": "accepted"}, "field 'patient_id'"),
        ({"patient_id": PATIENT}, "field 'status' is missing"),
        ({"patient_id": PATIENT, "status": "accepted", "warnings": "one"}, "field 'warnings'"),
        ({"patient_id": PATIENT, "status": "rejected", "reason": 3}, "field 'reason'"),
        ([PATIENT, "accepted"], "not an inspect record"),
    ],
)
def test_a_malformed_inspect_record_is_named_by_screen(tmp_path, capsys, record, words):
    path = tmp_path / "qc" / f"{PATIENT}.json"
    write_json(record, path)
    good = tmp_path / "qc" / "LIDC-IDRI-0001.json"
    write_json({"patient_id": "LIDC-IDRI-0001", "status": "accepted"}, good)
    out = tmp_path / "out"
    line = _refused(
        ["screen", str(good), str(path), "--out", str(out / "scans.tsv")], path, out, capsys
    )
    assert words in line, line


def test_the_readers_take_well_formed_files(tmp_path, capsys):
    """The same commands on the files these tests damage: each runs (so the refusals above
    are the damage's doing)."""
    packed = write_packed(tmp_path / "root", size=32, per_patient=2)
    assert main(["export-nnunet", str(packed), str(tmp_path / "nnunet")]) == 0
    metrics = metrics_file(tmp_path, "unet", 1, 0.7)
    assert main(["summarize", str(tmp_path / "summary.csv"), str(metrics)]) == 0
    _volume(tmp_path / "in.nii.gz")
    write_json({"z_mm": [0.0, 3.0, 6.0, 9.0]}, tmp_path / "in.json")
    argv = ["resample", str(tmp_path / "in.nii.gz"), str(tmp_path / "r" / "image.nii.gz")]
    assert main([*argv, "--settings", CONFIG]) == 0
    (tmp_path / "slices").mkdir()
    write_rows([SLICE], tmp_path / "slices" / f"{PATIENT}.csv", list(SLICE))
    shutil.rmtree(tmp_path / "r")
