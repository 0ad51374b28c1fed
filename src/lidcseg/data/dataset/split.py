"""Train / validation / test split by patient, and packing into memory-mappable arrays.

docs/paper.md, "Data": test ~25 %, then validation = 20 % of the rest (4,944 / 1,236 / 2,060
images). The paper does not say whether it split by patient; we do, because slices of one
nodule in two splits leak. The fractions are of patients (with at least one nodule slice),
so the image fractions come out near, not exactly at, the paper's. With ``stratify: size``
each size group of the largest nodule (the evaluation's groups, ``evaluate.size_bins_mm``:
< 6, 6-10, 10-20, >= 20 mm in the demo) is split in those proportions (largest-remainder
rounding), so small nodules reach every split. Each split is packed as
``<split>.images.npy`` (n, rows, cols) float16 and ``<split>.masks.npy`` (n, rows, cols)
uint8 plus ``<split>.csv`` rows: a training job maps them with ``np.load(mmap_mode="r")``
and decodes nothing per sample.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from lidcseg.config import SplitConfig
from lidcseg.core.records import SLICE_ROWS, check_rows
from lidcseg.core.sizes import size_label
from lidcseg.data.dataset.slices import SLICE_FIELDS
from lidcseg.errors import LidcsegError
from lidcseg.io import read_rows, staged_folder, write_json, write_rows

SPLITS = ("train", "val", "test")


def split_patients(
    largest_diameter: dict[str, float],
    test_fraction: float,
    val_fraction: float,
    seed: int,
    stratify: bool,
    size_bins_mm: tuple[float, ...],
) -> dict[str, str]:
    """Patient -> 'train' | 'val' | 'test'. Deterministic for a seed; the order of the
    input does not matter. With three or more patients, test and validation get at least one.
    With ``stratify``, each group of ``core.sizes.size_label`` at ``size_bins_mm`` apart."""
    patients = sorted(largest_diameter)
    n_test, n_val = _split_sizes(len(patients), test_fraction, val_fraction)
    groups: dict[str, list[str]] = {}
    for p in patients:
        group = size_label(largest_diameter[p], size_bins_mm) if stratify else "all"
        groups.setdefault(group, []).append(p)
    names = sorted(groups)
    sizes = [len(groups[g]) for g in names]
    test_quota = _largest_remainder(sizes, n_test)
    val_quota = _largest_remainder([s - t for s, t in zip(sizes, test_quota)], n_val)
    rng = np.random.default_rng(seed)
    assignment = {}
    for name, n_test_g, n_val_g in zip(names, test_quota, val_quota):
        order = rng.permutation(groups[name])
        for i, patient in enumerate(order):
            assignment[str(patient)] = (
                "test" if i < n_test_g else "val" if i < n_test_g + n_val_g else "train"
            )
    return assignment


def _split_sizes(n: int, test_fraction: float, val_fraction: float) -> tuple[int, int]:
    n_test = int(round(test_fraction * n))
    n_val = int(round(val_fraction * (n - n_test)))
    if n >= 3:
        n_test = max(1, n_test)
        n_val = max(1, min(n_val, n - n_test - 1))
    return n_test, n_val


def _largest_remainder(sizes: list[int], total: int) -> list[int]:
    """Integer quotas proportional to ``sizes`` that sum to ``total`` (none above its size)."""
    if total <= 0 or sum(sizes) == 0:
        return [0] * len(sizes)
    exact = [s * total / sum(sizes) for s in sizes]
    quotas = [int(np.floor(e)) for e in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - quotas[i]), i))
    for i in by_remainder[: total - sum(quotas)]:
        quotas[i] += 1
    return [min(q, s) for q, s in zip(quotas, sizes)]


def pack(
    assignment: dict[str, str], slices_dir: str | os.PathLike, out_dir: str | os.PathLike
) -> dict:
    """Write each split's arrays and rows; return what dataset.json records."""
    slices_dir, out_dir = Path(slices_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record: dict = {"image_shape": None, "spacing_mm": None, "window": None, "splits": {}}
    shape = _slice_shape(slices_dir, sorted(assignment))
    for split in SPLITS:
        patients = sorted(p for p, s in assignment.items() if s == split)
        by_patient = {p: _slice_rows(slices_dir / f"{p}.csv") for p in patients}
        rows = [row for p in patients for row in by_patient[p]]
        facts = _pack_arrays(by_patient, shape, slices_dir, out_dir, split)
        record.update({k: v for k, v in facts.items() if v is not None})
        write_rows(rows, out_dir / f"{split}.csv", SLICE_FIELDS)
        record["splits"][split] = {"patients": patients, "slices": len(rows)}
    return record


def _slice_shape(slices_dir: Path, patients: list[str]) -> tuple[int, int]:
    """The (rows, cols) of the slices, so that even an empty split has the right shape."""
    for patient in patients:
        return tuple(_read_slices(slices_dir / f"{patient}.npz")[0].shape[1:])
    return (0, 0)


def _pack_arrays(
    by_patient: dict[str, list[dict]],
    shape: tuple[int, int],
    slices_dir: Path,
    out_dir: Path,
    split: str,
) -> dict:
    """Fill (n, rows, cols) arrays patient by patient, without holding a split in memory,
    each patient's arrays checked against its rows; return the facts the slices carry
    (shape, spacing, window)."""
    n = sum(len(rows) for rows in by_patient.values())
    facts: dict = {"image_shape": list(shape), "spacing_mm": None, "window": None}
    targets = {
        name: _open(out_dir / f".tmp-{split}.{name}.npy", dtype, (n, *shape))
        for name, dtype in (("images", np.float16), ("masks", np.uint8))
    }
    offset = 0
    for patient, rows in by_patient.items():
        images, masks, spacing_mm, window = _read_slices(slices_dir / f"{patient}.npz")
        check_side_table(slices_dir / f"{patient}.npz", images, masks, rows, patient, shape)
        facts.update(spacing_mm=spacing_mm, window=window)
        targets["images"][offset : offset + len(images)] = images
        targets["masks"][offset : offset + len(masks)] = masks
        offset += len(images)
    for name in ("images", "masks"):
        del targets[name]  # flush the memory map
        os.replace(out_dir / f".tmp-{split}.{name}.npy", out_dir / f"{split}.{name}.npy")
    return facts


def check_side_table(
    path: Path, images: np.ndarray, masks: np.ndarray, rows: list[dict], patient: str, shape
) -> None:
    """extract's rows describe its arrays slice for slice (row k is image k): as many rows
    as images, images and masks of the cohort's one (rows, cols), every row the patient's, and
    each row's nodule ids those its mask holds. Else split would attach a row to another
    slice's image, or to a blank one past the end, and the strata and scores would follow."""
    table = path.with_suffix(".csv")
    if images.ndim != 3 or masks.shape != images.shape or images.shape[1:] != tuple(shape):
        raise LidcsegError(
            f"{path}: images {images.shape} and masks {masks.shape}; the cohort's slices are "
            f"{tuple(shape)}"
        )
    if len(rows) != len(images):
        raise LidcsegError(f"{table}: {len(rows)} rows for the {len(images)} slices of {path}")
    for k, row in enumerate(rows):
        held = (np.flatnonzero(np.bincount(masks[k].ravel(), minlength=1)[1:]) + 1).tolist()
        try:
            listed = sorted(int(i) for i in str(row.get("nodules")).split(";") if i)
        except ValueError:
            listed = None
        if row.get("patient_id") != patient or listed != held:
            raise LidcsegError(
                f"{table}, row {k + 1}: patient {row.get('patient_id')!r}, nodules "
                f"{row.get('nodules')!r}, but slice {k} of {path} is {patient}'s with nodules "
                f"{';'.join(map(str, held))!r}"
            )


def _read_slices(path: Path) -> tuple[np.ndarray, np.ndarray, list, list]:
    """(images, masks, spacing_mm, window) of one patient's extract output; a file that is not
    one is named."""
    try:
        with np.load(path) as data:
            return (
                data["images"],
                data["masks"],
                data["spacing_mm"].tolist(),
                data["window"].tolist(),
            )
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise LidcsegError(
            f"{path}: not a slices file of lidcseg extract ({type(error).__name__}: {error})"
        ) from None


def _open(path: Path, dtype, shape):
    if shape[0] == 0:
        np.save(path, np.zeros(shape, dtype))
        return np.load(path)
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)


