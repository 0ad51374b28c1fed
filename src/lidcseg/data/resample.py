"""Resample to the paper's spacing and crop/pad to a fixed in-plane size (SPEC.md,
Pre-processing step 2: 0.68 x 0.68 mm in-plane, 2.0 mm slices; 512 x 512 in-plane).

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

Linear and nearest run as three separable 1-D passes that only compute the output voxels
kept after the crop: several times faster than ``scipy.ndimage.zoom``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from lidcseg.data.volume import Volume

IMAGE_METHODS = ("linear", "nearest", "cubic")
MASK_METHODS = ("linear", "nearest")


@dataclass(frozen=True)
class GridTransform:
    """Output voxel index ``o`` -> input voxel index ``scale * o + offset``, per axis."""

    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    scale: tuple[float, float, float]
    offset: tuple[float, float, float]
    input_affine: list[list[float]]
    output_affine: list[list[float]]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GridTransform":
        fields = {k: tuple(v) if k.endswith(("shape", "scale", "offset")) else v for k, v in data.items()}
        return cls(**fields)

    def source_coordinates(self, axis: int) -> np.ndarray:
        """Continuous input indices sampled by the output voxels along ``axis``."""
        return self.scale[axis] * np.arange(self.output_shape[axis]) + self.offset[axis]


def plan_grid(volume: Volume, spacing: tuple[float, float, float], size_xy: tuple[int, int]) -> GridTransform:
    """The transform to ``spacing`` mm, cropped or padded (centred) to ``size_xy`` in-plane."""
    in_spacing = np.array(volume.spacing)
    scale = np.array(spacing, dtype=float) / in_spacing
    resampled = np.maximum(1, np.round(np.array(volume.array.shape) / scale)).astype(int)
    out_shape = np.array([size_xy[0], size_xy[1], resampled[2]])
    crop = (resampled - out_shape) // 2  # negative = padding
    crop[2] = 0
    # corner-aligned: output voxel o covers input [(o + crop) * scale - 0.5, ...]
    offset = scale * crop + 0.5 * scale - 0.5
    step = np.eye(4)
    step[:3, :3] = np.diag(scale)
    step[:3, 3] = offset
    out_affine = volume.affine @ step
    return GridTransform(
        input_shape=tuple(int(n) for n in volume.array.shape),
        output_shape=tuple(int(n) for n in out_shape),
        scale=tuple(float(s) for s in scale),
        offset=tuple(float(o) for o in offset),
        input_affine=volume.affine.tolist(),
        output_affine=out_affine.tolist(),
    )


def resample_image(volume: Volume, grid: GridTransform, method: str = "linear", pad_hu: int = -1024) -> Volume:
    """Resample an HU volume onto ``grid``; returns int16 HU."""
    _check_grid(volume, grid)
    if method == "cubic":
        values = _resample_spline(volume.array, grid, order=3, pad=pad_hu)
    elif method in ("linear", "nearest"):
        values = _resample_separable(volume.array, grid, method, pad=pad_hu)
    else:
        raise ValueError(f"unknown image interpolation '{method}' (one of {IMAGE_METHODS})")
    hu = np.clip(np.rint(values), -32768, 32767).astype(np.int16)
    return Volume(hu, np.array(grid.output_affine))


def resample_mask(mask: Volume, grid: GridTransform, method: str = "linear") -> Volume:
    """Resample a label mask onto the image's ``grid``: nearest label, or (binary masks)
    linear interpolation thresholded at 0.5."""
    _check_grid(mask, grid)
    if method == "nearest":
        labels = _resample_separable(mask.array, grid, "nearest", pad=0)
    elif method == "linear":
        if mask.array.max(initial=0) > 1:
            raise ValueError("linear mask interpolation needs a binary mask; use 'nearest' for labels")
        labels = _resample_separable(mask.array.astype(np.float32), grid, "linear", pad=0) >= 0.5
    else:
        raise ValueError(f"unknown mask interpolation '{method}' (one of {MASK_METHODS})")
    return Volume(labels.astype(np.uint8), np.array(grid.output_affine))


def _check_grid(volume: Volume, grid: GridTransform) -> None:
    if tuple(volume.array.shape) != tuple(grid.input_shape):
        raise ValueError(f"volume shape {volume.array.shape} is not the grid's input {grid.input_shape}")


def _resample_separable(array: np.ndarray, grid: GridTransform, method: str, pad: float) -> np.ndarray:
    """z first (it shrinks the data most for thin-slice scans), then y, then x; each pass
    gathers whole planes or rows, so numpy works on contiguous memory."""
    data = np.asarray(array).transpose(2, 1, 0)  # view as [z, y, x]; C-contiguous for our NIfTIs
    for data_axis, grid_axis in ((0, 2), (1, 1), (2, 0)):
        coords = grid.source_coordinates(grid_axis)
        data = _interpolate_axis(data, coords, data_axis, method, pad if grid_axis < 2 else None)
    return data.transpose(2, 1, 0)


def _interpolate_axis(data: np.ndarray, coords: np.ndarray, axis: int, method: str, pad) -> np.ndarray:
    """1-D interpolation of ``data`` along ``axis`` at continuous indices ``coords``.
    Samples more than half a voxel outside get ``pad`` (or the edge value when pad is None)."""
    n = data.shape[axis]
    if method == "nearest":
        out = np.take(data, np.clip(np.rint(coords), 0, n - 1).astype(np.intp), axis=axis)
    else:
        lower = np.clip(np.floor(coords), 0, n - 1).astype(np.intp)
        upper = np.minimum(lower + 1, n - 1)
        weight = np.clip(coords - lower, 0.0, 1.0).astype(np.float32)
        shape = [1] * data.ndim
        shape[axis] = -1
        weight = weight.reshape(shape)
        out = np.take(data, lower, axis=axis).astype(np.float32)
        out += weight * (np.take(data, upper, axis=axis) - out)
    if pad is not None:
        outside = (coords < -0.5) | (coords > n - 0.5)
        if outside.any():
            index = [slice(None)] * data.ndim
            index[axis] = outside
            out = out.astype(np.result_type(out, np.float32)) if out.dtype.kind != "f" else out
            out[tuple(index)] = pad
    return out


def _resample_spline(array: np.ndarray, grid: GridTransform, order: int, pad: float) -> np.ndarray:
    data = np.asarray(array, dtype=np.float32)
    return ndimage.affine_transform(
        data,
        np.array(grid.scale),
        offset=np.array(grid.offset),
        output_shape=grid.output_shape,
        order=order,
        mode="nearest" if pad is None else "constant",
        cval=pad,
    )
