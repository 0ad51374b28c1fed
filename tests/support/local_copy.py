"""An LIDC-IDRI copy "already on disk", laid out as the tools that make such copies do, made of
symbolic links to real series (../shared) or to synthetic files: nothing is copied.

- ``classic``: NBIA Data Retriever's ``LIDC-IDRI/<PatientID>/<StudyUID>/<SeriesUID>/*.dcm``
- ``descriptive``: its newer ``LIDC-IDRI/LIDC-IDRI-0001/01-01-2000-NA-NA-30178/
  3000566.000000-NA-03192/1-001.dcm``
- ``idc``: an IDC download, ``<series uuid>/<instance uuid>.dcm``
- ``flat``: every file of every series in one folder
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pydicom

from tests.support.paths import LIDC_FULL, LIDC_SAMPLES

LAYOUTS = ("classic", "descriptive", "idc", "flat")


def real_series(patient: str, samples: bool = False) -> Path | None:
    """The folder of a real series in ../shared (lidc-full, or lidc-samples), None if absent."""
    found = sorted((LIDC_SAMPLES if samples else LIDC_FULL).glob(f"{patient}/*/*"))
    return found[0] if found else None


def _uuid(text: str) -> str:
    digest = hashlib.sha1(text.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def series_path(header, index: int, layout: str) -> Path:
    """Where the ``index``-th file of a series goes in ``layout`` (relative to the copy)."""
    pid, study, series = header.PatientID, header.StudyInstanceUID, header.SeriesInstanceUID
    if layout == "classic":
        return Path("LIDC-IDRI", pid, study, series, f"{index:06d}.dcm")
    if layout == "descriptive":
        number = int(header.get("SeriesNumber") or 0)
        return Path(
            "LIDC-IDRI",
            pid,
            f"01-01-2000-NA-NA-{study[-5:]}",
            f"{number}.000000-NA-{series[-5:]}",
            f"1-{index + 1:03d}.dcm",
        )
    if layout == "idc":
        return Path(_uuid(series), f"{_uuid(header.SOPInstanceUID)}.dcm")
    if layout == "flat":
        return Path(f"{pid}_{series[-5:]}_{index:04d}.dcm")
    raise ValueError(layout)


def lay_out(series_dirs: list[Path], copy: Path, layout: str) -> Path:
    """Links to the .dcm files of ``series_dirs`` under ``copy`` in ``layout``; returns the
    folder a user would name as dataset.local_root (``copy``)."""
    for folder in series_dirs:
        for index, source in enumerate(sorted(folder.glob("*.dcm"))):
            header = pydicom.dcmread(source, stop_before_pixels=True)
            target = copy / series_path(header, index, layout)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(source.resolve(), target)
    return copy


def tiny_dicom(
    path: Path,
    patient: str,
    study: str,
    series: str,
    sop: str,
    modality: str = "CT",
    collection: str | None = "LIDC-IDRI",
    z: float = 0.0,
) -> Path:
    """A small DICOM file whose headers are those of an LIDC-IDRI slice (2 x 2 pixels): what
    the index reads; ``collection`` is the CTP private tag TCIA's files carry."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, sop, modality
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient, study, series
    if collection is not None:
        ds.private_block(0x0013, "CTP", create=True).add_new(0x10, "LO", collection)
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation, ds.SamplesPerPixel = 16, 16, 1, 1
    ds.PixelData = bytes(8)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
