"""Nodule slices: the 2-D axial images the paper trains on (docs/paper.md,
"Pre-processing", steps 3-4).

A slice of the resampled volume is a "nodule image" when the consensus mask of its >= 3 mm
nodules covers at least ``min_area_mm2`` there (default 0: any voxel). The paper leaves the
rule open; this one counts every slice a nodule's consensus reaches, and the cohort flow
reports what it gives beside the paper's 8,230. Images are windowed (eq. 15: centre -600,
width 1500, i.e. clipped to [-1350, 150] HU) and normalised to [0, 1] (eq. 16), stored as
float16 (steps of 0.7 HU); masks keep the nodule ids (uint8, 0 = background).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lidcseg.config import ExtractConfig
from lidcseg.core import budget
from lidcseg.errors import LidcsegError
from lidcseg.io import Volume, output_group, save_npz, write_rows

MAX_NODULE_ID = 255  # masks keep nodule ids as uint8 (check_nodule_ids)
SLICE_FIELDS = (
    "patient_id",
    "slice",
    "z_mm",
    "nodules",
    "diameter_mm",
    "mask_area_px",
    "mask_area_mm2",
    "readers",
)


def lung_window(hu: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Eqs. (15)-(16): clip to [centre - width/2, centre + width/2], map linearly to [0, 1]."""
    low = centre - width / 2
    return np.clip((np.asarray(hu, dtype=np.float32) - low) / width, 0.0, 1.0)


def nodule_slices(labels: np.ndarray, pixel_area_mm2: float, min_area_mm2: float) -> np.ndarray:
    """Indices of the slices (last axis) whose labelled area is > 0 and >= ``min_area_mm2``."""
    area = (labels > 0).sum(axis=(0, 1)) * pixel_area_mm2
    return np.flatnonzero((area > 0) & (area >= min_area_mm2))


def extract_slices(
    image: Volume, labels: Volume, nodules: list[dict], patient_id: str, settings: ExtractConfig
):
    """The nodule slices of one resampled scan: images (n, rows, cols) float16 in [0, 1],
    masks (n, rows, cols) uint8 nodule ids, and one metadata row per slice."""
    check_nodule_ids(labels.array, patient_id)
    if image.array.shape != labels.array.shape:
        raise ValueError(
            f"{patient_id}: image {image.array.shape} and mask {labels.array.shape} differ"
        )
    pixel_area = image.spacing[0] * image.spacing[1]
    keep = nodule_slices(labels.array, pixel_area, settings.min_area_mm2)
    by_id = {int(n["nodule"]): n for n in nodules}
    rows = [_slice_row(patient_id, k, labels, by_id, pixel_area) for k in keep]
    # (x, y) -> (rows = y, columns = x): the usual radiological display of an axial slice
    window = (settings.window_centre, settings.window_width)
    images = (
        np.stack([lung_window(image.array[:, :, k].T, *window) for k in keep])
        if len(keep)
        else np.zeros((0,) + image.array.shape[1::-1], np.float32)
    )
    masks = np.ascontiguousarray(labels.array[:, :, keep].transpose(2, 1, 0)).astype(np.uint8)
    return images.astype(np.float16), masks, rows


def check_nodule_ids(labels: np.ndarray, patient_id: str) -> None:
    """Nodule ids fit the uint8 masks the slices and the packed dataset keep (0 background,
    1-255 a nodule; no LIDC scan has more than a few dozen): id 300 would wrap to 44 and
    label another nodule's pixels, so a mask holding one is refused naming the patient."""
    low, high = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if low < 0 or high > MAX_NODULE_ID:
        raise LidcsegError(
            f"patient {patient_id}: nodule id {high if high > MAX_NODULE_ID else low} in the "
            f"mask does not fit its uint8 masks (0 background, 1-{MAX_NODULE_ID})"
        )


def _slice_row(patient_id: str, k: int, labels: Volume, by_id: dict, pixel_area: float) -> dict:
    plane = labels.array[:, :, k]
    ids = [int(i) for i in np.unique(plane) if i > 0]
    present = [by_id[i] for i in ids if i in by_id]
    area_px = int((plane > 0).sum())
    return {
        "patient_id": patient_id,
        "slice": int(k),
        "z_mm": round(float(labels.affine[2, 3] + k * labels.affine[2, 2]), 3),
        "nodules": ";".join(str(i) for i in ids),
        "diameter_mm": max((float(n["diameter_mm"]) for n in present), default=""),
        "mask_area_px": area_px,
        "mask_area_mm2": round(area_px * pixel_area, 2),
        "readers": max((int(n["n_readers"]) for n in present), default=""),
    }


def save_slices(
    images: np.ndarray,
    masks: np.ndarray,
    rows: list[dict],
    npz_path: str | os.PathLike,
    csv_path: str | os.PathLike,
    spacing_mm=(),
    window=(),
) -> None:
    """Arrays (with the pixel spacing and window they were made with) to .npz and rows to
    .csv, both or neither (one output group)."""
    with output_group():
        save_npz(
            npz_path,
            images=images,
            masks=masks,
            spacing_mm=np.asarray(spacing_mm, float),
            window=np.asarray(window, float),
        )
        write_rows(rows, csv_path, SLICE_FIELDS)


def extract_to_files(
    image_path,
    mask_path,
    nodules_path,
    out_npz: Path,
    patient_id: str | None,
    settings: ExtractConfig,
) -> int:
    """`lidcseg extract`: slices to ``out_npz`` and rows to the .csv beside it;
    returns the count."""
    from lidcseg.core.records import NODULE_TABLE, at_least, cell, read_table, whole
    from lidcseg.io import load_nifti

    nodules = read_table(nodules_path, NODULE_TABLE | {"n_readers": cell(at_least(whole, 1))})
    patient = patient_id or (
        nodules[0]["patient_id"] if nodules else Path(out_npz).name.split(".")[0]
    )
    image = load_nifti(image_path, budget.check)
    images, masks, rows = extract_slices(
        image, load_nifti(mask_path, budget.check), nodules, patient, settings
    )
    save_slices(
        images,
        masks,
        rows,
        out_npz,
        Path(out_npz).with_suffix(".csv"),
        spacing_mm=[round(s, 6) for s in image.spacing],
        window=(settings.window_centre, settings.window_width),
    )
    return len(rows)
