"""The memory budget: an array whose size a file's header decides is checked before it exists.

A NIfTI header, a DICOM series (Rows x Columns x slices), a resampling grid or a model file's
grid sets the size of an array from a few bytes of input: a 1 MB .nii.gz can declare
1024 x 1024 x 500 voxels, a spacing of 1e6 mm a grid of terabytes. Each place that sizes an
array from a file calls :func:`check` with the shape and dtype first, so such a file is
refused in a line that names it, the shape and the limit, instead of swapping the machine or
being killed by the kernel's OOM killer without a word.

The limit is ``execution.memory_limit_gb`` (GB = 10^9 bytes; how much one job may hold, so
execution: it never changes what a job computes, only whether it runs), which the CLI hands
here from ``--execution`` / ``--settings`` (:func:`use_limit`); the environment variable
``LIDCSEG_MEMORY_LIMIT_GB`` overrides it (a cluster job's memory, set once in its script).
Without either (the package used as a library), the shipped config's value applies.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np

from lidcseg.errors import LidcsegError

ENVIRONMENT = "LIDCSEG_MEMORY_LIMIT_GB"
KEY = "execution.memory_limit_gb"
GB = 10**9

# Where the limit comes from when the environment does not set it: a function answering GB
# (the CLI's, reading the command's execution section only when an array is first checked).
_source: Callable[[], float] | None = None


class MemoryBudgetError(LidcsegError):
    """An array that a file sizes would exceed the memory limit; names the file and shape."""


def use_limit(source: Callable[[], float] | None) -> None:
    """Take the limit (GB) from ``source()`` from now on (None: the shipped config's)."""
    global _source
    _source = source


def limit_bytes() -> int:
    """The limit in bytes: ``LIDCSEG_MEMORY_LIMIT_GB`` when set, else the configured key."""
    text = os.environ.get(ENVIRONMENT, "").strip()
    if text:
        try:
            gb = float(text)
        except ValueError:
            gb = math.nan
        if not (math.isfinite(gb) and gb > 0):
            raise LidcsegError(
                f"environment variable {ENVIRONMENT}: {text!r} is not a positive number of GB"
            )
        return int(gb * GB)
    return int((_source or _shipped_limit)() * GB)


def check(shape, dtype, where, copies: int = 1) -> None:
    """Refuse, before allocating, ``copies`` arrays of ``shape`` and ``dtype`` that would
    exceed the limit, naming ``where`` (the file whose header or grid sized them). Sizes are
    Python integers, so a header's absurd dimensions cannot overflow into a small number."""
    dims = [int(n) for n in shape]
    if any(n < 0 for n in dims):
        raise MemoryBudgetError(f"{where}: negative array size {tuple(dims)}")
    need = math.prod(dims) * np.dtype(dtype).itemsize * int(copies)
    limit = limit_bytes()
    if need > limit:
        held = f"{copies} x " if copies > 1 else ""
        raise MemoryBudgetError(
            f"{where}: {held}{' x '.join(map(str, dims))} {np.dtype(dtype).name} voxels would "
            f"take {need / GB:.3g} GB, over the memory limit of {limit / GB:.3g} GB "
            f"({KEY}, or {ENVIRONMENT})"
        )


def _shipped_limit() -> float:
    from lidcseg import config

    return config.execution(None, config.DEFAULTS_PATH).memory_limit_gb
