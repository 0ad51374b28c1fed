"""The fields of the small files stages hand each other, checked where they are read.

JSON and CSV side files (a grid transform, a nodule table, a packed split's rows, an inspect
record, a metrics file) are plain text that anyone can edit, cut short or mix up. A reader
that indexes one unchecked stops on a KeyError, a TypeError or a NaN far from the cause; here
each reader states the fields it needs as *kinds* (:func:`number`, :func:`whole`,
:func:`numbers`, ...) and :func:`check_fields` / :func:`check_rows` refuse the first field
that is missing, of the wrong type or length, or not a finite number, in one line naming the
file (and the row). One rule for every side file, so the messages read alike.

A kind is a function of the raw value (a JSON value, or a CSV cell's text) that returns the
value to use or raises ``ValueError`` saying what is wrong.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

from lidcseg.errors import LidcsegError
from lidcseg.io import read_json, read_rows

Kind = Callable[[object], object]


class RecordError(LidcsegError):
    """A side file whose fields are not what its reader needs; names the file and field."""


def number(value) -> float:
    """A finite number (a JSON number; text is not one: see :func:`cell`)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


def whole(value) -> int:
    """A whole number (a JSON integer; 2.0 and "2" are not one)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not a whole number")
    return value


def cell(kind: Kind) -> Kind:
    """``kind`` of a CSV cell: its text read as an integer, else a float, where it is one."""
    return lambda value: kind(_from_text(value) if isinstance(value, str) else value)


def _from_text(text: str):
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def text(value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a non-empty text")
    return value


def string(value) -> str:
    """Any text, empty included."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    return value


def one_of(*choices: str) -> Kind:
    def check(value):
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


def may_lack(kind: Kind) -> Kind:
    """``kind`` when the field is there; a record may lack it."""

    def check(value):
        return kind(value)

    check.may_be_absent = True
    return check


def mapping(value) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"a {type(value).__name__}, not a mapping")
    return value


def at_least(kind: Kind, low: float) -> Kind:
    """``kind``, and at least ``low``."""

    def check(value):
        parsed = kind(value)
        if parsed < low:
            raise ValueError(f"{parsed} is below {low}")
        return parsed

    return check


def optional(kind: Kind) -> Kind:
    """``kind``, or nothing (JSON null, an empty CSV cell)."""
    return lambda value: None if value is None or value == "" else kind(value)


def listed(kind: Kind, length: int | None = None) -> Kind:
    """A list of ``kind`` (of ``length`` items when given)."""

    def check(value):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{value!r} is not a list")
        if length is not None and len(value) != length:
            raise ValueError(f"holds {len(value)} values, not {length}")
        items = []
        for i, item in enumerate(value):
            try:
                items.append(kind(item))
            except ValueError as error:
                raise ValueError(f"item {i}: {error}") from None
        return items

    return check


def numbers(length: int | None = None) -> Kind:
    """A list of finite numbers (of ``length`` when given)."""
    return listed(number, length)


def score(value) -> float:
    """A DSC, precision or recall: a number from 0 to 1, or NaN (JSON's NaN: undefined, as
    the precision of a model that predicted nothing)."""
    if isinstance(value, float) and math.isnan(value):
        return value
    parsed = number(value)
    if not 0 <= parsed <= 1:
        raise ValueError(f"{parsed} is not from 0 to 1")
    return parsed


def holding(spec: dict[str, Kind]) -> Kind:
    """A mapping holding at least the keys of ``spec``, each of its kind."""

    def check(value):
        mapping(value)
        for key, kind in spec.items():
            if key not in value:
                raise ValueError(f"lacks '{key}'")
            try:
                kind(value[key])
            except ValueError as error:
                raise ValueError(f"'{key}': {error}") from None
        return value

    return check


