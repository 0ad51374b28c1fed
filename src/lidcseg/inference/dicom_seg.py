"""The found nodules as a DICOM Segmentation object referencing the source series.

A binary SEG (highdicom; DICOM PS3.3 A.51) with one segment, "Lung nodule" (SNOMED CT
27925004 "Nodule", category "Morphologically abnormal structure"), algorithm type AUTOMATIC:
one frame per source slice that holds a nodule, each referencing its source image. PACS and
viewers (OHIF, 3D Slicer's QuantitativeReporting) show it over the series it came from.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from lidcseg.io import atomic_file

log = logging.getLogger(__name__)
SERIES_NUMBER = 901  # a derived series; where viewers list it


def write_seg(series_dir: Path, labels: np.ndarray, path: Path, algorithm: str) -> None:
    """``labels`` (x, y, z) on convert's grid of ``series_dir`` (x = DICOM column, y = row,
    z = the slices in increasing z) as a SEG file at ``path``."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    from lidcseg.data.dicom.files import series_files

    # headers only: the SEG references the source images, it does not copy their pixels
    sources = sorted(
        (pydicom.dcmread(f, stop_before_pixels=True) for f in series_files(series_dir)[1]),
        key=lambda ds: float(ds.ImagePositionPatient[2]),
    )
    _one_frame_of_reference(sources)
    frames = np.ascontiguousarray((labels > 0).transpose(2, 1, 0))  # (slices, rows, columns)
    if len(sources) != len(frames):
        raise ValueError(f"{series_dir}: {len(sources)} slices, the mask has {len(frames)}")
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Lung nodule",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Nodule,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="lidcseg", version=algorithm, family=codes.DCM.ArtificialIntelligence
        ),
    )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment],
        series_instance_uid=hd.UID(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="lidcseg",
        manufacturer_model_name=algorithm,
        software_versions="lidcseg",
        device_serial_number="none",
        series_description=f"lidcseg {algorithm} nodules",
        omit_empty_frames=bool(frames.any()),
    )  # a SEG needs one frame at least, even if empty
    with atomic_file(path) as tmp:
        seg.save_as(tmp)


def _one_frame_of_reference(sources) -> None:
    """LIDC-IDRI's anonymisation gave every slice its own FrameOfReferenceUID, although the
    slices of a series share one patient frame (their positions are consistent; convert
    checks that). A SEG has one frame of reference, and highdicom refuses sources with
    several, so the series is given its first slice's (in memory only; the files are not
    touched)."""
    uids = {getattr(ds, "FrameOfReferenceUID", None) for ds in sources}
    if len(uids) > 1:
        log.warning(
            "%d FrameOfReferenceUIDs in one series (LIDC's anonymisation); the SEG uses the first "
            "slice's",
            len(uids),
        )
        for ds in sources:
            ds.FrameOfReferenceUID = sources[0].FrameOfReferenceUID
