"""Where and how a training or evaluation job computes: device, threads, determinism, autocast."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

from lidcseg.errors import ConfigError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when present; ``cuda`` on a machine without one is an error, not a
    silent 100x slower run."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "execution.train.device",
            "cuda, but torch sees no CUDA device here (auto uses one when present)",
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool, threads: int) -> None:
    """Seed every generator a job touches; with ``deterministic``, demand bitwise repeatable
    kernels: an op without one raises instead of warning, so a run said to be reproducible
    is (cuBLAS needs its workspace setting before the first call; the U-Net's bilinear
    upsampling is core.upsampling's, which needs no atomics)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # both ways, so that a process running several jobs (a benchmark) gets what each asks
    torch.use_deterministic_algorithms(deterministic, warn_only=False)
    torch.backends.cudnn.benchmark = not deterministic


def autocast(device: torch.device, amp: str):
    """bf16/fp16 autocast on CUDA; CPU runs in float32 (CPU autocast is slower here)."""
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=AUTOCAST_DTYPES[amp])


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def device_name(device: torch.device | str) -> str:
    """``cpu``, or the accelerator's own name (``NVIDIA H200``): what a speed depends on."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return str(device)


def execution_record(
    device: torch.device | str,
    *,
    threads: int,
    amp: str | None = None,
    deterministic: bool | None = None,
    channels_last: bool | None = None,
    workers: int | None = None,
    compile: bool | None = None,
    batch_size: int | None = None,
) -> dict:
    """The execution settings a job actually ran with, as saved beside its results (model
    file, train.json, metrics file): the device by name, then each setting the job has
    (training: workers and compile; evaluation: its batch size); a setting it has not is
    left out rather than written as null."""
    settings = {
        "threads": threads,
        "workers": workers,
        "batch_size": batch_size,
        "compile": compile,
        "deterministic": deterministic,
        "channels_last": channels_last,
        "amp": amp,
    }
    return {"device": device_name(device), **{k: v for k, v in settings.items() if v is not None}}
