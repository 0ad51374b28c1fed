"""DICOM CT series to Hounsfield units with the true geometry (SPEC.md, Pre-processing, eq. 14).

A series folder holds one CT series, one file per axial slice. We read every file once,
check what the paper's pipeline silently assumes (one series, CT, one pixel spacing, evenly
spaced slices with none missing), sort slices by their position along the slice normal (not
by file name or InstanceNumber, which TCIA does not order), and apply HU = raw * slope +
intercept. Anything we cannot trust raises ScanError naming the file.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from lidcseg.data.dicom_header import TAGS, read_simple_header
from lidcseg.data.volume import Volume
from lidcseg.errors import ScanError

log = logging.getLogger(__name__)

# Files that legitimately sit beside the slices of a TCIA download: the LIDC reader XML.
SIDECAR_SUFFIXES = frozenset({".xml"})
READ_THREADS = 2  # more only adds GIL contention to the parse on a warm cache
# The tags convert reads (pydicom skips converting the others); the last two only matter
# for decoding compressed pixel data, which the fast reader leaves to pydicom.
USED_TAGS = (*TAGS, "PhotometricInterpretation", "NumberOfFrames")
UNCOMPRESSED_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
)


@dataclass(frozen=True)
class SeriesChecks:
    """Tolerances of the series checks (config ``convert``)."""

    max_gap_factor: float = 1.5  # a step this many times the usual spacing is a missing slice
    max_spacing_deviation: float = 0.05  # larger relative deviation: irregular spacing
    missing_rescale: str = "identity"  # or "error": what to do without RescaleSlope/Intercept


@dataclass
class Slice:
    """One axial image: where it is, how to turn its stored values into HU, and the values."""

    path: Path
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


@dataclass
class SeriesInfo:
    """What convert learned about a series; written beside the HU volume as JSON."""

    patient_id: str
    study_uid: str
    series_uid: str
    n_files: int
    n_slices: int
    spacing_mm: tuple[float, float, float]
    z_first_mm: float
    z_last_mm: float
    rescale: list[tuple[float, float]]
    dropped_duplicates: list[str]
    warnings: list[str]


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
    try:
        named = json.loads(manifest.read_text()).get("series_dir")
    except (ValueError, AttributeError) as exc:
        raise ScanError(manifest, f"unreadable manifest ({exc})") from exc
    if not named:
        return None
    folder = patient_dir / named
    if not folder.is_dir():
        raise ScanError(manifest, f"names series folder {folder}, which does not exist")
    return folder


def series_identity(path: str | os.PathLike) -> tuple[str, str]:
    """(PatientID, SeriesInstanceUID) of a series folder, from its first file only."""
    folder = find_series_dir(path)
    files = _candidate_files(folder)
    if not files:
        raise ScanError(folder, "no files in the series folder")
    header = _read_header(files[0])
    return header.get("PatientID") or "", header.get("SeriesInstanceUID") or ""


def read_series(path: str | os.PathLike, checks: SeriesChecks = SeriesChecks()) -> tuple[Volume, SeriesInfo]:
    """Read a CT series folder into an int16 HU volume ([x, y, z], RAS affine) and its info."""
    folder = find_series_dir(path)
    files = _candidate_files(folder)
    slices = _read_slices(files, checks)
    _check_one_series(folder, slices)
    _check_same_grid(slices)
    slices, dropped = _drop_duplicate_positions(slices)
    if len(slices) < 2:
        raise ScanError(folder, f"only {len(slices)} slice(s); a volume needs at least 2")
    positions = _slice_positions(slices)
    spacing_z = _check_even_spacing(slices, positions, checks)
    volume = Volume(_stack_hu(slices), _affine(slices[0], spacing_z))
    info = _series_info(slices, files, dropped, positions, volume)
    return volume, info


def _read_slices(files: list[Path], checks: SeriesChecks) -> list[Slice]:
    """Read the files with a few threads: parsing holds the GIL, but reading from disk does
    not, so a scan that is not in the page cache reads while the previous file parses."""
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        return list(pool.map(lambda path: read_slice(path, checks), files))


def read_slice(path: Path, checks: SeriesChecks = SeriesChecks()) -> Slice:
    """Read and check one file: a DICOM CT image, pixels complete, rescale known."""
    header = _read_header(path)
    modality = header.get("Modality") or ""
    if modality != "CT":
        raise ScanError(path, f"not a CT image (Modality={modality or 'missing'})")
    if header.get("PixelData") is None:
        raise ScanError(path, "DICOM without pixel data (not an image)")
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        if header.get(keyword) is None:
            raise ScanError(path, f"{keyword} missing: the slice cannot be placed")
    slope, intercept, defaulted = _rescale(header, path, checks)
    return Slice(
        path=path,
        series_uid=header.get("SeriesInstanceUID") or "",
        study_uid=header.get("StudyInstanceUID") or "",
        patient_id=header.get("PatientID") or "",
        instance_number=int(header.get("InstanceNumber") or 0),
        position=np.array(header["ImagePositionPatient"], dtype=float),
        orientation=np.array(header["ImageOrientationPatient"], dtype=float),
        pixel_spacing=(float(header["PixelSpacing"][0]), float(header["PixelSpacing"][1])),
        slope=slope,
        intercept=intercept,
        rescale_defaulted=defaulted,
        raw=_stored_values(header, path),
    )


def _read_header(path: Path) -> dict:
    """The USED_TAGS of a file as plain values: the fast reader for the simple layout of
    LIDC files (lidcseg.data.dicom_header), pydicom for everything else and for errors."""
    data = path.read_bytes()
    if not data:
        raise ScanError(path, "empty file (0 bytes)")
    header = read_simple_header(data)
    return header if header is not None else _pydicom_header(path)


def _pydicom_header(path: Path) -> dict:
    try:
        ds = pydicom.dcmread(path, specific_tags=list(USED_TAGS))
        header = {keyword: ds.get(keyword) for keyword in USED_TAGS}
        header["TransferSyntaxUID"] = str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2.1"))
    except InvalidDicomError:
        raise ScanError(path, "not a DICOM file") from None
    except Exception as exc:  # pydicom raises many types on truncated headers
        raise ScanError(path, f"unreadable DICOM ({type(exc).__name__}: {exc})") from None
    if header["TransferSyntaxUID"] not in UNCOMPRESSED_SYNTAXES and header["PixelData"] is not None:
        header["decoded_pixels"] = lambda: ds.pixel_array
    return header


def _candidate_files(folder: Path) -> list[Path]:
    """Every file of the folder that must be a slice: all but hidden files and sidecars."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in SIDECAR_SUFFIXES
    )


