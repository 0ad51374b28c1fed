"""Resample to the paper's spacing and crop/pad to a fixed in-plane size (docs/paper.md,
"Pre-processing", step 2: 0.68 x 0.68 mm in-plane, 2.0 mm slices; 512 x 512 in-plane).

Open points of the paper, decided here and set in config (``resample``):
- Grid: voxel corners stay put (the resampled grid starts at the first voxel's outer edge),
  so the physical extent is kept to within one output voxel; the in-plane crop or pad is
  centred. The exact map output index -> input index is a per-axis scale and offset,
  recorded as a :class:`GridTransform` (JSON beside the volume), and masks go through the
  same transform, so they land on the same grid as the image.
- Image interpolation: linear by default (no overshoot, unlike cubic, at the sharp
  air/tissue edges that matter for small nodules); ``nearest`` and ``cubic`` selectable.
- Mask interpolation: linear then threshold at 0.5 by default (a partial-volume vote that
  neither grows nor shrinks a mask on average), or ``nearest``.
- Outside the scan (in-plane padding): air, ``pad_hu`` = -1024 HU; along z, edge slices
  extend by at most half an output voxel.
- Slices that are not evenly spaced (lidcseg.data.dicom.geometry): the output grid
  is planned from the first slice and the usual spacing as for any scan, and each output
  slice interpolates between the two real slices around its z (``GridTransform.source_z``),
  image and mask alike. A 0.5 mm shift or a missing slice is then a matter of interpolation
  weights, never a slice placed by its index under the wrong z.

Linear and nearest run as separable 1-D steps, slice by slice, that only compute the output
voxels kept after the crop: many times faster than ``scipy.ndimage.zoom`` (benchmarks/).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from lidcseg.config import ResampleConfig
from lidcseg.core import budget
from lidcseg.core.records import read_grid
from lidcseg.data.dicom.geometry import index_at, is_regular
from lidcseg.errors import LidcsegError, ScanError
from lidcseg.io import (
    Volume,
    load_nifti,
    output_group,
    save_nifti,
    slice_positions_beside,
    write_json,
)

IMAGE_METHODS = ("linear", "nearest", "cubic")
MASK_METHODS = ("linear", "nearest")


@dataclass(frozen=True)
class GridTransform:
    """Output voxel index ``o`` -> input voxel index ``scale * o + offset``, per axis; the
    input's affine index where its slices are unevenly spaced, with ``source_z`` the input
    slice index each output slice really samples (interpolated between the real positions)."""

    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    scale: tuple[float, float, float]
    offset: tuple[float, float, float]
    input_affine: list[list[float]]
    output_affine: list[list[float]]
    source_z: tuple[float, ...] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GridTransform:
        fields = {
            k: tuple(v)
            if k.endswith(("shape", "scale", "offset", "source_z")) and v is not None
            else v
            for k, v in data.items()
        }
        return cls(**fields)

    def source_coordinates(self, axis: int) -> np.ndarray:
        """Continuous input indices sampled by the output voxels along ``axis``."""
        if axis == 2 and self.source_z is not None:
            return np.asarray(self.source_z, dtype=float)
        return _exact(self.scale[axis] * np.arange(self.output_shape[axis]) + self.offset[axis])


def resampled_length(n: int, scale: float) -> int:
    """Voxels along an axis of ``n`` input voxels after resampling by ``scale`` (out/in spacing)."""
    return max(1, int(round(n / scale)))


def source_index(out_index, scale: float, crop: int = 0):
    """Continuous input index sampled by output voxel ``out_index`` (corner-aligned grid)."""
    return _exact(scale * (np.asarray(out_index) + crop) + 0.5 * scale - 0.5)


def _exact(coordinates):
    """Round to 1e-6 voxel: a sample halfway between two voxels is then exactly halfway in
    float32 and float64 alike, so the 0.5 threshold of mask resampling decides ties the same
    way everywhere (93.50000000000001 would drop a slice that 93.5 keeps)."""
    return np.round(coordinates, 6)


def plan_grid(
    volume: Volume,
    spacing: tuple[float, float, float],
    size_xy: tuple[int, int],
    where="the resampled grid",
    copies: int = 1,
) -> GridTransform:
    """The transform to ``spacing`` mm, cropped or padded (centred) to ``size_xy`` in-plane;
    along z by the real slice positions when ``volume.slice_z`` says they are uneven. The
    grid's size comes from the input's spacing and slice positions, so ``copies`` float32
    volumes of it are checked against the memory budget (naming ``where``) before anything
    of its size is made."""
    scale = np.array(spacing, dtype=float) / np.array(volume.spacing)
    z_mm = volume.slice_z
    if z_mm is not None and is_regular(z_mm, volume.spacing[2]):
        z_mm = None  # evenly spaced: the affine says it all, and the grid is as it always was
    n_z = volume.array.shape[2] if z_mm is None else (z_mm[-1] - z_mm[0]) / volume.spacing[2] + 1
    resampled = [resampled_length(n, s) for n, s in zip((*volume.array.shape[:2], n_z), scale)]
    out_shape = (size_xy[0], size_xy[1], resampled[2])
    budget.check(out_shape, np.float32, where, copies)
    crop = [
        (resampled[0] - size_xy[0]) // 2,
        (resampled[1] - size_xy[1]) // 2,
        0,
    ]  # negative = padding
    offset = np.array([source_index(0, s, c) for s, c in zip(scale, crop)])
    step = np.eye(4)
    step[:3, :3] = np.diag(scale)
    step[:3, 3] = offset
    return GridTransform(
        input_shape=tuple(int(n) for n in volume.array.shape),
        output_shape=tuple(int(n) for n in out_shape),
        scale=tuple(float(s) for s in scale),
        offset=tuple(float(o) for o in offset),
        input_affine=volume.affine.tolist(),
        output_affine=(volume.affine @ step).tolist(),
        source_z=None
        if z_mm is None
        else tuple(float(c) for c in real_z_indices(z_mm, volume.spacing[2], spacing[2])),
    )


def real_z_indices(z_mm, spacing: float, target: float) -> np.ndarray:
    """Input slice index sampled by each output slice of ``target`` mm along an unevenly
    spaced stack (real positions ``z_mm``, usual ``spacing``): the output slice's z, on the
    grid that starts half a usual slice below the first real slice, located between the two
    real slices around it. archive-flow counts the database's slices with this same grid."""
    z_mm = np.asarray(z_mm, dtype=float)
    scale = target / spacing
    n_out = resampled_length((z_mm[-1] - z_mm[0]) / spacing + 1, scale)
    z_out = z_mm[0] + spacing * (scale * np.arange(n_out) + source_index(0, scale))
    return _exact(index_at(z_out, z_mm, spacing))


