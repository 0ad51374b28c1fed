"""Files on disk: NIfTI for volumes (open them in 3D Slicer or ITK-SNAP), JSON and CSV beside.

Convention, used by every stage: the array is indexed ``[x, y, z]`` = [DICOM column, DICOM
row, slice], slices in increasing patient z, and the affine maps voxel indices to RAS
millimetres (NIfTI's world space; DICOM's LPS with x and y negated).
"""

from __future__ import annotations

import csv
import json
import os
import stat
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


def load_nifti(path: str | os.PathLike) -> Volume:
    """Read a NIfTI (ours or anyone's) with its stored dtype; .gz is inflated with ISA-L. A
    file that is not one (cut short, not gzip, not NIfTI) is refused with its name."""
    path = input_file(path)
    try:
        if path.name.endswith(".gz"):
            with GzipFile(path, "rb") as stream:
                image = nib.Nifti1Image.from_bytes(stream.read())
        else:
            image = nib.load(path)
        return Volume(array=np.asanyarray(image.dataobj), affine=image.affine.astype(np.float64))
    except FileNotFoundError:
        raise
    except Exception as exc:  # gzip, zlib, EOF and nibabel's header errors all mean the same here
        raise ScanError(path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})") from None


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
