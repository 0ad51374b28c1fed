"""Fast reading of the few DICOM tags conversion needs, for the common, simple file layout.

LIDC-IDRI (and every synthetic series) is stored as uncompressed Explicit VR Little Endian
files. For those, walking the elements with ``struct`` and keeping ~20 tags is about ten
times faster than building a pydicom Dataset, and parsing is most of the conversion time
(benchmarks/convert_resample.py). The reader is strict: anything it does not fully
understand (another transfer syntax, an undefined length, an odd VR, a header cut short)
returns None, and the caller reads the file with pydicom instead, which either reads it or
raises the error that names what is wrong. So this module can make conversion faster but
never changes what is accepted.
"""

from __future__ import annotations

import struct

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
PIXEL_DATA = 0x7FE00010
TRANSFER_SYNTAX = 0x00020010
# VRs whose length field is 4 bytes after 2 reserved bytes (PS3.5 7.1.2).
LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)

# keyword: (tag, how to decode the value)
TAGS = {
    "Modality": (0x00080060, "str"),
    "StudyInstanceUID": (0x0020000D, "str"),
    "SeriesInstanceUID": (0x0020000E, "str"),
    "PatientID": (0x00100020, "str"),
    "SOPInstanceUID": (0x00080018, "str"),
    "InstanceNumber": (0x00200013, "int_string"),
    "ImagePositionPatient": (0x00200032, "floats"),
    "ImageOrientationPatient": (0x00200037, "floats"),
    "PixelSpacing": (0x00280030, "floats"),
    "RescaleIntercept": (0x00281052, "float"),
    "RescaleSlope": (0x00281053, "float"),
    "SamplesPerPixel": (0x00280002, "ushort"),
    "Rows": (0x00280010, "ushort"),
    "Columns": (0x00280011, "ushort"),
    "BitsAllocated": (0x00280100, "ushort"),
    "BitsStored": (0x00280101, "ushort"),
    "PixelRepresentation": (0x00280103, "ushort"),
    "PixelData": (PIXEL_DATA, "bytes"),
}
_BY_TAG = {tag: (keyword, kind) for keyword, (tag, kind) in TAGS.items()}


class NotSimple(Exception):
    """The file is not the simple layout; pydicom must read it."""


def read_simple_header(data: bytes) -> dict | None:
    """The TAGS present in ``data`` (a whole file) as Python values, plus TransferSyntaxUID;
    None when the file is not an uncompressed Explicit VR Little Endian DICOM file."""
    try:
        return _parse(memoryview(data))
    except (NotSimple, struct.error, ValueError, UnicodeDecodeError):
        return None


def _parse(data: memoryview) -> dict:
    if len(data) < 132 or bytes(data[128:132]) != b"DICM":
        raise NotSimple
    pos, meta = _walk(data, 132, stop_group=0x0002)
    syntax = _decode(meta.get(TRANSFER_SYNTAX, b""), "str")
    if syntax != EXPLICIT_VR_LITTLE_ENDIAN:
        raise NotSimple
    _, elements = _walk(data, pos, stop_group=None)
    header = {"TransferSyntaxUID": syntax}
    for tag, raw in elements.items():
        keyword, kind = _BY_TAG[tag]
        header[keyword] = _decode(raw, kind)
    return header


def value_span(data: memoryview, pos: int) -> tuple[int, int]:
    """(start, length) of the value of the Explicit VR Little Endian element at ``pos``
    (PS3.5 7.1.2); NotSimple for what this reader leaves to pydicom: a VR that is not two
    capital letters, an undefined length (a sequence or encapsulated pixels)."""
    vr = bytes(data[pos + 4 : pos + 6])
    if not vr.isalpha() or not vr.isupper():
        raise NotSimple
    if vr in LONG_VRS:
        (length,) = struct.unpack_from("<I", data, pos + 8)
        start = pos + 12
    else:
        (length,) = struct.unpack_from("<H", data, pos + 6)
        start = pos + 8
    if length == 0xFFFFFFFF:
        raise NotSimple
    return start, length


def _walk(data: memoryview, pos: int, stop_group: int | None) -> tuple[int, dict]:
    """Step over elements from ``pos``; keep the values of wanted tags. With ``stop_group``,
    stop at the first element of another group (the file meta is group 0002)."""
    found: dict = {}
    end_of_data = len(data)
    while pos + 8 <= end_of_data:
        group, element = struct.unpack_from("<HH", data, pos)
        if stop_group is not None and group != stop_group:
            break
        start, length = value_span(data, pos)
        tag = (group << 16) | element
        if tag == PIXEL_DATA:  # the last element we need; keep what is there, even if short
            found[tag] = data[start : start + length]
            return end_of_data, found
        if start + length > end_of_data:
            raise NotSimple
        if stop_group is not None or tag in _BY_TAG:
            found[tag] = data[start : start + length]
        pos = start + length
    if stop_group is None:
        raise NotSimple  # no pixel data: a non-image or a cut file; pydicom will say which
    return pos, found


def cut_short(data: bytes) -> bool:
    """True when a DICOM file of explicit-VR elements ends inside an element: cut in transfer
    or on disk (pydicom reads such a file as far as it goes, without a word)."""
    if len(data) < 132 or data[128:132] != b"DICM":
        return False
    return _ends_inside_an_element(memoryview(data), 132)


def _ends_inside_an_element(data: memoryview, pos: int) -> bool:
    """Step over elements by their lengths alone: does the last one run past the end?"""
    while pos + 8 <= len(data):
        vr = bytes(data[pos + 4 : pos + 6])
        if not vr.isalpha() or not vr.isupper():
            return False  # implicit VR: lengths cannot be read this way
        long = vr in LONG_VRS
        if pos + (12 if long else 8) > len(data):
            return True
        (length,) = struct.unpack_from("<I" if long else "<H", data, pos + (8 if long else 6))
        if length == 0xFFFFFFFF:
            return False  # undefined length: not a layout this check reads
        pos += (12 if long else 8) + length
    return pos != len(data)


def _decode(raw: memoryview, kind: str):
    if kind == "bytes":
        return raw
    if kind == "ushort":
        if len(raw) != 2:
            raise NotSimple
        return struct.unpack("<H", raw)[0]
    text = bytes(raw).decode("ascii").strip(" \x00")
    if kind == "str":
        return text
    if kind == "int_string":
        return int(text) if text else None
    if kind == "float":
        return float(text)
    return [float(v) for v in text.split("\\")]  # floats: a multi-valued DS
