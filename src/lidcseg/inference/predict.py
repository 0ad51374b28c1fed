"""Segment a new CT scan with trained models: ``lidcseg predict``.

The scan (a DICOM series folder, read with convert's checks, or a NIfTI volume in HU) is
taken through what training saw, using the grid saved in the model file: resampled to the
packed dataset's spacing and in-plane size (``data/resample.py``), lung-windowed
(docs/paper.md, eqs. 15-16) and cut into axial slices. Every slice goes through each model
(batched, on the configured device); the probabilities of several models are averaged, then
mapped back onto the scan's own voxels (trilinear, the inverse of the resampling), so the
outputs open over the source in 3D Slicer or ITK-SNAP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

from lidcseg.config import ConvertConfig, ResampleConfig, TrainConfig
from lidcseg.core import budget
from lidcseg.core.logits import logits_of
from lidcseg.core.runtime import memory_format
from lidcseg.data.dataset.slices import lung_window
from lidcseg.data.resample import GridTransform, plan_grid, resample_image
from lidcseg.errors import LidcsegError, safe_name
from lidcseg.io import Volume, load_nifti
from lidcseg.models.loading import load_model


@dataclass
class Scan:
    patient_id: str
    volume: Volume  # HU on the scan's own grid
    series_dir: Path | None  # the DICOM folder, when the input was one


def scan_name(path: str | os.PathLike) -> str:
    """What names every output of a scan: a DICOM series' PatientID (its first file's header;
    read_series checks the rest agree), else the folder's name, or a NIfTI file's name. Taken
    from data, so checked (errors.safe_name) before a pixel is read: a PatientID such as
    ``../../x`` or ``/tmp/x`` would otherwise write outside the output folder."""
    path = Path(path)
    if path.is_dir():
        from lidcseg.data.dicom.files import series_identity

        header_id = series_identity(path)[0]
        where = f"{path}: {'PatientID' if header_id else 'the folder name'}"
        return safe_name(header_id or path.absolute().name, where)
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    return safe_name(path.name.removesuffix(".gz").removesuffix(".nii"), f"{path}: the file name")


def read_scan(path: str | os.PathLike, convert: ConvertConfig) -> Scan:
    """A DICOM series folder or a NIfTI file, named by :func:`scan_name`."""
    path, name = Path(path), scan_name(path)
    if path.is_dir():
        from lidcseg.data.dicom.series import read_series

        # the folder as given: a patient folder's series.json may list the series' own files
        return Scan(name, read_series(path, convert)[0], path)
    return Scan(name, load_nifti(path, _scan_budget), None)


def _scan_budget(shape, dtype, where, copies: int) -> None:
    """Reading the NIfTI, and what predict then holds on the scan's own grid (the
    probabilities mapped back, float64 then float32, and their int32 components), checked
    from the header, before a voxel is inflated."""
    budget.check(shape, dtype, where, copies)
    budget.check(shape, np.float32, where, copies=4)


@dataclass
class Ensemble:
    """Models that share one input grid; their probabilities are averaged."""

    models: list[torch.nn.Module]
    names: list[str]  # "<variant> seed <k>" of each
    image_scale: float
    spacing_mm: tuple[float, float, float]
    image_shape: tuple[int, int]  # (rows, cols) of a slice
    window: tuple[float, float]  # (centre, width)

    @classmethod
    def load(cls, paths: list[Path], device: torch.device, channels_last: bool) -> Ensemble:
        models, grids, names = [], [], []
        for path in paths:
            model, saved = load_model(path, device)
            names.append(f"{saved.variant} seed {saved.seed}")
            grid = saved.grid
            if not all(grid.get(k) for k in ("spacing_mm", "image_shape", "window")):
                raise LidcsegError(
                    f"{path}: holds no input grid (spacing, size, window): its packed data's "
                    "dataset.json lacks them; rebuild the dataset and retrain it"
                )
            grids.append(
                (
                    tuple(grid["spacing_mm"]),
                    tuple(grid["image_shape"]),
                    tuple(grid["window"]),
                    saved.image_scale,
                )
            )
            models.append(model.to(memory_format=memory_format(channels_last)).eval())
            if grids[-1] != grids[0]:
                raise LidcsegError(
                    f"{path}: its grid {grids[-1]} differs from {paths[0]}'s {grids[0]}; "
                    "models averaged must share one"
                )
        spacing, shape, window, scale = grids[0]
        return cls(models, names, scale, spacing, shape, window)


def probabilities(
    scan: Scan,
    ensemble: Ensemble,
    resample: ResampleConfig,
    train: TrainConfig,
    device: torch.device,
    z_range_mm: tuple[float, float] | None = None,
) -> np.ndarray:
    """Nodule probability per voxel of the scan's own grid, float32 (x, y, z)."""
    rows, cols = ensemble.image_shape
    where = scan.series_dir or scan.patient_id
    # on the scan's grid: the probabilities mapped back (float64, then float32) and their
    # labelled components (int32); on the model's: the resampled image and its probabilities
    budget.check(scan.volume.array.shape, np.float32, where, copies=4)
    grid = plan_grid(scan.volume, ensemble.spacing_mm, (cols, rows), where, copies=2)
    image = resample_image(scan.volume, grid, resample.image_interpolation, resample.pad_hu)
    z_mm = image.affine[2, 3] + np.arange(image.array.shape[2]) * image.affine[2, 2]
    wanted = (
        np.flatnonzero((z_mm >= min(z_range_mm)) & (z_mm <= max(z_range_mm)))
        if z_range_mm
        else np.arange(image.array.shape[2])
    )
    if len(wanted) == 0:  # else every output would be written, empty, and exit 0
        raise LidcsegError(
            f"--z-range {z_range_mm[0]:g} {z_range_mm[1]:g}: holds no slice of {scan.patient_id}, "
            f"whose slices lie from z {z_mm.min():.1f} to {z_mm.max():.1f} mm"
        )
    on_grid = np.zeros(image.array.shape, np.float32)
    bar = tqdm(total=len(wanted), desc=f"{scan.patient_id}: slices", unit="slice", leave=False)
    for start in range(0, len(wanted), train.batch_size):
        which = wanted[start : start + train.batch_size]
        # (x, y) -> (rows = y, columns = x), as extract packs the training slices
        slices = np.stack([lung_window(image.array[:, :, k].T, *ensemble.window) for k in which])
        batch = torch.from_numpy(slices)[:, None].to(device)
        mean = sum(
            torch.sigmoid(
                logits_of(m, batch, ensemble.image_scale, device, train.amp, train.channels_last)
            )
            for m in ensemble.models
        ) / len(ensemble.models)
        on_grid[:, :, which] = mean[:, 0].cpu().numpy().transpose(2, 1, 0)
        bar.update(len(which))
    bar.close()
    return back_to_source(on_grid, grid)