def _rescale(header: dict, path: Path, checks: SeriesChecks) -> tuple[float, float, bool]:
    """RescaleSlope/Intercept (eq. 14). Both are mandatory for CT (Type 1); when they are
    missing, ``missing_rescale: identity`` reads the stored values as HU (slope 1, intercept
    0, which is what a signed CT without the tags means) and records a warning."""
    slope, intercept = header.get("RescaleSlope"), header.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        return float(slope), float(intercept), False
    if checks.missing_rescale == "error":
        raise ScanError(path, "RescaleSlope/RescaleIntercept missing (convert.missing_rescale: error)")
    return 1.0, 0.0, True


def _stored_values(header: dict, path: Path) -> np.ndarray:
    """The stored pixel values as a (rows, columns) integer array, checked for truncation."""
    rows, cols = int(header["Rows"]), int(header["Columns"])
    if int(header.get("SamplesPerPixel") or 1) != 1:
        raise ScanError(path, "colour image (SamplesPerPixel != 1), not a CT slice")
    syntax = UID(header["TransferSyntaxUID"])
    if syntax not in UNCOMPRESSED_SYNTAXES:
        try:
            return header["decoded_pixels"]().reshape(rows, cols)
        except Exception as exc:
            raise ScanError(path, f"cannot decode compressed pixel data ({syntax.name}): {exc}") from None
    bits = int(header["BitsAllocated"])
    signed = int(header["PixelRepresentation"]) == 1
    if bits not in (8, 16):
        raise ScanError(path, f"BitsAllocated={bits}; CT slices store 16 (or 8) bits")
    dtype = np.dtype(f"{'<' if syntax.is_little_endian else '>'}{'i' if signed else 'u'}{bits // 8}")
    expected = rows * cols * dtype.itemsize
    data = header["PixelData"]
    if len(data) < expected:
        raise ScanError(path, f"truncated pixel data: {len(data)} of {expected} bytes")
    raw = np.frombuffer(data, dtype=dtype, count=rows * cols).reshape(rows, cols)
    stored = int(header.get("BitsStored") or bits)
    if signed and stored < bits:  # sign-extend the stored bits (e.g. 12-bit signed in 16)
        shift = bits - stored
        raw = (raw.astype(np.int16) << shift) >> shift
    return raw


def _check_one_series(folder: Path, slices: list[Slice]) -> None:
    by_series: dict[str, list[Slice]] = {}
    for s in slices:
        by_series.setdefault(s.series_uid, []).append(s)
    if len(by_series) > 1:
        parts = [f"{uid} ({len(v)} files, e.g. {v[0].path.name})" for uid, v in by_series.items()]
        raise ScanError(folder, f"{len(by_series)} series mixed in one folder: " + "; ".join(parts))


def _check_same_grid(slices: list[Slice]) -> None:
    """All slices share the pixel grid: size, pixel spacing and orientation."""
    first = slices[0]
    for s in slices[1:]:
        if s.raw.shape != first.raw.shape:
            raise ScanError(s.path, f"image size {s.raw.shape} differs from {first.raw.shape} ({first.path.name})")
        if not np.allclose(s.pixel_spacing, first.pixel_spacing, rtol=0, atol=1e-4):
            raise ScanError(
                s.path, f"pixel spacing {s.pixel_spacing} differs from {first.pixel_spacing} ({first.path.name})"
            )
        if not np.allclose(s.orientation, first.orientation, atol=1e-4):
            raise ScanError(s.path, f"orientation differs from {first.path.name}: not one stack")


