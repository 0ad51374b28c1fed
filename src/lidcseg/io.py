"""Files on disk: NIfTI for volumes (open them in 3D Slicer or ITK-SNAP), JSON and CSV beside.

Convention, used by every stage: the array is indexed ``[x, y, z]`` = [DICOM column, DICOM
row, slice], slices in increasing patient z, and the affine maps voxel indices to RAS
millimetres (NIfTI's world space; DICOM's LPS with x and y negated).
"""

from __future__ import annotations

import csv
import json
import math
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.fileholders import FileHolder

from lidcseg.errors import LidcsegError, ScanError
from lidcseg.staging import (  # noqa: F401  (how outputs appear; every stage imports them here)
    atomic_file,
    check_complete,
    output_group,
    staged_folder,
)

try:  # ISA-L's gzip: the same format and ratio, about 4x faster than zlib at level 1
    from isal.igzip import IGzipFile as GzipFile
except ImportError:  # pragma: no cover - isal is a dependency; stay correct without it
    from gzip import GzipFile

# Level 1: CT noise barely compresses further at higher levels (64 vs 62 MB for a
# 137 MB scan), while each level costs time.
NIFTI_GZIP_LEVEL = 1


@dataclass
class Volume:
    """A 3-D array with the affine that places it in RAS millimetres, and where known the
    real position (mm along the slice normal) of each slice: the affine states one spacing,
    which some real stacks do not have (lidcseg.data.dicom.geometry)."""

    array: np.ndarray
    affine: np.ndarray
    slice_z: np.ndarray | None = None

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along x, y, z (the lengths of the affine's columns)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Physical size covered by the voxels (shape times spacing)."""
        return tuple(n * s for n, s in zip(self.array.shape, self.spacing))


def input_file(path: str | os.PathLike) -> Path:
    """``path`` checked before it is opened: a regular file (a FIFO would block the read for
    ever, a device never end: refused, named) that no killed job left incomplete
    (:func:`lidcseg.staging.check_complete`). A missing one raises FileNotFoundError."""
    path = Path(path)
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise LidcsegError(f"{path}: not a regular file (only regular files are read)")
    check_complete(path)
    return path


def save_nifti(volume: Volume, path: str | os.PathLike) -> None:
    """Write ``volume`` atomically (temporary file, then rename), so a killed job leaves no
    half-written output that Snakemake or a reader could mistake for a finished one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(volume.array, volume.affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(volume.affine, code=1)  # 1 = scanner coordinates
    image.set_sform(volume.affine, code=1)
    with atomic_file(path) as tmp:
        if path.name.endswith(".gz"):
            # No name and a fixed mtime in the gzip header: the same volume always gives
            # the same bytes, so content hashes (DVC) do not change on a rerun.
            with (
                open(tmp, "wb") as raw,
                GzipFile(
                    filename="", mode="wb", fileobj=raw, compresslevel=NIFTI_GZIP_LEVEL, mtime=0
                ) as stream,
            ):
                image.to_file_map({"image": FileHolder(fileobj=stream)})
        else:
            nib.save(image, tmp)


# The voxel sizes a CT volume can have: the finest in-plane pixels are about 0.2 mm (a
# 512 matrix over 10 cm), the thickest slices 10 mm. A spacing outside 0.1-20 mm is a unit
# slip (m or um for mm) or a broken header, and would size the resampled grid by 1000s.
SPACING_RANGE_MM = (0.1, 20.0)
# The largest |cosine| between two voxel axes (about 0.06 degrees off square): a sheared
# grid is not one the stages' axis-by-axis resampling can follow.
AXIS_COSINE_TOLERANCE = 1e-3
NIFTI1_HEADER_BYTES = 352  # the header and the 4 bytes that flag extensions


def check_axes(axes, where, what: str = "affine") -> None:
    """The one rule for a volume's grid, whatever file it came from (a NIfTI's affine, a
    DICOM series' orientation and spacings): the three voxel axes (the columns of ``axes``,
    mm) are finite, independent, mutually orthogonal and each 0.1-20 mm long. Anything else
    would place voxels wrongly or size a grid from a typo, so it is refused naming ``where``."""
    axes = np.asarray(axes, dtype=float)
    if not np.isfinite(axes).all():
        raise ScanError(where, f"{what} holds non-finite values: voxels cannot be placed")
    spacing = np.linalg.norm(axes, axis=0)
    if spacing.min() == 0 or abs(np.linalg.det(axes)) < 1e-9 * spacing.prod():
        raise ScanError(where, f"{what} is singular (a voxel axis is zero or two are parallel)")
    low, high = SPACING_RANGE_MM
    if spacing.min() < low or spacing.max() > high:
        shown = ", ".join(f"{s:.4g}" for s in spacing)
        raise ScanError(where, f"voxel spacing [{shown}] mm is outside {low:g}-{high:g} mm")
    cosines = np.abs(np.triu((axes / spacing).T @ (axes / spacing), 1))
    if cosines.max() > AXIS_COSINE_TOLERANCE:
        i, j = np.unravel_index(np.argmax(cosines), cosines.shape)
        raise ScanError(
            where,
            f"{what} is sheared: voxel axes {i} and {j} are not orthogonal "
            f"(cosine {cosines[i, j]:.3g}, at most {AXIS_COSINE_TOLERANCE:g})",
        )


def load_nifti(path: str | os.PathLike, budget: Callable | None = None) -> Volume:
    """Read a NIfTI (ours or anyone's) with its stored dtype; .gz is inflated with ISA-L.

    Every volume a stage reads is a CT volume, so one validation, from the header before any
    voxel is read: 3-D (trailing axes of length 1 dropped), no axis of length 0, real voxels
    (not RGB or complex), a grid that :func:`check_axes` accepts. ``budget(shape, dtype,
    path, copies)`` (the stages pass lidcseg.core.budget.check) refuses a header that
    declares more voxels than the memory limit, before they are inflated. Then the voxels
    must be finite: a NaN would read as 0 HU downstream. A file that is not a NIfTI (cut
    short, not gzip) or fails a check is refused with its name."""
    path = input_file(path)
    try:
        if path.name.endswith(".gz"):
            with GzipFile(path, "rb") as stream:
                head = stream.read(NIFTI1_HEADER_BYTES)
                header = nib.Nifti1Header(head[:348])
                shape, dtype = _nifti_layout(header, path, budget, copies=2)
                size = max(int(header["vox_offset"]), len(head)) + _stored_bytes(header)
                image = nib.Nifti1Image.from_bytes(head + stream.read(size - len(head)))
        else:
            image = nib.load(path)
            shape, dtype = _nifti_layout(image.header, path, budget, copies=1)
        array = np.asanyarray(image.dataobj).reshape(shape)
    except (FileNotFoundError, LidcsegError):
        raise
    except Exception as exc:  # gzip, zlib, EOF and nibabel's header errors all mean the same here
        raise ScanError(path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})") from None
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))
        raise ScanError(path, f"{len(bad)} voxels are NaN or infinite (first at {bad[0].tolist()})")
    return Volume(array=array, affine=image.affine.astype(np.float64))


def _nifti_layout(header, path: Path, budget, copies: int) -> tuple[tuple[int, ...], np.dtype]:
    """The 3-D shape and the dtype the voxels will have, checked (:func:`load_nifti`)."""
    shape = tuple(int(n) for n in header.get_data_shape())
    if len(shape) < 3 or any(n != 1 for n in shape[3:]):
        raise ScanError(path, f"{len(shape)}-D data of shape {shape}: a CT volume is 3-D")
    if min(shape[:3]) <= 0:
        raise ScanError(path, f"shape {shape} has an axis of length 0: no voxels")
    stored = header.get_data_dtype()
    if stored.fields is not None or stored.kind not in "biuf":
        raise ScanError(path, f"voxels of type {stored} (RGB or complex): CT voxels are real")
    check_axes(header.get_best_affine()[:3, :3], path)
    scaled = header.get_slope_inter() not in ((None, None), (1.0, 0.0))
    dtype = np.dtype(np.float64) if scaled else stored
    if budget is not None:
        budget(shape[:3], dtype, path, copies)
    return shape[:3], dtype


def _stored_bytes(header) -> int:
    return math.prod(int(n) for n in header.get_data_shape()) * header.get_data_dtype().itemsize


def sidecar(nifti: str | os.PathLike) -> Path:
    """``x.nii.gz`` -> ``x.json``: where a stage writes what it found beside a volume."""
    nifti = Path(nifti)
    return nifti.with_name(nifti.name.removesuffix(".gz").removesuffix(".nii") + ".json")


def slice_positions_beside(nifti: str | os.PathLike, n_slices: int) -> np.ndarray | None:
    """The real slice positions convert recorded beside ``nifti`` (its JSON's ``z_mm``), or
    None when there is no such record (a volume from elsewhere: its affine is all we know).
    A record that does not fit the volume is named: it belongs to another conversion."""
    path = sidecar(nifti)
    if not path.is_file():
        return None
    record = read_json(path)
    z_mm = record.get("z_mm") if isinstance(record, dict) else None
    if z_mm is None:
        return None
    plain = isinstance(z_mm, list) and all(
        isinstance(z, int | float) and not isinstance(z, bool) for z in z_mm
    )
    # finite and rising (this module's convention): else resampling places slices nowhere
    if not plain or not (np.isfinite(z_mm).all() and (np.diff(z_mm) > 0).all()):
        raise ScanError(path, "z_mm is not a list of finite, rising slice positions (mm)")
    if len(z_mm) != n_slices:
        raise ScanError(
            path, f"records {len(z_mm)} slice positions for a volume of {n_slices} slices"
        )
    return np.asarray(z_mm, dtype=float)


def write_json(data: dict, path: str | os.PathLike) -> None:
    """Write ``data`` as indented JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, default=_to_builtin) + "\n")


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)