def check_fields(record, path: str | os.PathLike, fields: dict[str, Kind], what: str) -> dict:
    """``record`` (a file's JSON), returned as it is once each of ``fields`` is checked: a
    mapping holding every field, each of its kind; else refused naming ``path`` (``what`` the
    file is) and the field."""
    if not isinstance(record, dict):
        raise RecordError(f"{path}: not {what} (a {type(record).__name__}, not a mapping)")
    for name, kind in fields.items():
        if name not in record and getattr(kind, "may_be_absent", False):
            continue
        if name not in record:
            raise RecordError(f"{path}: not {what}: field '{name}' is missing")
        try:
            kind(record[name])
        except ValueError as error:
            raise RecordError(f"{path}: {what}, field '{name}': {error}") from None
    return record


def check_rows(rows: list[dict], path: str | os.PathLike, columns: dict[str, Kind]) -> list[dict]:
    """CSV ``rows`` (``io.read_rows``, strings), returned as they are once each of ``columns``
    is checked in every row; a missing column, or a cell not of its kind (a short row's cell
    is None), is refused naming ``path``, the line and the column."""
    present = set(rows[0]) if rows else set(columns)
    missing = [name for name in columns if name not in present]
    if missing:
        raise RecordError(f"{path}: lacks the column(s) {', '.join(missing)}")
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        for name, kind in columns.items():
            try:
                kind(row[name])
            except ValueError as error:
                raise RecordError(f"{path}: line {line}, column '{name}': {error}") from None
    return rows


def read_table(path: str | os.PathLike, columns: dict[str, Kind]) -> list[dict]:
    """A CSV table's rows (strings), ``columns`` checked (:func:`check_rows`)."""
    return check_rows(read_rows(path), path, columns)


def id_list(value) -> list[int]:
    """Nodule ids joined by ';' (a slice row's ``nodules``), possibly none."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a ';'-joined list of nodule ids")
    return [cell(at_least(whole, 1))(part) for part in value.split(";") if part]


# annotate's nodule table (data/lidc/annotations.py), the columns every reader needs
# (extract, cohort and evaluate's --nodules; each adds its own)
NODULE_TABLE: dict[str, Kind] = {
    "patient_id": text,
    "nodule": cell(at_least(whole, 1)),
    "diameter_mm": cell(at_least(number, 0)),
}
# extract's slice rows (data/dataset/slices.py), as split reads them and packs them into
# <split>.csv, which training, evaluation, readers and the report read
SLICE_ROWS: dict[str, Kind] = {
    "patient_id": text,
    "slice": cell(at_least(whole, 0)),
    "nodules": id_list,
    "diameter_mm": optional(cell(at_least(number, 0))),
}
# annotate's table with each nodule's status, as the cohort counts it
NODULE_STATUS: dict[str, Kind] = {
    **{k: NODULE_TABLE[k] for k in ("patient_id", "nodule")},
    "status": text,
}
# annotate's summary (.json beside the mask), as the cohort counts it
ANNOTATE_SUMMARY: dict[str, Kind] = {
    "patient_id": text,
    "status": text,
    "reason": string,
    **{key: at_least(whole, 0) for key in ("n_annotations", "n_nodules", "n_slices_with_nodules")},
}

_SHAPE = listed(at_least(whole, 1), 3)
_AFFINE = listed(numbers(4), 4)
# resample's grid transform (data/resample.py GridTransform, its --transform JSON)
GRID_FIELDS: dict[str, Kind] = {
    "input_shape": _SHAPE,
    "output_shape": _SHAPE,
    "scale": listed(at_least(number, 1e-6), 3),  # positive: the output spacing / the input's
    "offset": numbers(3),
    "input_affine": _AFFINE,
    "output_affine": _AFFINE,
    "source_z": may_lack(optional(numbers())),
}


def read_grid(path: str | os.PathLike) -> dict:
    """A grid transform JSON (resample's ``--grid``, the readers' .grid.json), every field
    checked and no other present: what ``GridTransform.from_dict`` takes."""
    record = check_fields(read_json(path), path, GRID_FIELDS, "a grid transform")
    unknown = sorted(set(record) - set(GRID_FIELDS))
    if unknown:
        raise RecordError(f"{path}: a grid transform with unknown field(s) {unknown}")
    return record