def _slice_positions(slices: list[Slice]) -> np.ndarray:
    return np.array([s.position @ _normal(s) for s in slices])


def _normal(s: Slice) -> np.ndarray:
    return np.cross(s.orientation[:3], s.orientation[3:])


def _drop_duplicate_positions(slices: list[Slice]) -> tuple[list[Slice], list[str]]:
    """Sort by position along the slice normal; of slices at the same position keep the one
    with the lower InstanceNumber (what pylidc's Scan.load_all_dicom_images does)."""
    order = sorted(slices, key=lambda s: (round(float(s.position @ _normal(s)), 3), s.instance_number))
    kept: list[Slice] = []
    dropped: list[str] = []
    for s in order:
        if kept and abs((s.position - kept[-1].position) @ _normal(s)) < 1e-3:
            dropped.append(s.path.name)
            log.warning("%s: same z as %s; kept the lower InstanceNumber", s.path, kept[-1].path.name)
            continue
        kept.append(s)
    return kept, dropped


def _check_even_spacing(slices: list[Slice], positions: np.ndarray, checks: SeriesChecks) -> float:
    """The slice spacing; raises on a missing slice (a gap) or uneven spacing."""
    steps = np.diff(positions)
    nominal = float(np.median(steps))
    for i, step in enumerate(steps):
        a, b = slices[i], slices[i + 1]
        where = f"between z={positions[i]:.2f} ({a.path.name}) and z={positions[i + 1]:.2f} ({b.path.name})"
        if step > checks.max_gap_factor * nominal:
            missing = round(step / nominal) - 1
            raise ScanError(a.path.parent, f"missing slice(s): about {missing} absent {where}; spacing {nominal:.3f} mm")
        if abs(step - nominal) > checks.max_spacing_deviation * nominal:
            raise ScanError(a.path.parent, f"uneven slice spacing: {step:.3f} mm {where}, usual {nominal:.3f} mm")
    return nominal


def _stack_hu(slices: list[Slice]) -> np.ndarray:
    """Convert each slice straight into one preallocated (z, y, x) int16 block: a single
    large allocation (first-touch page faults of a fresh 100+ MB block cost more than the
    arithmetic). A (z, y, x) C-ordered array is the [x, y, z] Fortran-ordered array NIfTI
    stores, so the final transpose is free."""
    rows, cols = slices[0].raw.shape
    hu = np.empty((len(slices), rows, cols), dtype=np.int16)
    for k, s in enumerate(slices):
        _to_hu(s.raw, s.slope, s.intercept, out=hu[k])
    return hu.transpose(2, 1, 0)


def _to_hu(raw: np.ndarray, slope: float, intercept: float, out: np.ndarray) -> None:
    """HU = raw * slope + intercept (eq. 14), rounded and clipped to int16."""
    if slope == 1.0 and float(intercept).is_integer():
        low, high = int(raw.min()) + int(intercept), int(raw.max()) + int(intercept)
        if -32768 <= low and high <= 32767:  # exact in int16: no float copy
            np.add(raw, int(intercept), out=out, dtype=np.int32, casting="unsafe")  # buffered, no big temporary
            return
    values = np.rint(raw.astype(np.float32) * np.float32(slope) + np.float32(intercept))
    np.clip(values, -32768, 32767, out=values)
    out[...] = values


def _affine(first: Slice, spacing_z: float) -> np.ndarray:
    """Voxel [x, y, z] to RAS mm. DICOM: columns run along the row cosines with the column
    spacing (PixelSpacing[1]), rows along the column cosines with PixelSpacing[0]."""
    row_cos, col_cos = first.orientation[:3], first.orientation[3:]
    lps = np.eye(4)
    lps[:3, 0] = row_cos * first.pixel_spacing[1]
    lps[:3, 1] = col_cos * first.pixel_spacing[0]
    lps[:3, 2] = _normal(first) * spacing_z
    lps[:3, 3] = first.position
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _series_info(slices, files, dropped, positions, volume: Volume) -> SeriesInfo:
    first = slices[0]
    warnings = [f"RescaleSlope/Intercept missing in {s.path.name}: read as HU" for s in slices if s.rescale_defaulted]
    warnings += [f"duplicate z: dropped {name} (higher InstanceNumber)" for name in dropped]
    return SeriesInfo(
        patient_id=first.patient_id,
        study_uid=first.study_uid,
        series_uid=first.series_uid,
        n_files=len(files),
        n_slices=len(slices),
        spacing_mm=volume.spacing,
        z_first_mm=float(positions[0]),
        z_last_mm=float(positions[-1]),
        rescale=sorted({(s.slope, s.intercept) for s in slices}),
        dropped_duplicates=dropped,
        warnings=warnings,
    )