def resample_image(volume: Volume, grid: GridTransform, method: str, pad_hu: int) -> Volume:
    """Resample an HU volume onto ``grid``; returns int16 HU."""
    _check_grid(volume, grid)
    if method == "cubic":
        values = _resample_spline(volume.array, grid, order=3, pad=pad_hu)
        hu = np.clip(np.rint(values), -32768, 32767).astype(np.int16)
    elif method in ("linear", "nearest"):
        hu = _resample_separable(volume.array, grid, method, pad=pad_hu, dtype=np.int16)
    else:
        raise ValueError(f"unknown image interpolation '{method}' (one of {IMAGE_METHODS})")
    return Volume(hu, np.array(grid.output_affine))


def resample_mask(mask: Volume, grid: GridTransform, method: str) -> Volume:
    """Resample a label mask (0 = background, n = object n) onto the image's ``grid``.
    ``nearest`` copies labels; ``linear`` interpolates the foreground (label > 0) and keeps
    it where >= 0.5, each kept voxel taking the label nearest to it."""
    _check_grid(mask, grid)
    labels = _resample_separable(mask.array, grid, "nearest", pad=0, dtype=mask.array.dtype)
    if method == "linear":
        foreground = (
            _resample_separable((mask.array > 0).astype(np.float32), grid, "linear", pad=0) >= 0.5
        )
        missing = foreground & (labels == 0)
        if missing.any():  # rim voxels the nearest sample put in the background
            labels[missing] = ndimage.grey_dilation(labels, size=3)[missing]
        labels[~foreground] = 0
    elif method != "nearest":
        raise ValueError(f"unknown mask interpolation '{method}' (one of {MASK_METHODS})")
    return Volume(labels, np.array(grid.output_affine))


def resample_to_files(
    in_nifti, out_nifti, settings: ResampleConfig, masks=(), grid_json=None, transform_json=None
) -> GridTransform:
    """`lidcseg resample`: the HU volume (and each ``(mask_in, mask_out)`` label mask) onto the
    grid planned from ``settings`` (or recorded in ``grid_json``); the transform is written to
    ``transform_json`` so the readers' masks and the figures can follow a pixel back."""
    volume = load_nifti(in_nifti, budget.check)
    volume.slice_z = slice_positions_beside(
        in_nifti, volume.array.shape[2]
    )  # convert's record, if any
    # the outputs (the image, each mask with its float32 foreground) before any is computed
    copies = 1 + 2 * len(masks)
    if grid_json:
        grid = GridTransform.from_dict(read_grid(grid_json))
        budget.check(grid.output_shape, np.float32, grid_json, copies)
    else:
        grid = plan_grid(volume, settings.spacing_mm, settings.image_size, in_nifti, copies)
    # Every output is computed before any is written: a mask that does not fit leaves nothing.
    outputs = [
        (
            _on_grid(
                resample_image,
                volume,
                in_nifti,
                grid,
                settings.image_interpolation,
                settings.pad_hu,
            ),
            out_nifti,
        )
    ]
    for mask_in, mask_out in masks:
        outputs.append(
            (
                _on_grid(
                    resample_mask,
                    load_nifti(mask_in, budget.check),
                    mask_in,
                    grid,
                    settings.mask_interpolation,
                ),
                mask_out,
            )
        )
    with output_group():  # and all appear together
        for resampled, path in outputs:
            save_nifti(resampled, path)
        if transform_json:
            write_json(grid.to_dict(), transform_json)
    return grid


