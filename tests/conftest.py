"""Shared fixtures: tiny hand-made CT series, the real LIDC samples, one synthetic patient."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lidcseg.data.synthesize import STORAGES, SeriesIds, to_stored, write_ct_series

REPO = Path(__file__).resolve().parents[1]
LIDC_SAMPLES = Path(os.environ.get("LIDC_SAMPLES", REPO.parent / "shared" / "lidc-samples"))


def make_series(folder: Path, n: int = 6, size: int = 24, dz: float = 2.5, spacing: float = 0.7,
                storage: str = "signed-1024", z0: float = -100.0, seed: int = 0,
                series_uid: str = "1.2.3.4.2") -> tuple[np.ndarray, list[Path]]:
    """Write an n-slice CT series; return its HU as read back should be ((z, y, x), ascending z)
    and the file paths in z order."""
    rng = np.random.default_rng(seed)
    hu = rng.integers(-1000, 1500, size=(n, size, size)).astype(np.float64)
    ids = SeriesIds("LIDC-IDRI-9999", "1.2.3.4.1", series_uid, spacing, dz)
    convention = STORAGES[storage]
    stored = to_stored(hu, convention)
    paths = write_ct_series(folder, ids, z0 + dz * np.arange(n), stored, convention)
    return stored.astype(np.int32) + int(convention.intercept), paths


@pytest.fixture
def series(tmp_path):
    """A valid 6-slice series folder and its expected HU (z, y, x)."""
    folder = tmp_path / "LIDC-IDRI-9999" / "1.2.3.4.1" / "1.2.3.4.2"
    hu, paths = make_series(folder)
    return folder, hu, paths


@pytest.fixture(scope="session")
def lidc_samples() -> Path:
    if not LIDC_SAMPLES.is_dir():
        pytest.skip(f"real LIDC samples not found at {LIDC_SAMPLES} (they live in ../shared, beside a checkout)")
    return LIDC_SAMPLES


@pytest.fixture(scope="session")
def synthetic_patient(tmp_path_factory):
    """LIDC-IDRI-0078 (87 slices of 3 mm, four nodules) synthesized once per test session."""
    from lidcseg.data.synthesize import synthesize_patient

    root = tmp_path_factory.mktemp("lidc")
    series_dir, painted = synthesize_patient("LIDC-IDRI-0078", root, seed=7)
    return root, series_dir, painted
