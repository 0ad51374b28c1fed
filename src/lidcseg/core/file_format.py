"""What every file one stage hands another has in common: a ``format`` number and a fixed
set of fields, checked when it is read.

Each such file has one small typed contract (``model_file``, ``metrics_file``,
``readers_file``, ``series_manifest``; the training state in training/checkpoints.py) that
its writer and its readers both import. A file of another format, one without a format, or
one whose fields differ from the contract's is refused in one line naming the file and what
to rerun: the workflow regenerates these files, so nothing is filled in for an old one.
"""

from __future__ import annotations

import dataclasses
import os

from lidcseg.errors import LidcsegError


class FileFormatError(LidcsegError):
    """A file handed between stages that this lidcseg cannot use, named with what to rerun."""


def contract_fields(
    contract: type,
    payload,
    path: str | os.PathLike,
    kind: str,
    expected: int,
    rerun: str,
    error: type[FileFormatError] = FileFormatError,
) -> dict:
    """The fields of dataclass ``contract`` read from ``payload`` (a file's dict), after its
    ``format`` is checked to be ``expected``. ``kind`` names the file ("model file"), ``rerun``
    says what writes it afresh; ``error`` is the one-line error raised."""
    if not isinstance(payload, dict):
        raise error(f"{path}: not a {kind} (a {type(payload).__name__}, not a mapping)")
    found = payload.get("format")
    if found != expected:
        which = "no format" if found is None else f"format {found!r}"
        raise error(
            f"{path}: {kind} of {which}, this lidcseg reads format {expected}: rerun {rerun}"
        )
    names = [field.name for field in dataclasses.fields(contract)]
    missing = [name for name in names if name not in payload]
    extra = sorted(set(payload) - set(names) - {"format"})
    if missing or extra:
        what = "; ".join(
            part
            for part in (
                f"lacks {', '.join(missing)}" if missing else "",
                f"has unknown {', '.join(extra)}" if extra else "",
            )
            if part
        )
        raise error(f"{path}: {kind} of format {expected} that {what}: rerun {rerun}")
    return {name: payload[name] for name in names}


def contract_payload(contract, expected: int) -> dict:
    """A contract's fields as the dict its file holds, ``format`` first (shallow: a field's
    own value, a state dict say, is kept as it is)."""
    return {
        "format": expected,
        **{field.name: getattr(contract, field.name) for field in dataclasses.fields(contract)},
    }
