"""The fast header reader agrees with pydicom, and hands every file it does not fully
understand back to pydicom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian

from lidcseg.data.dicom.files import _pydicom_header
from lidcseg.data.dicom.header import read_simple_header
from lidcseg.data.dicom.series import read_series
from tests.support.defaults import DEFAULTS


def _same(fast: dict, slow: dict) -> None:
    for keyword, value in fast.items():
        expected = slow.get(keyword)
        if keyword == "PixelData":
            assert bytes(value) == bytes(expected)
        elif isinstance(value, list):
            np.testing.assert_allclose(value, [float(v) for v in expected])
        else:
            assert value == expected, keyword
    missing = {
        k for k, v in slow.items() if v is not None and k not in fast and k != "decoded_pixels"
    }
    assert missing <= {"PhotometricInterpretation", "NumberOfFrames"}


def _all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.dcm"))


def test_agrees_with_pydicom_on_written_series(series):
    folder, _, paths = series
    for path in paths:
        fast = read_simple_header(path.read_bytes())
        assert fast is not None, "our own files use the simple layout"
        _same(fast, _pydicom_header(path))


def test_agrees_with_pydicom_on_real_lidc_files(lidc_samples):
    files = _all_files(lidc_samples)
    assert len(files) == 39  # 16 + 12 + 11 slices (../shared/README.md)
    for path in files:
        fast = read_simple_header(path.read_bytes())
        assert fast is not None, f"{path.name}: real LIDC files use the simple layout"
        _same(fast, _pydicom_header(path))


def test_other_transfer_syntax_goes_to_pydicom_with_the_same_result(series):
    folder, hu, paths = series
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
        assert read_simple_header(path.read_bytes()) is None
    volume, _ = read_series(folder, DEFAULTS.convert)
    np.testing.assert_array_equal(volume.array.transpose(2, 1, 0), hu)


@pytest.mark.parametrize("cut", [0, 100, 131, 140, 400])
def test_a_file_cut_in_its_header_is_not_read(series, cut):
    _, _, paths = series
    assert read_simple_header(paths[0].read_bytes()[:cut]) is None


def test_not_dicom_is_not_read():
    assert read_simple_header(b"\x00" * 128 + b"NOPE" + b"\x00" * 200) is None
    assert read_simple_header(b"plain text " * 40) is None
