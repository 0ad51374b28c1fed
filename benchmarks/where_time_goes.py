"""Where a training step's time goes: a torch.profiler table by kernel family, and the
micro-benchmarks behind the step's design choices. benchmarks/gpu_check.py runs them.

- ``profile_step``: two ``TrainingStep`` calls under ``torch.profiler``; every kernel's self
  time (device time on CUDA, CPU time on the CPU) summed by family (``FAMILIES``: conv,
  batch norm, elementwise, reduction, upsampling, index/sort, copy, matmul, other).
- ``upsampling_forms``: forward + backward of the decoder's x2 upsampling at the stem skip's
  size, ``F.interpolate`` against core.upsampling's slices-and-lerps, with and without
  ``torch.use_deterministic_algorithms``: whether the exact x2 should be used in every mode
  (it is) or only under ``deterministic: true``.
- ``fusion_forms``: forward + backward of the RB fusion as eq. (9) writes it (a 2C
  concatenation) and rewritten without it (``forward_without_concat``).
"""

from __future__ import annotations

import re
import time

import torch
import torch.nn.functional as F

from lidcseg.core.runtime import autocast
from lidcseg.core.upsampling import upsample_x2
from lidcseg.models.blocks.rbcbam import ReverseBoundaryFusion

# First match wins: batch norm before conv (cuDNN's batch-norm kernels say "cudnn"), upsampling
# and index/sort before reduction and copy (their kernels say "reduce" or "copy" inside).
FAMILIES = (
    ("batch norm", r"batch_norm|batchnorm|bn_fw|bn_bw|\bbn_|welford"),
    ("upsampling", r"upsample|interpolat|grid_sampler|affine_grid"),
    ("index/sort", r"index|sort|scatter|gather|radix|nonzero|embedding"),
    ("conv", r"conv|fprop|dgrad|wgrad|implicit_gemm|winograd|xmma|cudnn"),
    ("matmul", r"gemm|matmul|\bmm\b|bmm|addmm|cublas|cutlass"),
    ("reduction", r"reduce|sum|mean|amax|max|min|norm|softmax|pool"),
    ("copy", r"copy|memcpy|memset|\bcat\b|cat_|stack|contiguous|clone|to_copy|fill"),
    (
        "elementwise",
        r"elementwise|add|mul|div|sub|sigmoid|relu|threshold|lerp|clamp|where|foreach|"
        r"log|abs|neg|pow|sqrt|binary_cross|::(exp|lt|gt|ge|le|eq|ne)_?$",
    ),
)


def family_of(kernel_name: str) -> str:
    name = kernel_name.lower()
    return next((family for family, pattern in FAMILIES if re.search(pattern, name)), "other")


def profile_step(step, batch, device: torch.device, steps: int = 2) -> dict:
    """Self time (ms per step) by kernel family over ``steps`` calls of ``step`` (warmed up
    by the caller), and the ten costliest kernels."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step(batch, 1e-4)
        if device.type == "cuda":
            torch.cuda.synchronize()
    by_family, by_kernel = {}, {}
    for event in prof.key_averages():
        micros = _self_time(event, device)
        if micros <= 0 or (device.type != "cuda" and not event.key.startswith("aten::")):
            continue  # on the CPU the aten ops are the kernels; Python frames would count twice
        family = family_of(event.key)
        by_family[family] = by_family.get(family, 0.0) + micros / 1000 / steps
        by_kernel[event.key] = micros / 1000 / steps
    total = sum(by_family.values())
    top = sorted(by_kernel.items(), key=lambda kv: -kv[1])[:10]
    return {
        "ms_per_step": round(total, 2),
        "families": {
            k: {"ms": round(v, 2), "share": round(v / total, 3)}
            for k, v in sorted(by_family.items(), key=lambda kv: -kv[1])
        },
        "top_kernels": [
            {"name": k[:120], "ms": round(v, 2), "family": family_of(k)} for k, v in top
        ],
    }


def _self_time(event, device: torch.device) -> float:
    if device.type == "cuda":
        return getattr(event, "self_device_time_total", None) or getattr(
            event, "self_cuda_time_total", 0.0
        )
    return event.self_cpu_time_total


def family_table(name: str, profiled: dict) -> str:
    lines = [f"{name}: {profiled['ms_per_step']} ms of kernels per step", "| family | ms | share |"]
    lines.append("|---|---:|---:|")
    for family, row in profiled["families"].items():
        lines.append(f"| {family} | {row['ms']} | {row['share']:.1%} |")
    return "\n".join(lines)


def _time_forward_backward(fn, inputs, device, repeats: int) -> float:
    """Milliseconds per forward + backward of ``fn(*inputs)`` (after two warm-up calls)."""

    def once():
        out = fn(*inputs)
        out.float().square().mean().backward()

    for _ in range(2):
        once()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        once()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1000


def upsampling_forms(shape, device: torch.device, amp: str, repeats: int = 10) -> dict:
    """ms per forward + backward of the x2 upsampling of a feature of ``shape``, both forms,
    with deterministic algorithms off and on (the bilinear kernel's backward is a sort-based
    decomposition when on)."""
    dtype = torch.bfloat16 if device.type == "cuda" and amp == "bf16" else torch.float32
    x = torch.randn(shape, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    size = (2 * shape[2], 2 * shape[3])
    forms = {
        "interpolate": lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False),
        "x2_slices": upsample_x2,
    }
    before = torch.are_deterministic_algorithms_enabled()
    result = {"shape": list(shape), "dtype": str(dtype)}
    try:
        for deterministic in (False, True):
            torch.use_deterministic_algorithms(deterministic, warn_only=True)
            for name, fn in forms.items():
                key = f"{name}{'_deterministic' if deterministic else ''}_ms"
                result[key] = round(_time_forward_backward(fn, (x,), device, repeats), 3)
    finally:
        torch.use_deterministic_algorithms(before)
    return result


def fusion_forms(shape, device: torch.device, amp: str, repeats: int = 10) -> dict:
    """ms per forward + backward of the RB fusion on a feature of ``shape``: eq. (9)'s
    concatenation and the rewrite without it (tests/models/test_blocks.py: the same values)."""
    block = ReverseBoundaryFusion(
        shape[1], boundary_formula="uncertainty", boundary_residual=True
    ).to(device, memory_format=torch.channels_last)
    x = torch.randn(shape, device=device).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    probability = torch.rand(shape[0], 1, *shape[2:], device=device)
    result = {"shape": list(shape)}
    for name, fn in (("concat", block.forward), ("without_concat", block.forward_without_concat)):

        def run(x, p, fn=fn):
            with autocast(device, amp):
                return fn(x, p)

        result[f"{name}_ms"] = round(
            _time_forward_backward(run, (x, probability), device, repeats), 3
        )
    return result
