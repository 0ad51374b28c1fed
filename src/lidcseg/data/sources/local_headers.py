"""Who a file of a copy on disk belongs to, from its first few kilobytes: never pixel data.

The index of a local copy needs six tags of each file (patient, study, series, instance,
modality, and the collection name TCIA's anonymizer leaves in a private tag). They all come
before group 0028, so for the uncompressed Explicit VR Little Endian files of LIDC-IDRI the
reader walks the elements of the first ``CHUNK`` bytes and stops after SeriesInstanceUID
(about 20 times faster than pydicom). Anything else (another transfer syntax, an odd
element) goes to pydicom with ``stop_before_pixels``, which either reads it or says why not.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lidcseg.data.dicom.header import EXPLICIT_VR_LITTLE_ENDIAN, NotSimple, value_span

CHUNK = 8192  # LIDC files reach SeriesInstanceUID within ~1.2 kB
WANTED = {
    0x00080018: "sop_uid",
    0x00080060: "modality",
    0x00100020: "patient_id",
    0x00131010: "collection",  # CTP's private "project name": LIDC-IDRI in TCIA's files
    0x0020000D: "study_uid",
    0x0020000E: "series_uid",
}
LAST = 0x0020000E
PYDICOM_TAGS = ["SOPInstanceUID", "Modality", "PatientID", "StudyInstanceUID", "SeriesInstanceUID"]


@dataclass(frozen=True)
class FileHeader:
    """One file's answer: a DICOM file's ids, or why it is none (``problem``)."""

    patient_id: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    modality: str = ""
    collection: str = ""  # "" when the file does not say
    problem: str = ""  # "not DICOM: ..." or "unreadable: ..."; "" for a DICOM file

    def as_row(self) -> list[str]:
        return [
            self.patient_id,
            self.study_uid,
            self.series_uid,
            self.sop_uid,
            self.modality,
            self.collection,
            self.problem,
        ]

    @classmethod
    def from_row(cls, row: list[str]) -> FileHeader:
        return cls(*row)


class _NeedMore(NotSimple):
    """The ids lie beyond the bytes read so far."""


def read_file_header(path: str) -> FileHeader:
    """The ids of the file at ``path``; a file that is no DICOM, or cannot be read, is a
    ``FileHeader`` with its ``problem`` said, never an exception."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(CHUNK)
            if not data:
                return FileHeader(problem="not DICOM: empty file")
            try:
                return _parse(memoryview(data))
            except _NeedMore:
                if len(data) < CHUNK:
                    raise
                data += handle.read(15 * CHUNK)  # a long header: up to 128 kB in all
            return _parse(memoryview(data))
    except OSError as exc:
        return FileHeader(problem=f"unreadable: {exc.strerror or exc}")
    except (NotSimple, struct.error, ValueError, UnicodeDecodeError):
        return _pydicom_header(path)


def _parse(data: memoryview) -> FileHeader:
    if len(data) < 132 or bytes(data[128:132]) != b"DICM":
        raise NotSimple  # not _NeedMore: a short file without the preamble is pydicom's
    pos, meta = _walk(data, 132, meta=True)
    if _text(meta.get(0x00020010, b"")) != EXPLICIT_VR_LITTLE_ENDIAN:
        raise NotSimple
    _, found = _walk(data, pos, meta=False)
    values = {WANTED[tag]: _text(raw) for tag, raw in found.items()}
    if not values.get("series_uid") or not values.get("sop_uid"):
        raise NotSimple  # pydicom says what is missing
    return FileHeader(**values)


def _walk(data: memoryview, pos: int, meta: bool) -> tuple[int, dict]:
    """Step over elements from ``pos``: the file meta (group 0002) when ``meta``, else the
    data set until past SeriesInstanceUID, keeping the values of WANTED tags."""
    found: dict = {}
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        tag = (group << 16) | element
        if (meta and group != 0x0002) or (not meta and tag > LAST):
            return pos, found
        start, length = value_span(data, pos)
        if start + length > len(data):
            raise _NeedMore
        if meta or tag in WANTED:
            found[tag] = data[start : start + length]
        pos = start + length
    raise _NeedMore  # ended before the file meta, or SeriesInstanceUID, was passed


def _text(raw) -> str:
    return bytes(raw).decode("ascii").strip(" \x00")


def _pydicom_header(path: str) -> FileHeader:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=PYDICOM_TAGS)
    except InvalidDicomError:
        return FileHeader(problem="not DICOM: no DICOM preamble")
    except OSError as exc:
        return FileHeader(problem=f"unreadable: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001  (pydicom raises many types on damaged headers)
        return FileHeader(problem=f"unreadable DICOM: {type(exc).__name__}: {exc}")
    values = {keyword: str(ds.get(keyword) or "") for keyword in PYDICOM_TAGS}
    if not values["SeriesInstanceUID"] or not values["SOPInstanceUID"]:
        return FileHeader(problem="not an image of a series: no SeriesInstanceUID/SOPInstanceUID")
    return FileHeader(
        patient_id=values["PatientID"],
        study_uid=values["StudyInstanceUID"],
        series_uid=values["SeriesInstanceUID"],
        sop_uid=values["SOPInstanceUID"],
        modality=values["Modality"],
    )
