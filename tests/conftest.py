"""Shared fixtures: tiny hand-made CT series, the real LIDC samples, one synthetic patient."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import LIDC_SAMPLES
from tests.support.defaults import DEFAULTS
from tests.support.series import make_series


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
    from lidcseg.data.synthetic.synthesize import synthesize_patient

    root = tmp_path_factory.mktemp("lidc")
    series_dir, painted = synthesize_patient("LIDC-IDRI-0078", root, seed=7, noise_hu=DEFAULTS.synthesize.noise_hu,
                                             storage=DEFAULTS.synthesize.storage)
    return root, series_dir, painted
