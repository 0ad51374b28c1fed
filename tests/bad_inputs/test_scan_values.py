"""DICOM values that would convert into a wrong volume, or crash: non-finite or implausible
rescale, broken pixel modules, impossible geometry, a slice listed twice. Each is refused
before anything is written (lidcseg convert: exit 2, one line naming the file; inspect: a
rejected record naming it), never read as it is."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, JPEG2000Lossless

from lidcseg.cli import main
from lidcseg.data.dataset.gate import inspect_series
from lidcseg.io import read_json
from tests.support.defaults import DEFAULTS
from tests.support.paths import REPO
from tests.support.series import make_series

CONFIG = str(REPO / "config.yaml")


def _retag(path, **tags) -> None:
    """Rewrite one file with ``tags`` set as given (None deletes the tag), unvalidated."""
    ds = pydicom.dcmread(path)
    with pydicom.config.disable_value_validation():
        for keyword, value in tags.items():
            if value is None:
                delattr(ds, keyword)
            else:
                ds[keyword].value = value
        ds.save_as(path)


def _instance_abc(path) -> None:
    """InstanceNumber 'abc' (pydicom will not set it: the bytes of a placeholder are replaced)."""
    _retag(path, InstanceNumber=987)
    data = path.read_bytes()
    assert data.count(b"987 ") == 1
    path.write_bytes(data.replace(b"987 ", b"abc "))


def _all(paths, **tags) -> None:
    for path in paths:
        _retag(path, **tags)


def _drift(paths) -> None:
    """ImagePositionPatient moving 10 mm sideways per slice: a gantry tilt of 76 degrees."""
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [f"{x + 10 * k:.6f}", f"{y:.6f}", f"{z:.6f}"]
        ds.save_as(path)


def _same_sop(paths) -> None:
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6"
        ds.save_as(path)


def _compressed(paths, syntax) -> None:
    """The pixel data of one slice replaced by garbage in a compressed transfer syntax."""
    ds = pydicom.dcmread(paths[2])
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51 not a codestream " * 8])
    ds["PixelData"].VR = "OB"
    ds.save_as(paths[2], enforce_file_format=True)


# case: (change the series' files, the file named (index or None for any), words)
ONE = 2  # the slice a one-file fault is put in
CASES = {
    "RescaleSlope NaN": (lambda p: _retag(p[ONE], RescaleSlope="nan"), ONE, "RescaleSlope nan"),
    "RescaleIntercept inf": (
        lambda p: _retag(p[ONE], RescaleIntercept="inf"),
        ONE,
        "RescaleIntercept inf",
    ),
    "RescaleSlope 1e30": (lambda p: _retag(p[ONE], RescaleSlope="1e30"), ONE, "RescaleSlope 1e+30"),
    "RescaleSlope -1": (lambda p: _retag(p[ONE], RescaleSlope="-1"), ONE, "RescaleSlope -1"),
    "RescaleIntercept 1e9": (
        lambda p: _retag(p[ONE], RescaleIntercept="1e9"),
        ONE,
        "RescaleIntercept 1e+09",
    ),
    "Rows missing": (lambda p: _retag(p[ONE], Rows=None), ONE, "Rows missing"),
    "BitsAllocated missing": (lambda p: _retag(p[ONE], BitsAllocated=None), ONE, "BitsAllocated"),
    "Rows 0": (lambda p: _retag(p[ONE], Rows=0), ONE, "Rows 0"),
    "InstanceNumber abc": (
        lambda p: _instance_abc(p[ONE]),
        ONE,
        "InstanceNumber 'abc'",
    ),
    "signed data declared unsigned": (
        lambda p: _all(p, PixelRepresentation=0),
        None,
        "PixelRepresentation",
    ),
    "BitsStored above BitsAllocated": (lambda p: _retag(p[ONE], BitsStored=20), ONE, "BitsStored"),
    "JPEG 2000 garbage": (
        lambda p: _compressed(p, JPEG2000Lossless),
        ONE,
        "cannot decode compressed pixel data (JPEG 2000",
    ),
    "no decoder": (lambda p: _compressed(p, MPEG2MPML), ONE, "no decoder for MPEG2"),
    "orientation of length 3": (
        lambda p: _all(p, ImageOrientationPatient=[3, 0, 0, 0, 3, 0]),
        None,
        "ImageOrientationPatient",
    ),
    "orientation not orthogonal": (
        lambda p: _all(p, ImageOrientationPatient=[1, 0, 0, 0.5, 0.866025, 0]),
        None,
        "ImageOrientationPatient",
    ),
    "gantry tilt drift": (_drift, None, "in-plane"),
    "1e-6 mm pixels": (
        lambda p: _all(p, PixelSpacing=["1e-6", "1e-6"]),
        None,
        "outside 0.1-20 mm",
    ),
    "one SOPInstanceUID for every slice": (_same_sop, None, "SOPInstanceUID 1.2.3.4.5.6"),
}


def _one_line(capsys, words, name):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert words in err[0] and (name is None or name in err[0]), err[0]


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_convert_and_inspect_refuse_the_value(tmp_path, capsys, case):
    change, index, words = CASES[case]
    folder = tmp_path / "s"
    _, paths = make_series(folder)
    change(paths)
    out = tmp_path / "out"
    argv = ["convert", str(folder), str(out / "hu.nii.gz"), "--info", str(out / "hu.json")]
    assert main([*argv, "--settings", CONFIG]) == 2
    _one_line(capsys, words, None if index is None else paths[index].name)
    assert not out.exists() or not any(out.iterdir())
    record = inspect_series(folder, tmp_path / "record.json", DEFAULTS.convert)
    assert record["status"] == "rejected" and words in record["reason"]
    assert read_json(tmp_path / "record.json")["status"] == "rejected"


@pytest.mark.parametrize("dz, words", [(0.05, "0.05"), (50.0, "50")])
def test_a_slice_spacing_outside_the_range_is_refused(tmp_path, capsys, dz, words):
    folder = tmp_path / "s"
    make_series(folder, dz=dz)
    out = tmp_path / "hu.nii.gz"
    assert main(["convert", str(folder), str(out), "--settings", CONFIG]) == 2
    _one_line(capsys, "is outside 0.1-20 mm", folder.name)
    assert not out.exists()


def test_a_slight_tilt_is_a_warning_not_silence(tmp_path):
    """A drift of a tenth of a pixel over the stack: kept, and said in the record."""
    folder = tmp_path / "s"
    _, paths = make_series(folder)
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [f"{x + 0.05 * k:.6f}", f"{y:.6f}", f"{z:.6f}"]
        ds.save_as(path)
    record = inspect_series(folder, tmp_path / "record.json", DEFAULTS.convert)
    assert record["status"] == "accepted"
    assert any("in-plane" in w for w in record["warnings"]), record["warnings"]


def test_a_plausible_rescale_still_converts(tmp_path):
    folder = tmp_path / "s"
    hu, paths = make_series(folder, storage="unsigned-1000")
    _all(paths, RescaleSlope="0.5", RescaleIntercept="-1000")
    out = tmp_path / "hu.nii.gz"
    assert main(["convert", str(folder), str(out), "--settings", CONFIG]) == 0


def test_a_garbage_codestream_is_one_line_without_a_traceback(tmp_path):
    """The decoder's own traceback goes nowhere: the whole stderr of the command is checked."""
    folder = tmp_path / "s"
    _, paths = make_series(folder)
    _compressed(paths, JPEG2000Lossless)
    out = tmp_path / "hu.nii.gz"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "lidcseg.cli",
            "convert",
            str(folder),
            str(out),
            "--settings",
            CONFIG,
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and paths[2].name in lines[0], run.stderr
    assert not out.exists()


def test_the_values_read_are_the_values_stored(tmp_path):
    """The checks refuse only what they name: a plain series converts to its HU exactly."""
    folder = tmp_path / "s"
    hu, _ = make_series(folder)
    out = tmp_path / "hu.nii.gz"
    assert main(["convert", str(folder), str(out), "--settings", CONFIG]) == 0
    import nibabel as nib

    assert np.array_equal(np.asarray(nib.load(out).dataobj).transpose(2, 1, 0), hu)