def split_to_files(
    slices_dir: Path,
    out_dir: Path,
    patients: list[str],
    settings: SplitConfig,
    size_bins_mm: tuple[float, ...],
) -> dict:
    """`lidcseg split`: split.csv, and packed/ with the arrays and dataset.json; the size
    strata are the evaluation's groups (``evaluate.size_bins_mm``)."""
    slices_dir, out_dir = Path(slices_dir), Path(out_dir)
    rows = {p: _slice_rows(slices_dir / f"{p}.csv") for p in patients}
    with_slices = {p: max(float(r["diameter_mm"] or 0) for r in rs) for p, rs in rows.items() if rs}
    s = settings
    assignment = split_patients(
        with_slices, s.test_fraction, s.val_fraction, s.seed, s.stratify == "size", size_bins_mm
    )
    meta = {
        "seed": s.seed,
        "test_fraction": s.test_fraction,
        "val_fraction": s.val_fraction,
        "stratify": s.stratify,
        "patients_without_slices": sorted(set(patients) - set(with_slices)),
    }
    with staged_folder(out_dir) as staging:  # split.csv and packed/ appear together or not at all
        slices = {p: len(rows[p]) for p in assignment}
        write_split_table(assignment, with_slices, slices, size_bins_mm, staging / "split.csv")
        record = pack(assignment, slices_dir, staging / "packed")
        write_dataset_json(record, meta, staging / "packed" / "dataset.json")
    return record


def write_split_table(
    assignment: dict[str, str],
    largest_diameter: dict[str, float],
    slices: dict[str, int],
    size_bins_mm: tuple[float, ...],
    path: str | os.PathLike,
) -> None:
    rows = [
        {
            "patient_id": p,
            "split": s,
            "largest_diameter_mm": round(largest_diameter[p], 2),
            "size_stratum": size_label(largest_diameter[p], size_bins_mm),
            "slices": slices[p],
        }
        for p, s in sorted(assignment.items())
    ]
    write_rows(rows, path, ("patient_id", "split", "largest_diameter_mm", "size_stratum", "slices"))


def write_dataset_json(record: dict, meta: dict, path: str | os.PathLike) -> None:
    write_json({**meta, **record}, path)


def _slice_rows(path: Path) -> list[dict]:
    """extract's rows of one patient, each field checked (a row split cannot read is named
    before any array is packed)."""
    return check_rows(read_rows(path), path, SLICE_ROWS)
