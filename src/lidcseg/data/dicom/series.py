"""A DICOM CT series to Hounsfield units with the true geometry (docs/paper.md, eq. 14).

We read every file of the series folder once (``files.py``), check what the paper's pipeline
silently assumes (one series, CT, one pixel spacing), sort slices by their position along
the slice normal (not by file name or InstanceNumber, which TCIA does not order), and apply
HU = raw * slope + intercept. Anything we cannot trust raises ScanError naming the file.

Uneven stacks are kept and placed by their real positions (``geometry.py``; docs/cohort.md,
"Uneven slice stacks"): a stray slice far off the stack is dropped with a warning, gaps and
uneven steps are recorded.
The volume's affine states the usual spacing; the real position of every slice is
``Volume.slice_z`` and ``SeriesInfo.z_mm`` (the JSON convert writes beside the volume),
which annotate and resample use.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lidcseg.config import ConvertConfig
from lidcseg.core import budget
from lidcseg.data.dicom.files import Slice, read_slice, series_files
from lidcseg.data.dicom.geometry import (
    TILT_REFUSE_PIXELS,
    TILT_WARN_PIXELS,
    Stack,
    in_plane_drift,
    plan_stack,
)
from lidcseg.data.dicom.values import check_hu
from lidcseg.errors import ScanError
from lidcseg.io import Volume, check_axes

log = logging.getLogger(__name__)

READ_THREADS = 2  # more only adds GIL contention to the parse on a warm cache


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
    z_mm: list[
        float
    ]  # every slice's real position along the normal, ascending (the volume's order)
    dropped_strays: list[str]  # files of slices far off the stack
    gaps: list[list]  # [z below, z above, file below, file above] around missing slices


def read_series(path: str | os.PathLike, convert: ConvertConfig) -> tuple[Volume, SeriesInfo]:
    """Read a CT series folder into an int16 HU volume ([x, y, z], RAS affine) and its info."""
    folder, files = series_files(path)
    if not files:
        raise ScanError(folder, "no DICOM slices in the series folder (only sidecars, or empty)")
    slices = _read_slices(files, convert)
    _check_one_series(folder, slices)
    _check_unique_instances(slices)
    _check_rescale(slices)
    _check_same_grid(slices)
    slices, dropped = _drop_duplicate_positions(slices)
    if len(slices) < 2:
        raise ScanError(folder, f"only {len(slices)} slice(s); a volume needs at least 2")
    stack = plan_stack(
        _slice_positions(slices), convert.max_gap_factor, convert.max_spacing_deviation
    )
    strays = [slices[i] for i in stack.strays]
    positions = _slice_positions(slices)[stack.keep]
    slices = [slices[i] for i in stack.keep]
    affine = _affine(slices[0], stack.spacing)
    check_axes(affine[:3, :3], folder, "the slices' grid")
    tilt = _tilt_warning(slices)
    rows, cols = slices[0].raw.shape
    budget.check((len(slices), rows, cols), np.int16, folder, copies=2)  # stored values + HU
    volume = Volume(_stack_hu(slices), affine, slice_z=positions)
    info = _series_info(slices, files, dropped, positions, volume)
    _record_geometry(info, stack, slices, strays, positions)
    info.warnings += tilt
    return volume, info


def _check_unique_instances(slices: list[Slice]) -> None:
    """One SOPInstanceUID is one image: a UID that several files carry is the same image
    listed twice, or copies of a UID, and a DICOM SEG made from the series would reference
    it as many times. Refused naming the files."""
    by_uid: dict[str, list[Slice]] = {}
    for s in slices:
        if s.sop_uid:
            by_uid.setdefault(s.sop_uid, []).append(s)
    for uid, same in by_uid.items():
        if len(same) > 1:
            names = ", ".join(s.path.name for s in same[:5]) + (", ..." if len(same) > 5 else "")
            raise ScanError(
                same[1].path, f"SOPInstanceUID {uid} is carried by {len(same)} files ({names})"
            )


def _tilt_warning(slices: list[Slice]) -> list[str]:
    """The gantry tilt rule (geometry.TILT_*): the sorted slices' in-plane drift, in pixels."""
    drift = in_plane_drift([s.position for s in slices], _normal(slices[0]))
    worst = int(np.argmax(drift))
    pixels = drift[worst] / min(slices[0].pixel_spacing)
    along = abs(float((slices[worst].position - slices[0].position) @ _normal(slices[0])))
    said = (
        f"ImagePositionPatient drifts {drift[worst]:.3g} mm in-plane over the stack "
        f"({pixels:.2g} pixels at {slices[worst].path.name}: a gantry tilt of about "
        f"{np.degrees(np.arctan2(drift[worst], along)):.2g} degrees)"
    )
    if pixels > TILT_REFUSE_PIXELS:
        raise ScanError(
            slices[worst].path, f"{said}; a tilted stack would be misplaced by whole voxels"
        )
    return [f"{said}: placed along the normal"] if pixels > TILT_WARN_PIXELS else []


def _read_slices(files: list[Path], convert: ConvertConfig) -> list[Slice]:
    """Read the files with a few threads: parsing holds the GIL, but reading from disk does
    not, so a scan that is not in the page cache reads while the previous file parses."""
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        return list(pool.map(lambda path: read_slice(path, convert), files))


