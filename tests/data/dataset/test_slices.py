"""Lung window, slice selection and extraction, including a scan with no nodule slices."""

from __future__ import annotations

import numpy as np
import pytest

from lidcseg.data.dataset.slices import (
    SLICE_FIELDS,
    extract_slices,
    lung_window,
    nodule_slices,
    save_slices,
)
from lidcseg.io import Volume, read_rows
from tests.support.defaults import DEFAULTS

WINDOW = (DEFAULTS.extract.window_centre, DEFAULTS.extract.window_width)


def test_lung_window_maps_its_ends_to_0_and_1_and_clips():
    hu = np.array([-3024, -1350, -600, 150, 3071])
    np.testing.assert_allclose(lung_window(hu, *WINDOW), [0.0, 0.0, 0.5, 1.0, 1.0])
    assert (
        lung_window(np.array([-1349.0]), *WINDOW)[0] > 0
        and lung_window(np.array([149.0]), *WINDOW)[0] < 1
    )


def _scan(labels: np.ndarray) -> tuple[Volume, Volume]:
    affine = np.diag([-0.68, -0.68, 2.0, 1.0])
    affine[2, 3] = -100.0
    hu = np.full(labels.shape, -800, np.int16)
    hu[labels > 0] = 40
    return Volume(hu, affine), Volume(labels, affine)


NODULES = [
    {"nodule": "1", "diameter_mm": "7.5", "n_readers": "3"},
    {"nodule": "2", "diameter_mm": "21.0", "n_readers": "4"},
]


def test_extracts_the_slices_nodules_reach_with_their_metadata():
    labels = np.zeros((40, 30, 10), np.uint8)
    labels[5:9, 5:8, 2:4] = 1
    labels[20:30, 10:20, 3:7] = 2
    image, mask = _scan(labels)
    images, masks, rows = extract_slices(image, mask, NODULES, "LIDC-IDRI-0001", DEFAULTS.extract)
    assert [r["slice"] for r in rows] == [2, 3, 4, 5, 6]
    assert images.shape == masks.shape == (5, 30, 40)  # (slices, rows = y, columns = x)
    assert images.dtype == np.float16 and masks.dtype == np.uint8
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    row = rows[1]
    assert row["nodules"] == "1;2" and row["diameter_mm"] == 21.0 and row["readers"] == 4
    assert row["z_mm"] == pytest.approx(-94.0) and row["mask_area_px"] == 12 + 100
    assert set(row) == set(SLICE_FIELDS)
    np.testing.assert_array_equal(masks[0], labels[:, :, 2].T)


def test_minimum_area_drops_slivers():
    labels = np.zeros((20, 20, 4), np.uint8)
    labels[2:4, 2:4, 1] = 1  # 4 px = 1.85 mm2
    labels[2:12, 2:12, 2] = 1  # 100 px
    assert nodule_slices(labels, 0.68 * 0.68, DEFAULTS.extract.min_area_mm2).tolist() == [1, 2]
    assert nodule_slices(labels, 0.68 * 0.68, min_area_mm2=5.0).tolist() == [2]


def test_a_scan_without_nodules_gives_zero_slices(tmp_path):
    image, mask = _scan(np.zeros((16, 12, 5), np.uint8))
    images, masks, rows = extract_slices(image, mask, [], "LIDC-IDRI-0005", DEFAULTS.extract)
    assert images.shape == (0, 12, 16) and masks.shape == (0, 12, 16) and rows == []
    save_slices(images, masks, rows, tmp_path / "p.npz", tmp_path / "p.csv")
    assert np.load(tmp_path / "p.npz")["images"].shape == (0, 12, 16)
    assert read_rows(tmp_path / "p.csv") == []


def test_extracted_masks_match_where_nodules_were_painted(synthetic_slices):
    """Synthesize -> convert -> annotate -> resample -> extract, against the painted truth
    resampled through the same grid: the whole geometry chain, on every extracted slice."""
    from lidcseg.data.resample import resample_mask

    run = synthetic_slices
    masks, slice_rows = run.masks, run.slice_rows
    truth = resample_mask(
        Volume(run.painted.astype(np.uint8), run.volume.affine),
        run.grid,
        DEFAULTS.resample.mask_interpolation,
    ).array
    truth_slices = truth[:, :, [r["slice"] for r in slice_rows]].transpose(2, 1, 0) > 0
    extracted = masks > 0
    dice = 2 * (extracted & truth_slices).sum() / (extracted.sum() + truth_slices.sum())
    assert len(slice_rows) > 10 and dice >= 0.9
