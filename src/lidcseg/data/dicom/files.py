"""The files of a DICOM CT series: finding the series folder, reading one slice
(docs/paper.md, eq. 14).

One file is one axial image. A file is read once, through the fast header reader for the
simple layout of LIDC files (``header.py``) or pydicom for anything else, and refused with a
ScanError naming it when it is not a CT image we can place and convert to HU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from lidcseg.config import ConvertConfig
from lidcseg.core import budget
from lidcseg.core.series_manifest import SeriesManifest
from lidcseg.data.dicom.header import TAGS, cut_short, read_simple_header
from lidcseg.data.dicom.values import (
    check_orientation,
    check_pixel_spacing,
    check_rescale,
    decoding,
    instance_number,
    pixel_layout,
)
from lidcseg.errors import ScanError

# Files that legitimately sit beside the slices of a TCIA download: the LIDC reader XML.
SIDECAR_SUFFIXES = frozenset({".xml"})
# The tags convert reads (pydicom skips converting the others); the last two only matter
# for decoding compressed pixel data, which the fast reader leaves to pydicom.
USED_TAGS = (*TAGS, "PhotometricInterpretation", "NumberOfFrames")
UNCOMPRESSED_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
)


@dataclass
class Slice:
    """One axial image: where it is, how to turn its stored values into HU, and the values."""

    path: Path
    sop_uid: str
    series_uid: str
    study_uid: str
    patient_id: str
    instance_number: int
    position: np.ndarray  # ImagePositionPatient, LPS mm
    orientation: np.ndarray  # ImageOrientationPatient (row cosines, column cosines)
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing) as in DICOM
    slope: float
    intercept: float
    rescale_defaulted: bool
    raw: np.ndarray = field(repr=False)  # (rows, columns), stored values


def find_series_dir(path: str | os.PathLike) -> Path:
    """The folder holding the slices: ``path`` itself, or the one series folder below it
    (so a patient folder in TCIA layout, ``<patient>/<study>/<series>/``, is accepted). A
    patient folder with a ``series.json`` (written by synthesize and download) names the
    series to read, so a patient whose archive holds two scans is read without asking."""
    path = Path(path)
    if not path.is_dir():
        raise ScanError(path, "not a folder")
    named = _series_named_by_manifest(path)
    if named is not None:
        return named
    if not any(p.is_dir() for p in path.iterdir()):
        return path  # a leaf folder: the series itself
    found = sorted({p.parent for p in path.rglob("*.dcm") if not p.name.startswith(".")})
    if not found:
        raise ScanError(path, "no DICOM files (*.dcm) in this folder or below it")
    if len(found) > 1:
        listing = ", ".join(str(p.relative_to(path)) for p in found)
        raise ScanError(path, f"{len(found)} series folders below it ({listing}); name one")
    return found[0]


def _series_named_by_manifest(patient_dir: Path) -> Path | None:
    manifest = patient_dir / "series.json"
    if not manifest.is_file():
        return None
    folder = patient_dir / SeriesManifest.load(manifest).series_dir  # absolute stays absolute
    if not folder.is_dir():
        raise ScanError(manifest, f"names series folder {folder}, which does not exist")
    return folder


def series_files(path: str | os.PathLike) -> tuple[Path, list[Path]]:
    """The series folder (``find_series_dir``) and its slices' files: those series.json lists
    (a copy on disk read in place, whose folders may hold other series or other files), else
    every ``candidate_files`` of the folder."""
    folder = find_series_dir(path)
    manifest = Path(path) / "series.json"
    listed = SeriesManifest.load(manifest).files if manifest.is_file() else []
    if not listed:
        return folder, candidate_files(folder)
    files = [folder / name for name in listed]
    gone = [f for f in files if not f.is_file()]
    if gone:
        raise ScanError(
            manifest,
            f"lists {len(gone)} file(s) no longer there (first: {gone[0]}): "
            "rerun lidcseg index-local and local-series",
        )
    return folder, sorted(files)


def series_identity(path: str | os.PathLike) -> tuple[str, str]:
    """(PatientID, SeriesInstanceUID) of a series folder, from its first file only."""
    folder, files = series_files(path)
    if not files:
        raise ScanError(folder, "no files in the series folder")
    header = _read_header(files[0])
    return header.get("PatientID") or "", header.get("SeriesInstanceUID") or ""


def read_slice(path: Path, convert: ConvertConfig) -> Slice:
    """Read and check one file: a DICOM CT image, pixels complete, rescale known."""
    header = _read_header(path)
    modality = header.get("Modality") or ""
    if header.get("PixelData") is None and cut_short(path.read_bytes()):
        raise ScanError(
            path,
            f"truncated: its {path.stat().st_size} bytes end inside an element, "
            "before the pixel data",
        )
    if modality != "CT":
        raise ScanError(path, f"not a CT image (Modality={modality or 'missing'})")
    if header.get("PixelData") is None:
        raise ScanError(path, "DICOM without pixel data (not an image)")
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        if header.get(keyword) is None:
            raise ScanError(path, f"{keyword} missing: the slice cannot be placed")
    slope, intercept, defaulted = _rescale(header, path, convert)
    orientation = _numbers(header, "ImageOrientationPatient", 6, path)
    check_orientation(orientation, path)
    return Slice(
        path=path,
        sop_uid=str(header.get("SOPInstanceUID") or ""),
        series_uid=header.get("SeriesInstanceUID") or "",
        study_uid=header.get("StudyInstanceUID") or "",
        patient_id=header.get("PatientID") or "",
        instance_number=instance_number(header.get("InstanceNumber"), path),
        position=_numbers(header, "ImagePositionPatient", 3, path),
        orientation=orientation,
        pixel_spacing=_pixel_spacing(header, path),
        slope=slope,
        intercept=intercept,
        rescale_defaulted=defaulted,
        raw=_stored_values(header, path),
    )


def _numbers(header: dict, keyword: str, count: int, path: Path) -> np.ndarray:
    """A multi-valued tag as ``count`` finite floats; anything else cannot place the slice."""
    try:
        values = np.array([float(v) for v in header[keyword]], dtype=float)
    except (TypeError, ValueError):
        raise ScanError(path, f"{keyword} {header[keyword]!r} is not a list of numbers") from None
    if values.shape != (count,) or not np.isfinite(values).all():
        raise ScanError(path, f"{keyword} {values.tolist()} is not {count} finite numbers")
    return values


def _pixel_spacing(header: dict, path: Path) -> tuple[float, float]:
    """(row, column) spacing in mm: two positive numbers (one value, or 0, cannot make a grid)."""
    spacing = _numbers(header, "PixelSpacing", 2, path)
    if (spacing <= 0).any():
        raise ScanError(path, f"PixelSpacing {spacing.tolist()} is not positive")
    check_pixel_spacing(spacing, path)
    return float(spacing[0]), float(spacing[1])


def _read_header(path: Path) -> dict:
    """The USED_TAGS of a file as plain values: the fast reader for the simple layout of
    LIDC files (lidcseg.data.dicom.header), pydicom for everything else and for errors."""
    data = path.read_bytes()
    if not data:
        raise ScanError(path, "empty file (0 bytes)")
    header = read_simple_header(data)
    return header if header is not None else _pydicom_header(path)


def _pydicom_header(path: Path) -> dict:
    try:
        ds = pydicom.dcmread(path, specific_tags=list(USED_TAGS))
        header = {keyword: ds.get(keyword) for keyword in USED_TAGS}
        header["TransferSyntaxUID"] = str(
            ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2.1")
        )
    except InvalidDicomError:
        raise ScanError(path, "not a DICOM file") from None
    except Exception as exc:  # pydicom raises many types on truncated headers
        raise ScanError(path, f"unreadable DICOM ({type(exc).__name__}: {exc})") from None
    if header["TransferSyntaxUID"] not in UNCOMPRESSED_SYNTAXES and header["PixelData"] is not None:
        header["decoded_pixels"] = lambda: ds.pixel_array
    return header


def candidate_files(folder: Path) -> list[Path]:
    """Every file of the folder that must be a slice: all but hidden files and sidecars."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in SIDECAR_SUFFIXES
    )


