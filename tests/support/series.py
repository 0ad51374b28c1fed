"""Tiny hand-made CT series written as DICOM files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lidcseg.data.synthetic.synthesize import STORAGES, SeriesIds, to_stored, write_ct_series


def make_series(
    folder: Path,
    n: int = 6,
    size: int = 24,
    dz: float = 2.5,
    spacing: float = 0.7,
    storage: str = "signed-1024",
    z0: float = -100.0,
    seed: int = 0,
    series_uid: str = "1.2.3.4.2",
) -> tuple[np.ndarray, list[Path]]:
    """Write an n-slice CT series; return its HU as read back should be ((z, y, x), ascending z)
    and the file paths in z order."""
    rng = np.random.default_rng(seed)
    hu = rng.integers(-1000, 1500, size=(n, size, size)).astype(np.float64)
    ids = SeriesIds("LIDC-IDRI-9999", "1.2.3.4.1", series_uid, spacing, dz)
    convention = STORAGES[storage]
    stored = to_stored(hu, convention)
    paths = write_ct_series(folder, ids, z0 + dz * np.arange(n), stored, convention)
    return stored.astype(np.int32) + int(convention.intercept), paths
