"""Failures on the command line: one line naming the file, exit 2, and no partial output."""

from __future__ import annotations

import numpy as np
import pytest

from lidcseg.cli import main
from lidcseg.core.metrics_file import MetricsFileError
from lidcseg.data.dataset.packed import PackedSplit
from lidcseg.errors import LidcsegError
from lidcseg.io import (
    Volume,
    load_nifti,
    output_group,
    save_nifti,
    staged_folder,
    write_json,
    write_rows,
)
from tests.support.defaults import settings_json
from tests.support.packed import write_packed
from tests.support.paths import REPO

CONFIG = str(REPO / "config.yaml")


@pytest.fixture
def hu(series, tmp_path):
    folder, _, _ = series
    path = tmp_path / "hu.nii.gz"
    assert main(["convert", str(folder), str(path), "--settings", CONFIG]) == 0
    return path


def test_an_output_whose_parent_is_a_file_is_named(series, tmp_path, capsys):
    folder, _, _ = series
    (tmp_path / "blocker").write_text("a file, not a folder")
    assert (
        main(
            ["convert", str(folder), str(tmp_path / "blocker" / "hu.nii.gz"), "--settings", CONFIG]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lidcseg convert: error:" in err and "blocker" in err


def test_a_corrupt_nifti_is_named(tmp_path, capsys):
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 20)
    assert main(["resample", str(cut), str(tmp_path / "out.nii.gz"), "--settings", CONFIG]) == 2
    assert f"{cut}: not a readable NIfTI file" in capsys.readouterr().err
    assert not (tmp_path / "out.nii.gz").exists()


def test_a_mask_of_another_shape_leaves_no_output(hu, tmp_path, capsys):
    wrong = tmp_path / "wrong.nii.gz"
    save_nifti(Volume(np.zeros((5, 5, 5), np.uint8), load_nifti(hu).affine), wrong)
    out = tmp_path / "out"
    assert (
        main(
            [
                "resample",
                str(hu),
                str(out / "image.nii.gz"),
                "--mask",
                str(wrong),
                str(out / "mask.nii.gz"),
                "--transform",
                str(out / "grid.json"),
                "--settings",
                settings_json(resample={"image_size": [16, 16]}),
            ]
        )
        == 2
    )
    assert f"{wrong}: volume shape (5, 5, 5) is not the grid's input" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_a_missing_input_is_named(tmp_path, capsys):
    absent = tmp_path / "absent.nii.gz"
    assert main(["resample", str(absent), str(tmp_path / "out.nii.gz"), "--settings", CONFIG]) == 2
    assert (
        f"lidcseg resample: error: {absent}: No such file or directory" in capsys.readouterr().err
    )


def test_a_truncated_packed_array_is_named(tmp_path):
    packed = write_packed(tmp_path)
    images = packed / "test.images.npy"
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(LidcsegError, match=f"{images}: not a readable packed array"):
        PackedSplit(packed, "test")


def test_outputs_staged_together_appear_together_or_not_at_all(tmp_path):
    """What `lidcseg report` writes its 18 files through: a failure half-way leaves none."""
    out = tmp_path / "report"
    with pytest.raises(MetricsFileError), staged_folder(out) as staging:
        (staging / "table1.md").write_text("written before the failure")
        raise MetricsFileError("log.csv: missing")
    assert not any(out.iterdir()) and [p.name for p in tmp_path.iterdir()] == ["report"]
    with staged_folder(out) as staging:
        (staging / "table1.md").write_text("all of it")
    assert (out / "table1.md").read_text() == "all of it"


def test_a_stale_temporary_file_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "hu.nii.gz"
    stale = tmp_path / ".tmp-hu.nii.gz-abc123.nii.gz"  # what a job killed while writing leaves
    stale.write_bytes(b"half a volume")
    save_nifti(Volume(np.zeros((2, 2, 2), np.int16), np.eye(4)), target)
    assert target.exists() and not stale.exists()


@pytest.mark.parametrize(
    "content, words",
    [
        ("{not json", "not valid JSON"),
        ('{"status": "accepted"}', "not an inspect record"),
        ("[1, 2]", "not an inspect record"),
    ],
)
def test_a_bad_inspect_record_stops_the_screen_naming_it(tmp_path, capsys, content, words):
    record = tmp_path / "LIDC-IDRI-0001.json"
    record.write_text(content)
    assert main(["screen", str(record), "--out", str(tmp_path / "scans.tsv")]) == 2
    assert f"{record}: {words}" in capsys.readouterr().err and not (tmp_path / "scans.tsv").exists()


def test_a_group_of_outputs_appears_together_or_not_at_all(tmp_path):
    """What convert, annotate, resample, extract and evaluate write their files through."""
    table, summary = tmp_path / "a" / "rows.csv", tmp_path / "b" / "summary.json"
    with pytest.raises(RuntimeError), output_group():
        write_rows([{"n": 1}], table, ["n"])
        write_json({"n": 1}, summary)
        raise RuntimeError("the third output failed")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no output, no temporary file
    with output_group():
        write_rows([{"n": 1}], table, ["n"])
        assert not table.exists()  # held back until the group ends
        write_json({"n": 1}, summary)
    assert table.exists() and summary.exists()


def test_convert_whose_info_cannot_be_written_leaves_no_volume(series, tmp_path, capsys):
    folder, _, _ = series
    (tmp_path / "blocker").write_text("a file, not a folder")
    assert (
        main(
            [
                "convert",
                str(folder),
                str(tmp_path / "hu.nii.gz"),
                "--info",
                str(tmp_path / "blocker" / "hu.json"),
                "--settings",
                CONFIG,
            ]
        )
        == 2
    )
    assert "blocker" in capsys.readouterr().err
    assert not (tmp_path / "hu.nii.gz").exists() and not list(tmp_path.glob(".tmp-*"))