def read_json(path: str | os.PathLike):
    """A JSON file; one that does not parse is refused with its name."""
    try:
        return json.loads(input_file(path).read_text())
    except ValueError as exc:
        raise LidcsegError(f"{path}: not valid JSON ({exc})") from None


def write_rows(rows: list[dict], path: str | os.PathLike, fields) -> None:
    """Write dict rows as CSV with the columns ``fields`` (others ignored), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(
            f, fields, extrasaction="ignore", delimiter="\t" if path.suffix == ".tsv" else ","
        )
        writer.writeheader()
        writer.writerows(rows)


def read_rows(path: str | os.PathLike) -> list[dict]:
    """CSV (or .tsv) rows as dicts of strings."""
    path = input_file(path)
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    except (UnicodeDecodeError, csv.Error) as error:
        raise LidcsegError(
            f"{path}: not a readable table ({type(error).__name__}: {error})"
        ) from None


def save_figure(figure, path: str | os.PathLike, **savefig) -> None:
    """A matplotlib figure to ``path``, atomically (and in the enclosing output group, if any)."""
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format=Path(path).suffix.lstrip("."), **savefig)


def save_npz(path: str | os.PathLike, compressed: bool = False, **arrays) -> None:
    """Arrays to one .npz, atomically (and in the enclosing output group, if any). Through
    an open file: given a name, NumPy would add ``.npz`` to one without it and write there."""
    with atomic_file(path) as tmp, open(tmp, "wb") as handle:
        (np.savez_compressed if compressed else np.savez)(handle, **arrays)


def _to_builtin(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
