"""core.upsampling against F.interpolate(mode="bilinear", align_corners=False), forward and
backward, in float64 (1e-12) and float32 (1e-5, of the values' scale): the exact x2 of the
decoder and the matrix form of the side maps and the loss, at the sizes a U-Net meets and at
odd ones."""

import pytest
import torch
import torch.nn.functional as F

from lidcseg.core.upsampling import bilinear, resize_by_matrices, upsample_x2

TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5}


def _forward_and_backward(upsample, x: torch.Tensor, grad: torch.Tensor):
    x = x.detach().clone().requires_grad_()
    out = upsample(x)
    out.backward(grad)
    return out.detach(), x.grad


def _agrees_with_interpolate(upsample, shape, size, dtype, channels_last=False):
    generator = torch.Generator().manual_seed(sum(shape) + sum(size))
    x = torch.randn(shape, generator=generator, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn((*shape[:2], *size), generator=generator, dtype=dtype)
    reference = _forward_and_backward(
        lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False), x, grad
    )
    ours = _forward_and_backward(upsample, x, grad)
    for name, expected, got in zip(("forward", "backward"), reference, ours):
        assert got.shape == expected.shape, name
        # relative to the values' scale: a gradient summing 32 x 32 outputs is ~30, and
        # float32 rounds it at ~1e-6 of that, whichever way it is summed
        scale = max(1.0, expected.abs().max().item())
        assert (got - expected).abs().max().item() <= TOLERANCE[dtype] * scale, name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 4, 5, 7), (2, 1, 1, 3), (1, 2, 16, 32)])
def test_x2_equals_interpolate(shape, dtype):
    _agrees_with_interpolate(upsample_x2, shape, (2 * shape[2], 2 * shape[3]), dtype)


def test_x2_keeps_channels_last_inputs_exact():
    _agrees_with_interpolate(upsample_x2, (2, 8, 6, 6), (12, 12), torch.float32, True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "shape, size",
    [
        ((2, 1, 16, 16), (512, 512)),  # the deepest side map to the loss's size
        ((2, 1, 8, 8), (64, 64)),
        ((1, 1, 7, 5), (33, 19)),  # odd sizes and ratios
        ((1, 3, 12, 10), (5, 4)),  # downsizing
        ((2, 2, 9, 9), (17, 18)),  # an odd skip (a non-multiple-of-32 input)
    ],
)
def test_matrices_equal_interpolate_at_any_size(shape, size, dtype):
    _agrees_with_interpolate(lambda t: resize_by_matrices(t, size), shape, size, dtype)


@pytest.mark.parametrize(
    "shape, size", [((1, 2, 4, 4), (8, 8)), ((1, 2, 4, 4), (4, 4)), ((1, 1, 4, 6), (9, 13))]
)
def test_bilinear_picks_a_form_with_the_same_values(shape, size):
    _agrees_with_interpolate(lambda t: bilinear(t, size), shape, size, torch.float64)


def test_the_x2_form_is_chosen_for_an_exact_double(monkeypatch):
    """The decoder's upsampling must not fall back to the dense matrices: they are exact
    too, but cost O(n^3) at a feature's size."""
    import lidcseg.core.upsampling as upsampling

    def refuse(*args):
        raise AssertionError("matrix form used for an exact x2")

    monkeypatch.setattr(upsampling, "resize_by_matrices", refuse)
    assert upsampling.bilinear(torch.zeros(1, 8, 16, 16), (32, 32)).shape == (1, 8, 32, 32)


def test_no_op_in_a_deterministic_backward_raises():
    """Under use_deterministic_algorithms(True, warn_only=False) both forms run forward and
    backward (on the CPU; the GPU check does the same on CUDA)."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=False)
    try:
        x = torch.randn(1, 2, 8, 8, requires_grad=True)
        (bilinear(x, (16, 16)).sum() + bilinear(x, (20, 12)).sum()).backward()
    finally:
        torch.use_deterministic_algorithms(before)
    assert torch.isfinite(x.grad).all()
