"""Shared fixtures: tiny hand-made CT series, the real LIDC samples, one synthetic patient."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.defaults import DEFAULTS
from tests.support.paths import LIDC_SAMPLES
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
        pytest.skip(
            f"real LIDC samples not found at {LIDC_SAMPLES} "
            "(they live in ../shared, beside a checkout)"
        )
    return LIDC_SAMPLES


@pytest.fixture(scope="session")
def synthetic_patient(tmp_path_factory):
    """LIDC-IDRI-0078 (87 slices of 3 mm, four nodules) synthesized once per test session."""
    from lidcseg.data.synthetic.synthesize import synthesize_patient

    root = tmp_path_factory.mktemp("lidc")
    series_dir, painted = synthesize_patient(
        "LIDC-IDRI-0078",
        root,
        seed=7,
        noise_hu=DEFAULTS.synthesize.noise_hu,
        storage=DEFAULTS.synthesize.storage,
    )
    return root, series_dir, painted


@pytest.fixture(scope="session")
def synthetic_slices(synthetic_patient):
    """The synthetic patient through convert, annotate, resample and extract, with the
    default config, as the rules run them (in memory)."""
    from types import SimpleNamespace

    from lidcseg.data.dataset.slices import extract_slices
    from lidcseg.data.dicom.series import read_series
    from lidcseg.data.lidc.annotations import annotate
    from lidcseg.data.resample import plan_grid, resample_image, resample_mask

    _, series_dir, painted = synthetic_patient
    r = DEFAULTS.resample
    volume, _ = read_series(series_dir, DEFAULTS.convert)
    labels, rows, summary = annotate(series_dir, volume, DEFAULTS.annotate)
    grid = plan_grid(volume, r.spacing_mm, r.image_size)
    image = resample_image(volume, grid, r.image_interpolation, r.pad_hu)
    mask = resample_mask(labels, grid, r.mask_interpolation)
    _, masks, slice_rows = extract_slices(image, mask, rows, "LIDC-IDRI-0078", DEFAULTS.extract)
    return SimpleNamespace(
        volume=volume,
        grid=grid,
        summary=summary,
        masks=masks,
        slice_rows=slice_rows,
        painted=painted,
    )


def pytest_collection_modifyitems(session, config, items):
    """Start the slow torch.compile training in the background when its test is selected (see
    tests/support/compiled.py); the test waits for it."""
    from tests.support import compiled

    if compiled.compiler() and any(
        item.name == "test_compiled_training_matches_eager" for item in items
    ):
        config.stash[COMPILED] = compiled.start()


def pytest_unconfigure(config):
    started = config.stash.get(COMPILED, None)
    if started is not None and started[0].poll() is None:
        started[0].kill()


COMPILED = pytest.StashKey[tuple]()


@pytest.fixture(scope="session")
def compiled_run(request):
    """(return code, output folder) of the background compiled training, once it ended."""
    started = request.config.stash.get(COMPILED, None)
    if started is None:
        pytest.skip("torch.compile on the CPU needs a C++ compiler (inductor); none on PATH")
    process, out = started
    return process.wait(timeout=900), out
