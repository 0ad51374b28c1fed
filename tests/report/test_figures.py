"""Figure 3's slice rule, and that every figure renders a non-empty image of the expected size."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from lidcseg.data.dataset.packed import PackedSplit
from lidcseg.report import figures
from tests.support.packed import write_packed


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    return PackedSplit(write_packed(tmp_path_factory.mktemp("packed"), size=128), "test")


def nodule_rows(split: PackedSplit) -> list[dict]:
    diameters = {"P5": 7.0, "P6": 25.0}
    return [{"patient_id": p, "nodule": "1", "diameter_mm": d} for p, d in diameters.items()]


def test_pick_slices_is_a_rule(test_split):
    picks = figures.pick_slices(test_split, nodule_rows(test_split), (6, 10, 20))
    assert [p["size"] for p in picks] == ["6-10", ">=20"]  # empty groups are skipped
    for pick in picks:
        areas = [
            int((test_split.masks[i] == 1).sum()) if r["patient_id"] == pick["patient_id"] else -1
            for i, r in enumerate(test_split.rows)
        ]
        assert areas[pick["index"]] == max(areas)  # the nodule's largest slice
        assert pick["index"] == areas.index(max(areas))  # ties: the first (lowest) slice
    assert picks == figures.pick_slices(
        test_split, list(reversed(nodule_rows(test_split))), (6, 10, 20)
    )


def test_median_diameter_nodule_of_a_group(test_split):
    rows = [
        {"patient_id": "P5", "nodule": "1", "diameter_mm": 12.0},
        {"patient_id": "P6", "nodule": "1", "diameter_mm": 15.0},
        {"patient_id": "P5", "nodule": "2", "diameter_mm": 19.0},
    ]
    (pick,) = figures.pick_slices(test_split, rows, (6, 10, 20))
    assert (pick["patient_id"], pick["diameter_mm"]) == ("P6", 15.0)


def _png(path):
    image = matplotlib.image.imread(path)
    assert image.std() > 0.01  # not blank
    return image.shape[:2]


def test_figure3_renders_png_and_pdf(test_split, tmp_path):
    picks = figures.pick_slices(test_split, nodule_rows(test_split), (6, 10, 20))
    probability = (test_split.masks[:] > 0).astype(np.uint8) * 255
    predictions = {"SE": probability, "RB-CBAM (ASPP+R+B)": probability[:, ::-1]}
    png, pdf = figures.figure3(test_split, picks, predictions, 0.5, 0.68, tmp_path / "figure3")
    height, width = _png(png)
    # 4 columns x 1.5 in and 2 rows x 1.55 in at 200 dpi, less the trimmed margins
    assert 0.6 * 4 * 1.5 * 200 < width <= 4 * 1.5 * 200 + 50
    assert 0.6 * 2 * 1.55 * 200 < height <= (2 * 1.55 + 0.4) * 200 + 50
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5000


def test_size_plot_and_curves(tmp_path):
    row = {"nodules": 2, "detected": 1, "dsc": 0.5, "dsc_ci": [0.4, 0.6]}
    by_size = {
        v: [{**row, "size": s} for s in ("<6", "6-10", "10-20", ">=20")] for v in ("unet", "rbcbam")
    }
    png, _ = figures.size_plot(by_size, tmp_path / "size")
    assert _png(png)[1] > _png(png)[0]
    log = tmp_path / "unet" / "seed1" / "log.csv"
    log.parent.mkdir(parents=True)
    log.write_text("epoch,train_loss,val_dsc\n1,0.9,\n2,0.8,0.4\n3,0.7,0.5\n")
    png, pdf = figures.curves({"unet seed1": log}, tmp_path / "curves")
    assert _png(png)[1] > 600 and pdf.exists()
