"""Resampling: physical extent, mean intensity, agreement with scipy, masks on the same grid."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lidcseg.data.resample import GridTransform, plan_grid, resample_image, resample_mask
from lidcseg.io import Volume
from tests.support.defaults import DEFAULTS


def _volume(shape=(96, 80, 40), spacing=(0.8, 0.8, 1.25), seed=0) -> Volume:
    """A smooth random HU field (no padding), so means are comparable across grids."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 4)
    hu = (field / field.std() * 300 - 400).astype(np.int16)
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [120.0, 90.0, -200.0]
    return Volume(hu, affine)


def _world(affine, index) -> np.ndarray:
    return (np.asarray(affine) @ np.append(index, 1.0))[:3]


@pytest.mark.parametrize(
    "shape, spacing, target, size",
    [
        ((96, 80, 40), (0.8, 0.8, 1.25), (0.68, 0.68, 2.0), None),  # no crop: extent kept
        ((64, 64, 31), (0.7, 0.7, 2.5), (0.68, 0.68, 2.0), None),
        ((50, 70, 12), (0.6, 0.6, 3.0), (1.0, 1.0, 2.0), None),
    ],
)
def test_physical_extent_is_preserved(shape, spacing, target, size):
    volume = _volume(shape, spacing)
    n_xy = [round(n * s / t) for n, s, t in zip(shape[:2], spacing[:2], target[:2])]
    grid = plan_grid(volume, target, tuple(n_xy))
    out = resample_image(
        volume, grid, DEFAULTS.resample.image_interpolation, DEFAULTS.resample.pad_hu
    )
    assert out.spacing == pytest.approx(target)
    for axis in range(3):  # extent within one output voxel of the input's
        assert abs(out.extent_mm[axis] - volume.extent_mm[axis]) <= target[axis] / 2 + 1e-6
    # the outer corner of voxel 0 stays where it was
    corner_in = _world(volume.affine, [-0.5, -0.5, -0.5])
    corner_out = _world(out.affine, [-0.5, -0.5, -0.5])
    np.testing.assert_allclose(corner_in, corner_out, atol=max(target) / 2)


def test_mean_intensity_is_preserved():
    volume = _volume()
    grid = plan_grid(volume, (0.68, 0.68, 2.0), (113, 94))
    out = resample_image(
        volume, grid, DEFAULTS.resample.image_interpolation, DEFAULTS.resample.pad_hu
    )
    assert out.array.mean() == pytest.approx(volume.array.mean(), abs=3.0)


def test_linear_matches_scipy_affine_transform():
    volume = _volume()
    grid = plan_grid(volume, (0.68, 0.68, 2.0), (100, 90))
    ours = resample_image(volume, grid, "linear", DEFAULTS.resample.pad_hu).array.astype(float)
    reference = ndimage.affine_transform(
        volume.array.astype(np.float32),
        np.array(grid.scale),
        offset=np.array(grid.offset),
        output_shape=grid.output_shape,
        order=1,
        mode="nearest",
    )
    inner = (slice(2, -2), slice(2, -2), slice(1, -1))
    assert np.abs(ours[inner] - reference[inner]).max() <= 0.5 + 1e-3  # rounding to int16 only


@pytest.mark.parametrize("size", [(64, 64), (160, 150)])
def test_crop_and_pad_are_centred_and_the_affine_follows(size):
    volume = _volume()
    grid = plan_grid(volume, (0.68, 0.68, 2.0), size)
    out = resample_image(volume, grid, DEFAULTS.resample.image_interpolation, -1024)
    assert out.array.shape[:2] == size
    # the input's centre maps to the output's centre (within one output voxel)
    centre_in = _world(volume.affine, (np.array(volume.array.shape) - 1) / 2)
    centre_out = _world(out.affine, (np.array(out.array.shape) - 1) / 2)
    np.testing.assert_allclose(centre_in[:2], centre_out[:2], atol=0.68)
    if size[0] > 113:  # padded: the border is air
        assert (out.array[0] == -1024).all() and (out.array[-1] == -1024).all()


def test_masks_follow_the_image_onto_the_same_grid():
    volume = _volume()
    centre_mm = np.array([30.0, 25.0, 25.0])
    index = np.indices(volume.array.shape).transpose(1, 2, 3, 0)
    sphere = np.linalg.norm(index * np.array(volume.spacing) - centre_mm, axis=-1) <= 8.0
    image = Volume(np.where(sphere, 100, -900).astype(np.int16), volume.affine)
    mask = Volume(sphere.astype(np.uint8), volume.affine)
    grid = plan_grid(image, (0.68, 0.68, 2.0), (120, 100))
    out_image = resample_image(
        image, grid, DEFAULTS.resample.image_interpolation, DEFAULTS.resample.pad_hu
    )
    for method in ("linear", "nearest"):
        out_mask = resample_mask(mask, grid, method)
        np.testing.assert_array_equal(out_mask.affine, out_image.affine)
        bright = out_image.array > -400
        dice = 2 * (bright & (out_mask.array > 0)).sum() / (bright.sum() + out_mask.array.sum())
        assert dice > 0.95, method
        volume_mm3 = out_mask.array.sum() * np.prod(out_mask.spacing)
        assert volume_mm3 == pytest.approx(sphere.sum() * np.prod(volume.spacing), rel=0.08)


def test_grid_transform_round_trips_through_json():
    grid = plan_grid(_volume(), (0.68, 0.68, 2.0), (100, 90))
    again = GridTransform.from_dict(grid.to_dict())
    assert again == grid


