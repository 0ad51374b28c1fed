"""Patient-level split (seeded, stratified) and packing into memory-mappable arrays."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from lidcseg.core.sizes import size_label, size_labels
from lidcseg.data.dataset.packed import PackedSplit
from lidcseg.data.dataset.slices import save_slices
from lidcseg.data.dataset.split import pack, split_patients, write_dataset_json
from tests.support.defaults import DEFAULTS

# The paper's ratios, as config.yaml has them: 25 % of patients for test, 20 % of the rest for
# validation.
RATIOS = {
    "test_fraction": DEFAULTS.split.test_fraction,
    "val_fraction": DEFAULTS.split.val_fraction,
}
EDGES = DEFAULTS.evaluate.size_bins_mm  # the split's strata are the evaluation's size groups


def _patients(n: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {f"LIDC-IDRI-{i:04d}": float(d) for i, d in enumerate(rng.uniform(3, 40, n), start=1)}


def test_same_seed_same_split_whatever_the_input_order():
    patients = _patients(60)
    shuffled = dict(reversed(list(patients.items())))

    def split(patients, seed):
        return split_patients(patients, **RATIOS, seed=seed, stratify=True, size_bins_mm=EDGES)

    assert split(patients, 5) == split(shuffled, 5)
    assert split(patients, 5) != split(patients, 6)


@pytest.mark.parametrize(
    "n, expected",
    [
        (100, {"test": 25, "val": 15, "train": 60}),
        (8, {"test": 2, "val": 1, "train": 5}),
        (3, {"test": 1, "val": 1, "train": 1}),
    ],
)
def test_paper_ratios_of_patients(n, expected):
    assignment = split_patients(_patients(n), **RATIOS, seed=1, stratify=True, size_bins_mm=EDGES)
    assert Counter(assignment.values()) == expected
    assert len(assignment) == n  # every patient in exactly one split


def test_stratified_split_puts_every_size_group_in_every_split():
    patients = _patients(200, seed=3)
    assignment = split_patients(patients, **RATIOS, seed=2, stratify=True, size_bins_mm=EDGES)
    for stratum in size_labels(EDGES):
        members = [p for p, d in patients.items() if size_label(d, EDGES) == stratum]
        counts = Counter(assignment[p] for p in members)
        assert abs(counts["test"] - 0.25 * len(members)) <= 1, stratum
        assert counts["val"] > 0 and counts["train"] > 0


def test_size_strata_edges():
    edges = (6, 10, 20)  # the demo's
    assert [size_label(d, edges) for d in (3.0, 5.99, 6.0, 9.9, 10.0, 19.9, 20.0, 45.0)] == [
        "<6",
        "<6",
        "6-10",
        "6-10",
        "10-20",
        "10-20",
        ">=20",
        ">=20",
    ]


def test_pack_writes_memory_maps_that_training_reads(tmp_path):
    rng = np.random.default_rng(0)
    slices_dir = tmp_path / "slices"
    sizes = {"LIDC-IDRI-0001": 3, "LIDC-IDRI-0002": 2, "LIDC-IDRI-0003": 4}
    for patient, n in sizes.items():
        images = rng.random((n, 8, 6)).astype(np.float16)
        masks = (rng.random((n, 8, 6)) > 0.7).astype(np.uint8) * 2
        rows = [{"patient_id": patient, "slice": k, "nodules": "2"} for k in range(n)]
        save_slices(
            images,
            masks,
            rows,
            slices_dir / f"{patient}.npz",
            slices_dir / f"{patient}.csv",
            spacing_mm=(0.68, 0.68, 2.0),
            window=(-600, 1500),
        )
    assignment = {"LIDC-IDRI-0001": "train", "LIDC-IDRI-0002": "test", "LIDC-IDRI-0003": "train"}
    record = pack(assignment, slices_dir, tmp_path / "packed")
    write_dataset_json(record, {"seed": 1}, tmp_path / "packed" / "dataset.json")
    train = PackedSplit(tmp_path / "packed", "train")
    assert len(train) == 7 and isinstance(train.images, np.memmap)
    image, mask = train[3]  # the first slice of LIDC-IDRI-0003
    np.testing.assert_array_equal(
        image, np.load(slices_dir / "LIDC-IDRI-0003.npz")["images"][0].astype(np.float32)
    )
    assert set(np.unique(mask)) <= {0, 1}
    assert {r["patient_id"] for r in train.rows} == {"LIDC-IDRI-0001", "LIDC-IDRI-0003"}
    assert len(PackedSplit(tmp_path / "packed", "val")) == 0
    assert train.meta["spacing_mm"] == [0.68, 0.68, 2.0] and train.meta["image_shape"] == [8, 6]
