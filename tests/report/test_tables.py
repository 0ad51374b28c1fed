"""Tables 1-2 from small hand-made metric files: numbers, rounding, row order, the paper's
columns, seeds, and named errors for missing or malformed files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lidcseg.core.metrics_file import MetricsFileError
from lidcseg.core.readers_file import ReadersFile
from lidcseg.report import tables
from lidcseg.report.paper import ALL_OFF_AS_UNET, TABLE2
from tests.support.metrics_files import CONFIDENCE, RESAMPLES, metrics_file


def write_tables(files, out_dir, readers_json=None, external_files=()):
    """The report's tables with the bootstrap settings passed explicitly, as the report does."""
    return tables.write_tables(
        files, out_dir, readers_json, list(external_files), RESAMPLES, CONFIDENCE
    )


def read_csv(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_table1_numbers_rounding_and_paper_columns(tmp_path):
    files = [metrics_file(tmp_path, "se", 1, 0.61234), metrics_file(tmp_path, "unet", 1, 0.7)]
    write_tables(files, tmp_path / "out")
    md = (tmp_path / "out/table1.md").read_text().splitlines()
    assert md[0].startswith(
        "| Module | Variant | DSC [95% CI] | Recall [95% CI] | Precision [95% CI] |"
    )
    assert "Paper DSC | Diff DSC" in md[0]
    se = md[2]
    assert se.startswith("| SE | se | 0.6123 [0.5123, 0.6623] |") and "| 0.5716 | +0.0407 |" in se
    assert md[3].startswith("| Attention U-Net |  | not run |")  # configured nowhere: kept, marked
    assert md[7].startswith("| U-Net, no attention (ours) | unet | 0.7000")
    rows = read_csv(tmp_path / "out/table1.csv")
    assert [r["module"] for r in rows][:5] == [
        "SE",
        "Attention U-Net",
        "BAM",
        "CBAM",
        "RB-CBAM (ASPP+R+B)",
    ]
    assert float(rows[0]["dsc"]) == 0.61234 and float(rows[0]["diff_dsc"]) == pytest.approx(
        0.61234 - 0.5716
    )
    assert rows[5]["paper_dsc"] == ""  # ours only
    tex = (tmp_path / "out/table1.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"95\% CI" in tex


def test_table2_keeps_the_papers_row_order(tmp_path):
    files = [metrics_file(tmp_path, "rbcbam", 1, 0.66), metrics_file(tmp_path, "cbam", 1, 0.4)]
    write_tables(files, tmp_path / "out")
    rows = read_csv(tmp_path / "out/table2.csv")
    assert [r["module"] for r in rows] == [TABLE2[0].label, ALL_OFF_AS_UNET.label] + [
        row.label for row in TABLE2[1:]
    ]
    assert rows[0]["variant"] == "cbam" and rows[-1]["variant"] == "rbcbam"
    assert (rows[-1]["aspp"], rows[-1]["reverse"], rows[-1]["boundary"]) == ("o", "o", "o")
    assert float(rows[-1]["diff_dsc"]) == pytest.approx(0.66 - 0.6627)
    assert (
        "| o | o | o | ASPP + CBAM + R + B | rbcbam | 0.6600 [0.5600, 0.7100] |"
        in (tmp_path / "out/table2.md").read_text()
    )


def test_several_seeds_give_mean_and_sd(tmp_path):
    files = [metrics_file(tmp_path, "se", 1, 0.6), metrics_file(tmp_path, "se", 2, 0.7)]
    write_tables(files, tmp_path / "out")
    assert (
        "| SE | se | 0.6500 +- 0.0707 [0.5000, 0.6500] |"
        in (tmp_path / "out/table1.md").read_text()
    )
    assert r"0.6500 $\pm$ 0.0707" in (tmp_path / "out/table1.tex").read_text()


def test_readers_row(tmp_path):
    readers = tmp_path / "readers.json"
    ReadersFile(
        pooled={"dsc": 0.88, "recall": 0.9, "precision": 0.86},
        pooled_ci={"dsc": [0.8, 0.9], "recall": [0.8, 0.95], "precision": [0.8, 0.9]},
        per_image_mean={"dsc": 0.7},
        pairs=4,
        nodules=2,
        patients=1,
        slices=2,
        bootstrap={"resamples": RESAMPLES, "confidence": CONFIDENCE, "unit": "patient"},
        test_slices=2,
        consensus=0.5,
        min_diameter_mm=3.0,
        mask_method="linear",
        definition="leave one reader out",
    ).save(readers)
    write_tables([metrics_file(tmp_path, "unet", 1, 0.7)], tmp_path / "out", readers)
    last = [
        line
        for line in (tmp_path / "out/table1.md").read_text().splitlines()
        if line.startswith("|")
    ][-1]
    assert last.startswith(
        "| Radiologists, leave-one-reader-out (ours) | readers | 0.8800 [0.8000, 0.9000] |"
    )


def test_an_external_method_gets_its_own_row_beside_the_plain_unet(tmp_path):
    """External predictions (slots {} like the plain U-Net's) never take the U-Net's row."""
    unet = metrics_file(tmp_path, "unet", 1, 0.7)
    external = metrics_file(tmp_path, "nnU-Net 2d", 0, 0.81)
    write_tables([unet], tmp_path / "out", external_files=[external])
    rows = {r["module"]: r for r in read_csv(tmp_path / "out/table1.csv")}
    assert float(rows["U-Net, no attention (ours)"]["dsc"]) == 0.7
    assert float(rows["nnU-Net 2d, same split (ours)"]["dsc"]) == 0.81
    assert rows["nnU-Net 2d, same split (ours)"]["paper_dsc"] == ""


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"variant": "se"})])
def test_missing_or_malformed_metric_file_is_named(tmp_path, content):
    path = tmp_path / "se" / "seed1.json"
    if content is not None:
        path.parent.mkdir()
        path.write_text(content)
    with pytest.raises(MetricsFileError, match=str(path)):
        write_tables([metrics_file(tmp_path, "unet", 1, 0.7), path], tmp_path / "out")


