"""Nodule size groups by diameter: the split's strata, the evaluation's table by size and the
report's Figure 3 all cut at the same edges (config: ``evaluate.size_bins_mm``)."""

from __future__ import annotations

import numpy as np


def size_labels(edges: tuple[float, ...]) -> list[str]:
    """``(6, 10, 20)`` -> ``['<6', '6-10', '10-20', '>=20']``."""
    fmt = lambda v: f"{v:g}"  # noqa: E731
    return (
        [f"<{fmt(edges[0])}"]
        + [f"{fmt(a)}-{fmt(b)}" for a, b in zip(edges, edges[1:])]
        + [f">={fmt(edges[-1])}"]
    )


def size_label(diameter: float, edges: tuple[float, ...]) -> str:
    """The group of a nodule of ``diameter`` mm (an edge belongs to the group above it)."""
    return size_labels(edges)[int(np.searchsorted(edges, diameter, side="right"))]
