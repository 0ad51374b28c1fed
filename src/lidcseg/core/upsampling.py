"""Bilinear upsampling that is deterministic on every device, forward and backward.

``F.interpolate(mode="bilinear")`` has no deterministic CUDA backward kernel: under
``torch.use_deterministic_algorithms(True)`` PyTorch swaps in a Python decomposition
(gathers forward, ``index_put(accumulate=True)`` backward, sort-based on CUDA), which more
than triples a U-Net step's memory traffic. The two forms here need neither:

- ``upsample_x2``: every decoder upsampling at an input that is a multiple of 32 is an exact
  x2, and bilinear x2 with ``align_corners=False`` is a fixed stencil along each axis,

      out[2i]     = 0.75 x[i] + 0.25 x[i - 1]
      out[2i + 1] = 0.75 x[i] + 0.25 x[i + 1]      (indices clamped at the edges),

  built from slices and ``lerp``: no index, no atomic, the same values as ``F.interpolate``
  to rounding.
- ``resize_by_matrices``: any size, as two small matrix products ``R_h x R_w^T`` with the
  interpolation matrices of ``F.interpolate(align_corners=False)`` (deterministic on CUDA
  with ``CUBLAS_WORKSPACE_CONFIG``, which ``core.runtime`` sets). Dense, so meant for the
  one-channel side maps and for the odd sizes a non-multiple-of-32 input gives.

``bilinear`` picks the form. Both are used in every mode, so a run's numbers do not depend
on whether ``deterministic`` is on.
"""

from __future__ import annotations

import functools

import torch


def bilinear(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """``x`` (n, c, h, w) at ``size`` (height, width), as ``F.interpolate(x, size,
    mode="bilinear", align_corners=False)`` computes it, deterministically."""
    height, width = int(size[0]), int(size[1])
    if (height, width) == tuple(x.shape[-2:]):
        return x
    if (height, width) == (2 * x.shape[-2], 2 * x.shape[-1]):
        return upsample_x2(x)
    return resize_by_matrices(x, (height, width))


def upsample_x2(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 (``align_corners=False``) of the last two axes, by slices and lerps."""
    return _double(_double(x, -2), -1)


def _double(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Bilinear x2 along ``dim``: each sample becomes 0.75 of itself plus 0.25 of its
    neighbour before (even outputs) or after (odd outputs), the edges repeating."""
    n = x.shape[dim]
    before = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim)
    after = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)
    even, odd = torch.lerp(x, before, 0.25), torch.lerp(x, after, 0.25)
    dim = dim % x.dim()
    return torch.stack([even, odd], dim + 1).flatten(dim, dim + 1)


def resize_by_matrices(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (``align_corners=False``) of the last two axes to ``size`` as
    ``R_h @ x @ R_w^T``."""
    rows = _interpolation_matrix(size[0], x.shape[-2], x.dtype, x.device)
    columns = _interpolation_matrix(size[1], x.shape[-1], x.dtype, x.device)
    return rows @ x @ columns.T


@functools.lru_cache(maxsize=64)
def _interpolation_matrix(
    n_out: int, n_in: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """The (n_out, n_in) matrix of 1-D linear interpolation, ``align_corners=False``: the
    source coordinate of output j is (j + 0.5) n_in / n_out - 0.5, clamped at 0, between
    samples floor and floor + 1 (clamped at the last). Built in float64 on the CPU, cached
    per size, dtype and device (a model meets a handful of sizes)."""
    scale = n_in / n_out
    source = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0)
    low = source.floor().long().clamp(max=n_in - 1)
    high = (low + 1).clamp(max=n_in - 1)
    weight_high = source - low
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    matrix.index_put_((rows, low), 1 - weight_high, accumulate=True)
    matrix.index_put_((rows, high), weight_high, accumulate=True)
    return matrix.to(device=device, dtype=dtype)
