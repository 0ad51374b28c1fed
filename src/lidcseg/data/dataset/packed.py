"""The packed dataset a training job reads: memory-mapped arrays, nothing decoded per sample.

``results/dataset/packed/`` holds, per split, ``<split>.images.npy`` (n, rows, cols)
float16 in [0, 1] (lung window), ``<split>.masks.npy`` (n, rows, cols) uint8 nodule ids and
``<split>.csv`` (one row per slice), and ``dataset.json`` records shapes, spacing, window and
which patients went where: the contract between the data stages and training.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lidcseg.core.records import (
    SLICE_ROWS,
    at_least,
    check_fields,
    listed,
    may_lack,
    numbers,
    optional,
    read_table,
    whole,
)
from lidcseg.errors import LidcsegError
from lidcseg.io import read_json


class PackedSplit:
    """One split: ``images`` and ``masks`` as read-only memory maps, ``rows`` as dicts."""

    def __init__(self, packed_dir: str | os.PathLike, split: str):
        packed_dir = Path(packed_dir)
        self.split = split
        self.images = _memory_map(packed_dir / f"{split}.images.npy")
        self.masks = _memory_map(packed_dir / f"{split}.masks.npy")
        self.rows = read_table(packed_dir / f"{split}.csv", SLICE_ROWS)
        self.meta = read_meta(packed_dir)
        if not (len(self.images) == len(self.masks) == len(self.rows)):
            raise LidcsegError(
                f"{packed_dir}: {split} has {len(self.images)} images, {len(self.masks)} masks "
                f"and {len(self.rows)} rows"
            )
        # each mask is its image's label, pixel for pixel: one of another size would be
        # scored, trained on or exported (nnU-Net's labelsTr) against the wrong pixels
        if self.images.ndim != 3 or self.masks.shape != self.images.shape:
            raise LidcsegError(
                f"{packed_dir / f'{split}.masks.npy'}: masks {self.masks.shape} for images "
                f"{self.images.shape} (both must be (slices, rows, cols), of one size)"
            )

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image float32 in [0, 1], binary mask uint8) of one slice."""
        return np.asarray(self.images[index], dtype=np.float32), (self.masks[index] > 0).astype(
            np.uint8
        )


def input_grid(packed_dir: str | os.PathLike) -> dict:
    """What a model trained on this data expects of a new scan (saved in model.pt for
    `lidcseg predict`): the voxel spacing (x, y, z mm), the slice size (rows, cols) and the
    lung window (centre, width)."""
    meta = read_meta(packed_dir)
    return {k: meta.get(k) for k in ("spacing_mm", "image_shape", "window")}


# dataset.json's grid, None where the packed slices had none (an empty split, say)
META = {
    "spacing_mm": may_lack(optional(numbers(3))),
    "image_shape": may_lack(optional(listed(at_least(whole, 1), 2))),
    "window": may_lack(optional(numbers(2))),
}


def read_meta(packed_dir: str | os.PathLike) -> dict:
    """dataset.json of ``packed_dir``, its grid checked: it becomes a model file's grid."""
    path = Path(packed_dir) / "dataset.json"
    return check_fields(read_json(path), path, META, "the packed dataset's record")


def _memory_map(path: Path) -> np.ndarray:
    """A packed array, read-only and memory-mapped; a cut or foreign file is named."""
    try:
        return np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise
    except (
        ValueError,
        OSError,
        EOFError,
    ) as exc:  # a truncated .npy: "mmap length is greater than file size"
        raise LidcsegError(
            f"{path}: not a readable packed array ({type(exc).__name__}: {exc})"
        ) from None
