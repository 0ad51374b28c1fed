"""What `lidcseg predict` writes per scan, on the scan's own geometry.

- ``<patient>.prob.nii.gz``: nodule probability (float32) per voxel;
- ``<patient>.mask.nii.gz``: the found nodules, numbered 1, 2, ... by volume (uint16);
- ``<patient>.nodules.csv``: one row per nodule (measured below);
- ``<patient>.overview.png``: the axial slice through the largest nodule (or the middle
  slice), lung window, outlines of what was found;
- ``<patient>.seg.dcm``, when the input was a DICOM series: a DICOM Segmentation object
  referencing it (``inference/dicom_seg.py``).

All of them appear together or none (``io.output_group``).
"""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from lidcseg.io import Volume, output_group, save_figure, save_nifti, write_rows

NODULE_FIELDS = (
    "nodule",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
    "volume_mm3",
    "longest_axial_diameter_mm",
    "max_probability",
    "first_slice",
    "last_slice",
    "voxels",
)


def nodule_rows(labels: np.ndarray, probability: np.ndarray, affine: np.ndarray) -> list[dict]:
    """One row per labelled nodule. Centroids are DICOM patient coordinates (LPS mm, what a
    DICOM viewer shows; the NIfTI affine is RAS, so x and y change sign); slices are indices
    along the volume's z axis (increasing z); the axial diameter is the longest distance
    across the nodule's outline in any one slice (its pixels' corners, so one pixel is one
    pixel wide)."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    rows = []
    for nodule, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        inside = labels[box] == nodule
        voxel = np.argwhere(inside).mean(axis=0) + [b.start for b in box]
        ras = affine @ np.append(voxel, 1.0)
        rows.append(
            {
                "nodule": nodule,
                "centroid_x_mm": round(-ras[0], 2),
                "centroid_y_mm": round(-ras[1], 2),
                "centroid_z_mm": round(ras[2], 2),
                "volume_mm3": round(inside.sum() * float(np.prod(spacing)), 1),
                "longest_axial_diameter_mm": round(_longest_axial(inside, spacing[:2]), 2),
                "max_probability": round(float(probability[box][inside].max()), 4),
                "first_slice": box[2].start,
                "last_slice": box[2].stop - 1,
                "voxels": int(inside.sum()),
            }
        )
    return rows


def _longest_axial(inside: np.ndarray, pixel_mm) -> float:
    longest = 0.0
    for k in range(inside.shape[2]):
        pixels = np.argwhere(inside[:, :, k])
        if len(pixels) == 0:
            continue
        corners = np.concatenate(
            [pixels + offset for offset in itertools.product((-0.5, 0.5), repeat=2)]
        )
        corners = corners * np.asarray(pixel_mm)
        # a one-pixel-wide line (QhullError): every corner is on the hull anyway
        with contextlib.suppress(QhullError):
            corners = corners[ConvexHull(corners).vertices]
        gaps = corners[:, None, :] - corners[None, :, :]
        longest = max(longest, float(np.sqrt((gaps**2).sum(-1)).max()))
    return longest


def write_outputs(
    out_dir: Path,
    patient: str,
    scan: Volume,
    probability: np.ndarray,
    labels: np.ndarray,
    window: tuple[float, float],
    seg_from: tuple[Path, str] | None = None,
) -> tuple[dict[str, Path], list[dict]]:
    """Write the files; return their paths by kind and the nodule rows. ``seg_from``: (the
    source series folder, the algorithm's name) for the DICOM SEG."""
    paths = {
        kind: Path(out_dir) / f"{patient}.{kind}"
        for kind in ("prob.nii.gz", "mask.nii.gz", "nodules.csv", "overview.png")
    }
    rows = nodule_rows(labels, probability, scan.affine)
    with output_group():
        save_nifti(Volume(probability.astype(np.float32), scan.affine), paths["prob.nii.gz"])
        save_nifti(Volume(labels.astype(np.uint16), scan.affine), paths["mask.nii.gz"])
        write_rows(rows, paths["nodules.csv"], NODULE_FIELDS)
        _overview(scan, labels, window, paths["overview.png"], patient)
        if seg_from:
            from lidcseg.inference.dicom_seg import write_seg

            paths["seg.dcm"] = Path(out_dir) / f"{patient}.seg.dcm"
            write_seg(seg_from[0], labels, paths["seg.dcm"], seg_from[1])
    return paths, rows


def _overview(scan: Volume, labels: np.ndarray, window, path: Path, patient: str) -> None:
    """The slice through nodule 1's centre (else the middle slice), lung window, outlines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lidcseg.data.dataset.slices import lung_window

    found = np.argwhere(labels == 1)
    k = int(round(found[:, 2].mean())) if len(found) else labels.shape[2] // 2
    figure, axis = plt.subplots(figsize=(6, 6))
    axis.imshow(lung_window(scan.array[:, :, k].T, *window), cmap="gray", vmin=0, vmax=1)
    if labels[:, :, k].any():
        axis.contour(labels[:, :, k].T > 0, levels=[0.5], colors="red", linewidths=1)
    axis.set_title(f"{patient}: slice {k}, {int(labels.max())} nodule(s) found")
    axis.axis("off")
    save_figure(figure, path, dpi=100, bbox_inches="tight")
    plt.close(figure)
