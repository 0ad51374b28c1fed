"""DICOM series -> HU volume: round trips, real samples, and every kind of bad input."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pydicom
import pytest

from lidcseg.core.series_manifest import SeriesManifest, SeriesManifestError
from lidcseg.data.dicom.files import find_series_dir
from lidcseg.data.dicom.series import read_series
from lidcseg.errors import ScanError
from tests.support.defaults import DEFAULTS
from tests.support.series import make_series


def _as_zyx(volume) -> np.ndarray:
    return volume.array.transpose(2, 1, 0)


@pytest.mark.parametrize("storage", ["signed-1024", "unsigned-1024", "unsigned-1000"])
def test_round_trip_keeps_hu_geometry_and_z_order(tmp_path, storage):
    hu, paths = make_series(tmp_path / "s", n=7, dz=1.25, spacing=0.68, storage=storage, z0=-80.0)
    # Shuffle file names and InstanceNumbers: only the z position may decide the order.
    rng = np.random.default_rng(1)
    names = [p.name for p in paths]
    for path, number in zip(paths, rng.permutation(len(paths)) + 1):
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = int(number)
        ds.save_as(path)
    for path, name in zip(paths, rng.permutation(names)):
        path.rename(path.with_name("tmp-" + name))
    volume, info = read_series(tmp_path / "s", DEFAULTS.convert)
    assert volume.array.dtype == np.int16
    np.testing.assert_array_equal(_as_zyx(volume), hu)
    assert volume.spacing == pytest.approx((0.68, 0.68, 1.25))
    assert volume.affine[2, 3] == pytest.approx(-80.0)  # first slice = lowest z
    assert info.z_first_mm == pytest.approx(-80.0) and info.z_last_mm == pytest.approx(
        -80.0 + 6 * 1.25
    )
    assert info.n_slices == 7 and info.warnings == []


def test_affine_is_ras_from_dicom_lps(series):
    folder, _, paths = series
    first = pydicom.dcmread(paths[0])
    volume, _ = read_series(folder, DEFAULTS.convert)
    x, y, z = (float(v) for v in first.ImagePositionPatient)
    np.testing.assert_allclose(volume.affine[:3, 3], [-x, -y, z])
    np.testing.assert_allclose(np.diag(volume.affine)[:3], [-0.7, -0.7, 2.5])


def test_patient_folder_finds_its_one_series(series):
    folder, _, _ = series
    assert find_series_dir(folder.parents[1]) == folder


def test_series_json_names_the_series_and_an_older_one_is_refused(series):
    folder, _, _ = series
    patient_dir = folder.parents[1]
    manifest = SeriesManifest(
        patient_id=patient_dir.name,
        study_instance_uid=folder.parent.name,
        series_instance_uid=folder.name,
        series_dir=str(folder.relative_to(patient_dir)),
        n_instances=len(list(folder.glob("*.dcm"))),
        source="synthetic",
    )
    manifest.save(patient_dir / "series.json")
    assert find_series_dir(patient_dir) == folder
    (patient_dir / "series.json").write_text('{"series_dir": "elsewhere"}')  # no format
    with pytest.raises(SeriesManifestError, match="series.json of no format.*lidcseg synthesize"):
        find_series_dir(patient_dir)


def test_lidc_xml_beside_the_slices_is_ignored(series):
    folder, hu, _ = series
    (folder / "069.xml").write_text("<LidcReadMessage/>")
    volume, _ = read_series(folder, DEFAULTS.convert)
    np.testing.assert_array_equal(_as_zyx(volume), hu)


def test_real_lidc_samples_give_expected_hu_and_spacing(lidc_samples):
    expected = {"LIDC-IDRI-0001": (16, 0.703125, 2.5), "LIDC-IDRI-0002": (12, 0.681641, 1.25)}
    for patient, (n, pixel, dz) in expected.items():
        volume, info = read_series(lidc_samples / patient, DEFAULTS.convert)
        assert volume.array.shape == (512, 512, n)
        assert volume.spacing == pytest.approx((pixel, pixel, dz), abs=1e-4)
        assert info.rescale == [(1.0, -1024.0)]
        hu = volume.array
        body = hu > -2000  # outside the reconstruction circle GE stores -3024 / -2048
        air = hu[body][hu[body] < -900]
        assert -1030 < np.median(air) < -960, "air should be about -1000 HU"
        lung = hu[(hu > -950) & (hu < -500)]
        assert -900 < np.median(lung) < -600, "lung parenchyma about -850 to -600 HU"
        soft = hu[(hu > -30) & (hu < 200)]  # muscle, organs, blood (fat is about -100)
        assert 0 < np.median(soft) < 100, "soft tissue about 0 to 100 HU"
        counts, edges = np.histogram(hu, bins=np.arange(-300, 300, 20))
        fat_peak = edges[np.argmax(np.where(edges[:-1] < -50, counts, 0))]
        assert -160 <= fat_peak <= -60, "subcutaneous fat peaks about -100 HU"


def test_truncated_file_names_the_file(series):
    folder, _, paths = series
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) - 1000])
    with pytest.raises(ScanError, match=f"{paths[2].name}.*truncated pixel data"):
        read_series(folder, DEFAULTS.convert)


def test_file_cut_inside_its_header_names_the_file(series):
    folder, _, paths = series
    paths[1].write_bytes(paths[1].read_bytes()[:300])
    with pytest.raises(ScanError, match=paths[1].name):
        read_series(folder, DEFAULTS.convert)


def test_zero_byte_file(series):
    folder, _, paths = series
    paths[0].write_bytes(b"")
    with pytest.raises(ScanError, match=f"{paths[0].name}: empty file"):
        read_series(folder, DEFAULTS.convert)


def test_non_dicom_file_in_the_folder(series):
    folder, _, _ = series
    (folder / "notes.txt").write_text("scanner log")
    with pytest.raises(ScanError, match="notes.txt: not a DICOM file"):
        read_series(folder, DEFAULTS.convert)


def test_non_ct_modality(series):
    folder, _, paths = series
    ds = pydicom.dcmread(paths[3])
    ds.Modality = "MR"
    ds.save_as(paths[3])
    with pytest.raises(ScanError, match=rf"{paths[3].name}: not a CT image \(Modality=MR\)"):
        read_series(folder, DEFAULTS.convert)


def test_dicom_without_pixels_is_not_an_image(series):
    folder, _, paths = series
    ds = pydicom.dcmread(paths[3])
    del ds.PixelData
    ds.save_as(paths[3])
    with pytest.raises(ScanError, match="without pixel data"):
        read_series(folder, DEFAULTS.convert)


def test_missing_rescale_reads_stored_values_as_hu_and_warns(tmp_path):
    hu, paths = make_series(tmp_path / "s", storage="signed-1024")
    for path in paths:
        ds = pydicom.dcmread(path)
        del ds.RescaleSlope, ds.RescaleIntercept
        ds.save_as(path)
    volume, info = read_series(tmp_path / "s", DEFAULTS.convert)
    np.testing.assert_array_equal(_as_zyx(volume), hu + 1024)  # identity: stored = HU
    assert any("RescaleSlope/Intercept missing" in w for w in info.warnings)
    with pytest.raises(ScanError, match="RescaleSlope/RescaleIntercept missing"):
        read_series(tmp_path / "s", replace(DEFAULTS.convert, missing_rescale="error"))


def test_rescale_slope_other_than_one(tmp_path):
    hu, paths = make_series(tmp_path / "s", storage="unsigned-1024")
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.RescaleSlope, ds.RescaleIntercept = 0.5, -1024
        ds.save_as(path)
    volume, _ = read_series(tmp_path / "s", DEFAULTS.convert)
    np.testing.assert_array_equal(_as_zyx(volume), np.rint((hu + 1024) * 0.5 - 1024))


def test_two_series_in_one_folder(tmp_path):
    make_series(tmp_path / "s", n=4)
    make_series(tmp_path / "other", n=3, series_uid="1.2.3.4.99", z0=50.0)
    for path in (tmp_path / "other").iterdir():
        shutil.move(path, tmp_path / "s" / ("b-" + path.name))
    with pytest.raises(
        ScanError, match=r"2 series mixed in one folder: .*1\.2\.3\.4\.2.*1\.2\.3\.4\.99"
    ):
        read_series(tmp_path / "s", DEFAULTS.convert)


def test_duplicate_z_keeps_the_lower_instance_number_as_pylidc_does(series):
    folder, hu, paths = series
    twin = pydicom.dcmread(paths[2])
    original_number = int(twin.InstanceNumber)
    twin.InstanceNumber = 100
    twin.SOPInstanceUID = "1.2.3.4.5.6.7"
    twin.PixelData = np.zeros(hu.shape[1:], dtype=np.int16).tobytes()
    twin.save_as(folder / "dup.dcm")
    volume, info = read_series(folder, DEFAULTS.convert)
    np.testing.assert_array_equal(_as_zyx(volume), hu)
    assert info.dropped_duplicates == ["dup.dcm"] and original_number < 100
    assert any("duplicate z" in w for w in info.warnings)


def test_a_gap_is_kept_recorded_and_placed_by_its_real_z(series):
    folder, hu, paths = series
    paths[3].unlink()
    volume, info = read_series(folder, DEFAULTS.convert)
    np.testing.assert_array_equal(_as_zyx(volume), np.delete(hu, 3, axis=0))
    assert info.gaps == [[-95.0, -90.0, paths[2].name, paths[4].name]]
    assert any(
        w.startswith("missing slice(s): about 1 absent between z=-95.00") for w in info.warnings
    )
    np.testing.assert_allclose(volume.slice_z, [-100, -97.5, -95, -90, -87.5])
    assert info.z_mm == pytest.approx([-100, -97.5, -95, -90, -87.5])


def test_uneven_spacing_is_kept_at_its_real_z(series):
    folder, _, paths = series
    ds = pydicom.dcmread(paths[3])
    ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 0.6
    ds.save_as(paths[3])
    volume, info = read_series(folder, DEFAULTS.convert)
    assert volume.spacing[2] == pytest.approx(2.5) and info.gaps == []
    assert volume.slice_z[3] == pytest.approx(-92.5 + 0.6)
    assert any("uneven slice spacing" in w and paths[2].name in w for w in info.warnings)


@pytest.mark.parametrize("end", ["below", "above"])
def test_a_stray_slice_far_off_the_stack_is_dropped_with_a_warning(series, end):
    """LIDC-IDRI-0514's shape: one slice 38 mm off an evenly spaced stack."""
    folder, hu, paths = series
    stray = paths[0] if end == "below" else paths[-1]
    ds = pydicom.dcmread(stray)
    ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + (
        -38.0 if end == "below" else 38.0
    )
    ds.save_as(stray)
    volume, info = read_series(folder, DEFAULTS.convert)
    kept = hu[1:] if end == "below" else hu[:-1]
    np.testing.assert_array_equal(_as_zyx(volume), kept)
    assert info.dropped_strays == [stray.name] and info.gaps == []
    assert any(
        w.startswith(f"stray slice {stray.name}") and f"40.5 mm {end} the stack" in w
        for w in info.warnings
    )


def test_unequal_pixel_spacing_between_slices(series):
    folder, _, paths = series
    ds = pydicom.dcmread(paths[4])
    ds.PixelSpacing = [0.8, 0.8]
    ds.save_as(paths[4])
    with pytest.raises(ScanError, match=rf"{paths[4].name}: pixel spacing"):
        read_series(folder, DEFAULTS.convert)


def test_folder_without_dicom(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ScanError, match="no DICOM files"):
        read_series(tmp_path / "empty", DEFAULTS.convert)