def _check_one_series(folder: Path, slices: list[Slice]) -> None:
    by_series: dict[str, list[Slice]] = {}
    for s in slices:
        by_series.setdefault(s.series_uid, []).append(s)
    if len(by_series) > 1:
        parts = [f"{uid} ({len(v)} files, e.g. {v[0].path.name})" for uid, v in by_series.items()]
        raise ScanError(folder, f"{len(by_series)} series mixed in one folder: " + "; ".join(parts))
    for s in slices[1:]:
        if s.patient_id != slices[0].patient_id:
            raise ScanError(
                s.path,
                f"PatientID {s.patient_id!r} differs from {slices[0].patient_id!r} "
                f"({slices[0].path.name}) in the same series",
            )


def _check_rescale(slices: list[Slice]) -> None:
    """Eq. 14 needs one rule for the whole series (each slice's slope and intercept are
    checked as it is read, values.check_rescale): stored values read as HU (identity) only
    when no slice has the tags, since one slice without them among slices with intercept
    -1024 would be 1024 HU off."""
    defaulted = [s for s in slices if s.rescale_defaulted]
    if defaulted and len(defaulted) < len(slices):
        raise ScanError(
            defaulted[0].path,
            f"RescaleSlope/Intercept missing here but present in "
            f"{len(slices) - len(defaulted)} other slices of the series",
        )


def _check_same_grid(slices: list[Slice]) -> None:
    """All slices share the pixel grid: size, pixel spacing and orientation."""
    first = slices[0]
    for s in slices[1:]:
        if s.raw.shape != first.raw.shape:
            raise ScanError(
                s.path,
                f"image size {s.raw.shape} differs from {first.raw.shape} ({first.path.name})",
            )
        if not np.allclose(s.pixel_spacing, first.pixel_spacing, rtol=0, atol=1e-4):
            raise ScanError(
                s.path,
                f"pixel spacing {s.pixel_spacing} differs from {first.pixel_spacing} "
                f"({first.path.name})",
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
    order = sorted(
        slices, key=lambda s: (round(float(s.position @ _normal(s)), 3), s.instance_number)
    )
    kept: list[Slice] = []
    dropped: list[str] = []
    for s in order:
        if kept and abs((s.position - kept[-1].position) @ _normal(s)) < 1e-3:
            dropped.append(s.path.name)
            log.warning(
                "%s: same z as %s; kept the lower InstanceNumber", s.path, kept[-1].path.name
            )
            continue
        kept.append(s)
    return kept, dropped


def _record_geometry(
    info: SeriesInfo,
    stack: Stack,
    slices: list[Slice],
    strays: list[Slice],
    positions: np.ndarray,
) -> None:
    """Strays, gaps and uneven steps into the info and its warnings (``stack`` indices refer to
    the slices before the strays were dropped; ``slices`` and ``positions`` are the kept ones)."""
    first = int(stack.keep[0])
    for s in strays:
        z = float(s.position @ _normal(s))
        side = "below" if z < positions[0] else "above"
        off = positions[0] - z if side == "below" else z - positions[-1]
        message = f"stray slice {s.path.name} at z={z:.2f}, {off:.1f} mm {side} the stack: dropped"
        log.warning("%s: %s", s.path.parent, message)
        info.warnings.append(message)
        info.dropped_strays.append(s.path.name)
    for lo, hi in stack.gaps:
        a, b = slices[lo - first], slices[hi - first]
        za, zb = float(positions[lo - first]), float(positions[hi - first])
        info.gaps.append([za, zb, a.path.name, b.path.name])
        info.warnings.append(
            f"missing slice(s): about {round((zb - za) / stack.spacing) - 1} absent between "
            f"z={za:.2f} ({a.path.name}) and z={zb:.2f} ({b.path.name}); spacing "
            f"{stack.spacing:.3f} mm: interpolated, a nodule reaching into it is dropped"
        )
    for lo, hi in stack.uneven:
        za, zb = float(positions[lo - first]), float(positions[hi - first])
        info.warnings.append(
            f"uneven slice spacing: {zb - za:.3f} mm between z={za:.2f} "
            f"({slices[lo - first].path.name}) and z={zb:.2f}, usual {stack.spacing:.3f} mm: "
            "placed by the real z"
        )


def _stack_hu(slices: list[Slice]) -> np.ndarray:
    """Convert each slice straight into one preallocated (z, y, x) int16 block: a single
    large allocation (first-touch page faults of a fresh 100+ MB block cost more than the
    arithmetic). A (z, y, x) C-ordered array is the [x, y, z] Fortran-ordered array NIfTI
    stores, so the final transpose is free."""
    rows, cols = slices[0].raw.shape
    hu = np.empty((len(slices), rows, cols), dtype=np.int16)
    for k, s in enumerate(slices):
        _to_hu(s.raw, s.slope, s.intercept, out=hu[k], path=s.path)
    return hu.transpose(2, 1, 0)


def _to_hu(raw: np.ndarray, slope: float, intercept: float, out: np.ndarray, path) -> None:
    """HU = raw * slope + intercept (eq. 14), rounded to int16; HU beyond int16 are refused
    (values.check_hu), never clipped."""
    low, high = sorted((float(raw.min()) * slope + intercept, float(raw.max()) * slope + intercept))
    check_hu(round(low), round(high), path)
    if slope == 1.0 and float(intercept).is_integer():  # exact in int16: no float copy
        np.add(
            raw, int(intercept), out=out, dtype=np.int32, casting="unsafe"
        )  # buffered, no big temporary
        return
    out[...] = np.rint(raw.astype(np.float32) * np.float32(slope) + np.float32(intercept))


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
    warnings = [
        f"RescaleSlope/Intercept missing in {s.path.name}: read as HU"
        for s in slices
        if s.rescale_defaulted
    ]
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
        z_mm=[float(z) for z in positions],
        dropped_strays=[],
        gaps=[],
    )