def back_to_source(on_grid: np.ndarray, grid: GridTransform) -> np.ndarray:
    """Resampled values onto the source voxels: the inverse of ``grid`` (input index
    ``scale * o + offset`` <- output index ``o``), trilinear, 0 outside the resampled grid."""
    scale, offset = np.asarray(grid.scale, float), np.asarray(grid.offset, float)
    if (
        grid.source_z is not None
    ):  # unevenly spaced slices: z by the recorded indices, then in-plane
        on_grid = _z_back_to_source(on_grid, np.asarray(grid.source_z, float), grid.input_shape[2])
        scale[2], offset[2] = 1.0, 0.0
    return ndimage.affine_transform(
        on_grid,
        1 / scale,
        offset=-offset / scale,
        output_shape=grid.input_shape,
        order=1,
        mode="constant",
        cval=0.0,
    ).astype(np.float32)


def _z_back_to_source(on_grid: np.ndarray, source_z: np.ndarray, n_in: int) -> np.ndarray:
    """Output slices onto the input slices: input slice k lies between the two output slices
    whose recorded indices bracket k (linear), 0 beyond the grid's first and last slice."""
    position = np.interp(
        np.arange(n_in), source_z, np.arange(len(source_z)), left=-1.0, right=np.inf
    )
    out = np.zeros(on_grid.shape[:2] + (n_in,), dtype=np.float32)
    for k, p in enumerate(position):
        if 0 <= p <= len(source_z) - 1:
            lower = int(np.floor(p))
            upper, weight = min(lower + 1, len(source_z) - 1), p - lower
            out[:, :, k] = (1 - weight) * on_grid[:, :, lower] + weight * on_grid[:, :, upper]
    return out


def nodule_mask(
    probability: np.ndarray,
    spacing: tuple[float, float, float],
    threshold: float,
    min_size_mm3: float,
) -> np.ndarray:
    """Labelled 3-D components (26-connected) of ``probability >= threshold``, those smaller
    than ``min_size_mm3`` removed, numbered from 1 by size (largest first); uint16."""
    labels, n = ndimage.label(probability >= threshold, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return labels.astype(np.uint16)
    sizes = np.bincount(labels.ravel())[1:] * float(np.prod(spacing))
    order = [i + 1 for i in np.argsort(-sizes, kind="stable") if sizes[i] >= min_size_mm3]
    relabel = np.zeros(n + 1, np.uint16)
    relabel[order] = np.arange(1, len(order) + 1)
    return relabel[labels]


def predict_to_files(
    input_path: Path,
    out_dir: Path,
    model_paths: list[Path],
    convert: ConvertConfig,
    resample: ResampleConfig,
    train: TrainConfig,
    threshold: float,
    min_size_mm3: float,
    z_range_mm: tuple[float, float] | None = None,
) -> dict:
    """`lidcseg predict` on one scan: the outputs of ``inference/outputs.py`` in ``out_dir``;
    returns the patient, the paths written and the nodule rows."""
    from lidcseg.core.runtime import pick_device, seed_everything
    from lidcseg.inference.outputs import write_outputs

    if not 0 < threshold < 1:
        raise LidcsegError(f"--threshold {threshold}: must lie between 0 and 1")
    if min_size_mm3 < 0:
        raise LidcsegError(f"--min-size-mm3 {min_size_mm3}: must be 0 or more")
    seed_everything(0, train.deterministic, train.threads)
    device = pick_device(train.device)
    ensemble = Ensemble.load([Path(p) for p in model_paths], device, train.channels_last)
    scan = read_scan(input_path, convert)
    probability = probabilities(scan, ensemble, resample, train, device, z_range_mm)
    labels = nodule_mask(probability, scan.volume.spacing, threshold, min_size_mm3)
    seg_from = (scan.series_dir, " + ".join(ensemble.names)) if scan.series_dir else None
    paths, rows = write_outputs(
        Path(out_dir), scan.patient_id, scan.volume, probability, labels, ensemble.window, seg_from
    )
    return {"patient_id": scan.patient_id, "paths": paths, "nodules": rows}