def test_every_row_is_compared_with_cbam_and_the_plain_unet_on_the_same_patients(tmp_path):
    files = [
        metrics_file(tmp_path, "cbam", 1, 0.5),
        metrics_file(tmp_path, "unet", 1, 0.6),
        metrics_file(tmp_path, "rbcbam", 1, 0.7),
        metrics_file(tmp_path, "rbcbam", 2, 0.7),
    ]
    write_tables(files, tmp_path / "out")
    rows = {r["module"]: r for r in read_csv(tmp_path / "out/table1.csv")}
    rb = rows["RB-CBAM (ASPP+R+B)"]
    # every patient has the same DSC, so every resample gives the same difference
    assert float(rb["vs_cbam"]) == pytest.approx(0.2) and float(rb["vs_cbam_low"]) == pytest.approx(
        0.2
    )
    assert rb["vs_cbam_excludes_zero"] == "True" and float(rb["vs_unet"]) == pytest.approx(0.1)
    assert float(rows["CBAM"]["vs_cbam"]) == 0 and rows["CBAM"]["vs_cbam_excludes_zero"] == "False"
    assert rows["SE"]["vs_cbam"] == ""  # not run
    md = (tmp_path / "out/table1.md").read_text()
    assert (
        "Diff vs CBAM [95% CI]" in md
        and "+0.2000 [+0.2000, +0.2000] *" in md
        and "paired patient-bootstrap" in md
    )
    assert "Test set: 4 patients, too few for the intervals to mean much." in md
    table2 = {r["module"]: r for r in read_csv(tmp_path / "out/table2.csv")}
    assert table2["All off, read as U-Net without attention (ours)"]["variant"] == "unet"
    assert float(
        table2["All off, read as U-Net without attention (ours)"]["diff_dsc"]
    ) == pytest.approx(0.6 - 0.3728)
    assert "cannot be the same model" in (tmp_path / "out/table2.md").read_text()
    assert "Diff vs all-off (CBAM)" in (tmp_path / "out/table2.tex").read_text()