def _rescale(header: dict, path: Path, convert: ConvertConfig) -> tuple[float, float, bool]:
    """RescaleSlope/Intercept (eq. 14). Both are mandatory for CT (Type 1); when they are
    missing, ``missing_rescale: identity`` reads the stored values as HU (slope 1, intercept
    0, which is what a signed CT without the tags means) and records a warning."""
    slope, intercept = header.get("RescaleSlope"), header.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        return check_rescale(slope, intercept, path) + (False,)
    if convert.missing_rescale == "error":
        raise ScanError(
            path, "RescaleSlope/RescaleIntercept missing (convert.missing_rescale: error)"
        )
    return 1.0, 0.0, True


def _stored_values(header: dict, path: Path) -> np.ndarray:
    """The stored pixel values as a (rows, columns) integer array, checked for truncation."""
    if int(header.get("SamplesPerPixel") or 1) != 1:
        raise ScanError(path, "colour image (SamplesPerPixel != 1), not a CT slice")
    rows, cols, bits, stored, signed = pixel_layout(header, path)
    syntax = UID(header["TransferSyntaxUID"])
    if syntax not in UNCOMPRESSED_SYNTAXES:
        budget.check((rows, cols), np.int32, path)  # what the decoder will allocate
        with decoding(syntax, path):
            raw = header["decoded_pixels"]().reshape(rows, cols)
        return _within_bits(raw, stored, signed, path)
    dtype = np.dtype(
        f"{'<' if syntax.is_little_endian else '>'}{'i' if signed else 'u'}{bits // 8}"
    )
    expected = rows * cols * dtype.itemsize
    data = header["PixelData"]
    if len(data) < expected:
        raise ScanError(path, f"truncated pixel data: {len(data)} of {expected} bytes")
    raw = np.frombuffer(data, dtype=dtype, count=rows * cols).reshape(rows, cols)
    if signed and stored < bits:  # sign-extend the stored bits (e.g. 12-bit signed in 16)
        shift = bits - stored
        raw = (raw.astype(np.int16) << shift) >> shift
    return _within_bits(raw, stored, signed, path)


def _within_bits(raw: np.ndarray, stored: int, signed: bool, path: Path) -> np.ndarray:
    """Unsigned stored values fit in BitsStored: a larger one means the pixel module does
    not describe the data (signed values declared unsigned, or BitsStored too small), and
    would become HU tens of thousands too high."""
    if not signed and stored < raw.dtype.itemsize * 8 and int(raw.max()) >= 1 << stored:
        raise ScanError(
            path,
            f"stored value {int(raw.max())} does not fit BitsStored={stored} unsigned "
            "(PixelRepresentation 0): the pixel module does not describe the data",
        )
    return raw