def test_cubic_and_nearest_agree_with_linear_roughly():
    volume = _volume()
    grid = plan_grid(volume, (0.68, 0.68, 2.0), (100, 90))
    linear = resample_image(volume, grid, "linear", DEFAULTS.resample.pad_hu).array.astype(float)
    for method in ("cubic", "nearest"):
        other = resample_image(volume, grid, method, DEFAULTS.resample.pad_hu).array.astype(float)
        assert np.abs(other - linear)[2:-2, 2:-2, 1:-1].mean() < 0.1 * volume.array.std(), method
    nearest = resample_image(volume, grid, "nearest", DEFAULTS.resample.pad_hu).array
    assert np.isin(nearest, volume.array).all(), "nearest only copies input values"


def test_volume_of_another_shape_is_refused():
    grid = plan_grid(_volume(), (0.68, 0.68, 2.0), (100, 90))
    with pytest.raises(ValueError, match="not the grid's input"):
        resample_image(
            _volume((40, 40, 10)),
            grid,
            DEFAULTS.resample.image_interpolation,
            DEFAULTS.resample.pad_hu,
        )


def test_label_masks_keep_their_ids_and_linear_foreground():
    volume = _volume((80, 80, 30))
    labels = np.zeros(volume.array.shape, np.uint8)
    labels[10:30, 10:30, 5:15] = 1
    labels[50:60, 40:70, 10:25] = 2
    mask = Volume(labels, volume.affine)
    grid = plan_grid(volume, (0.68, 0.68, 2.0), (90, 90))
    linear = resample_mask(mask, grid, "linear").array
    nearest = resample_mask(mask, grid, "nearest").array
    assert set(np.unique(linear)) == {0, 1, 2} == set(np.unique(nearest))
    binary = resample_mask(
        Volume((labels > 0).astype(np.uint8), volume.affine), grid, "linear"
    ).array
    np.testing.assert_array_equal(linear > 0, binary > 0)
    assert (linear[nearest == 1] != 2).all() and (linear[nearest == 2] != 1).all()


def _uneven(positions, shape_xy=(24, 20)) -> Volume:
    """Slices at ``positions`` (mm) whose value is their z: linear interpolation by real z
    must give every output slice its own z back, exactly."""
    z = np.asarray(positions, dtype=float)
    hu = np.broadcast_to(
        np.rint(z * 8).astype(np.int16), (*shape_xy, len(z))
    ).copy()  # exact: z in 1/8 mm
    spacing = float(np.median(np.diff(z)))
    affine = np.diag([-0.7, -0.7, spacing, 1.0])
    affine[2, 3] = z[0]
    return Volume(hu, affine, slice_z=z)


@pytest.mark.parametrize(
    "positions",
    [
        np.r_[
            np.arange(-300.0, -285, 2.5), np.arange(-284.5, -260, 2.5)
        ],  # 0267's shape: a 0.5 mm shift
        np.r_[
            np.arange(-100.0, -90, 1.25), np.arange(-87.5, -70, 1.25)
        ],  # 0672's shape: one missing slice
    ],
)
def test_uneven_slices_are_interpolated_by_their_real_z(positions):
    volume = _uneven(positions)
    grid = plan_grid(volume, (0.7, 0.7, 2.0), (24, 20))
    assert grid.source_z is not None
    out = resample_image(volume, grid, "linear", -1024)
    out_z = out.affine[2, 3] + out.affine[2, 2] * np.arange(out.array.shape[2])
    inside = (out_z >= positions[0]) & (out_z <= positions[-1])
    np.testing.assert_allclose(
        out.array[3, 3, inside], out_z[inside] * 8, atol=0.51
    )  # rounded to int16
    extent = positions[-1] - positions[0] + volume.spacing[2]
    assert out.array.shape[2] == round(extent / 2.0)


def test_a_mask_goes_through_the_same_real_z_as_the_image():
    positions = np.r_[np.arange(-50.0, -40, 2.5), np.arange(-39.5, -20, 2.5)]
    volume = _uneven(positions)
    labels = Volume(np.zeros(volume.array.shape, np.uint8), volume.affine, slice_z=volume.slice_z)
    labels.array[:, :, (positions > -40) & (positions < -30)] = 1  # the slab -39.5 .. -32.0 mm
    grid = plan_grid(volume, (0.7, 0.7, 2.0), (24, 20))
    mask = resample_mask(labels, grid, "linear")
    out_z = mask.affine[2, 3] + mask.affine[2, 2] * np.arange(mask.array.shape[2])
    kept = out_z[mask.array.any(axis=(0, 1))]
    # >= 0.5 of the blend: from half way between -42.5 and -39.5 to half way between -32 and -29.5
    assert kept.min() >= -41.0 and kept.max() <= -30.75 and len(kept) == 5


def test_uneven_grid_round_trips_through_json_and_cubic_agrees_with_linear():
    volume = _uneven(np.r_[np.arange(-30.0, -20, 1.25), np.arange(-19.0, 0, 1.25)])
    grid = plan_grid(volume, (0.7, 0.7, 2.0), (24, 20))
    assert GridTransform.from_dict(grid.to_dict()) == grid
    cubic = resample_image(volume, grid, "cubic", -1024).array.astype(float)
    linear = resample_image(volume, grid, "linear", -1024).array.astype(float)
    assert (
        np.abs(cubic - linear)[4:-4, 4:-4, 1:-1].max() <= 2
    )  # a linear field: the spline is linear too


def test_even_slices_with_positions_keep_the_grid_they_always_had():
    volume = _volume()
    with_z = Volume(volume.array, volume.affine, slice_z=-200.0 + 1.25 * np.arange(40))
    assert plan_grid(with_z, (0.7, 0.7, 2.0), (64, 64)) == plan_grid(
        volume, (0.7, 0.7, 2.0), (64, 64)
    )