def _on_grid(resample, volume: Volume, path, grid: GridTransform, *how) -> Volume:
    try:
        return resample(volume, grid, *how)
    except GridMismatch as exc:
        raise ScanError(path, str(exc)) from None


class GridMismatch(LidcsegError, ValueError):
    """A volume that is not the shape the grid was planned for."""


def _check_grid(volume: Volume, grid: GridTransform) -> None:
    if tuple(volume.array.shape) != tuple(grid.input_shape):
        raise GridMismatch(
            f"volume shape {volume.array.shape} is not the grid's input {grid.input_shape}"
        )


def _resample_separable(
    array: np.ndarray, grid: GridTransform, method: str, pad: float, dtype=np.float32
) -> np.ndarray:
    """Separable interpolation, one output slice at a time: blend the one or two input
    slices it falls between (z), then rows (y), then columns (x). Each step works on one
    slice (about 1 MB), which stays in cache; slices are spread over the machine's cores
    (numpy releases the GIL inside its loops)."""
    data = np.asarray(array).transpose(2, 1, 0)  # view as [z, y, x]; C-contiguous for our NIfTIs
    z_taps = interpolation_taps(grid.source_coordinates(2), data.shape[0], method)
    y_taps = interpolation_taps(grid.source_coordinates(1), data.shape[1], method)
    x_taps = interpolation_taps(grid.source_coordinates(0), data.shape[2], method)
    out = np.empty(grid.output_shape[::-1], dtype=dtype)
    integer = np.issubdtype(dtype, np.integer)

    def one_slice(k: int) -> None:
        lower, upper, weight, _ = (t[k] for t in z_taps)
        plane = _blend(data[lower], data[upper], weight)
        plane = _blend_along(plane, y_taps, axis=0, pad=pad)
        plane = _blend_along(plane, x_taps, axis=1, pad=pad)
        if integer:  # round here, while the slice is still in cache
            limits = np.iinfo(dtype)
            np.clip(np.rint(plane, out=plane), limits.min, limits.max, out=plane)
        out[k] = plane

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(one_slice, range(out.shape[0])))
    return out.transpose(2, 1, 0)


def interpolation_taps(coords: np.ndarray, n: int, method: str):
    """Per output sample: the two input indices around it, the weight of the upper one, and
    whether it lies more than half a voxel outside the input (then it is padding)."""
    if method == "nearest":
        lower = np.clip(np.rint(coords), 0, n - 1).astype(np.intp)
        weight = np.zeros(len(coords), dtype=np.float32)
    else:
        lower = np.clip(np.floor(coords), 0, n - 1).astype(np.intp)
        weight = np.clip(coords - lower, 0.0, 1.0).astype(np.float32)
    upper = np.minimum(lower + 1, n - 1)
    outside = (coords < -0.5) | (coords > n - 0.5)
    return lower, upper, weight, outside


def _blend(a: np.ndarray, b: np.ndarray, weight) -> np.ndarray:
    """(1 - w) * a + w * b in float32, skipping b when w is 0 everywhere (nearest)."""
    result = a.astype(np.float32)
    if np.any(weight):
        result += weight * (b.astype(np.float32) - result)
    return result


def _blend_along(plane: np.ndarray, taps, axis: int, pad: float) -> np.ndarray:
    lower, upper, weight, outside = taps
    shape = (-1, 1) if axis == 0 else (1, -1)
    result = _blend(
        np.take(plane, lower, axis=axis), np.take(plane, upper, axis=axis), weight.reshape(shape)
    )
    if outside.any():
        if axis == 0:
            result[outside, :] = pad
        else:
            result[:, outside] = pad
    return result


def _resample_spline(array: np.ndarray, grid: GridTransform, order: int, pad: float) -> np.ndarray:
    data = np.asarray(array, dtype=np.float32)
    if grid.source_z is not None:
        return _resample_spline_uneven(data, grid, order, pad)
    return ndimage.affine_transform(
        data,
        np.array(grid.scale),
        offset=np.array(grid.offset),
        output_shape=grid.output_shape,
        order=order,
        mode="nearest" if pad is None else "constant",
        cval=pad,
    )


def _resample_spline_uneven(
    data: np.ndarray, grid: GridTransform, order: int, pad: float
) -> np.ndarray:
    """The spline of ``affine_transform`` (prefiltered once, as it does), sampled one output
    slice at a time at the recorded z indices: a full 3-D coordinate array would take GBs."""
    coefficients = ndimage.spline_filter(data, order=order, output=np.float32, mode="constant")
    x, y = (grid.source_coordinates(axis) for axis in (0, 1))
    xx, yy = np.meshgrid(x, y, indexing="ij")
    out = np.empty(grid.output_shape, dtype=np.float32)
    for k, z in enumerate(grid.source_coordinates(2)):
        points = np.stack([xx, yy, np.full_like(xx, z)])
        out[:, :, k] = ndimage.map_coordinates(
            coefficients, points, order=order, mode="constant", cval=pad, prefilter=False
        )
    return out
