"""Seconds per scan for convert + resample, beside the bare read and a naive baseline.

    python benchmarks/convert_resample.py [--patient LIDC-IDRI-0002] [--repeats 3]

Synthesizes one full-size series (default LIDC-IDRI-0002: 512 x 512, 261 slices of
1.25 mm, as in the real archive), then times, in the same run:
  bare read   reading every byte of the series' files (nothing parsed)
  lidcseg     read_series (DICOM -> HU) + plan_grid + resample_image, in memory
  + write     the same plus writing both NIfTI files, as the workflow's two rules do
  naive       pylidc Scan.to_volume() then scipy.ndimage.zoom (default order 3)
each with a warm page cache and a cold one (pages dropped with posix_fadvise after a
sync; the script says when the file system ignored that). Medians of --repeats runs.
Prints figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from lidcseg import config
from lidcseg.data.dicom.series import read_series
from lidcseg.data.lidc.database import scan_for_patient, set_dicom_root
from lidcseg.data.resample import plan_grid, resample_image
from lidcseg.data.synthetic.synthesize import synthesize_patient
from lidcseg.io import save_nifti

# The embedded default's settings: the paper's grid (0.68 x 0.68 x 2.0 mm, 512 x 512).
DEFAULTS = config.load(Path(__file__).resolve().parents[1] / "config.yaml")
SPACING = DEFAULTS.resample.spacing_mm
SIZE = DEFAULTS.resample.image_size


def _resampled(volume):
    """The image on the paper's grid, as the resample rule makes it."""
    grid = plan_grid(volume, SPACING, SIZE)
    return resample_image(
        volume, grid, DEFAULTS.resample.image_interpolation, DEFAULTS.resample.pad_hu
    )


def drop_page_cache(files: list[Path]) -> None:
    os.sync()
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(run, files: list[Path], repeats: int, cold: bool) -> float:
    times = []
    for _ in range(repeats):
        if cold:
            drop_page_cache(files)
        else:
            run()  # warm up the cache (and imports) first
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_read(files):
    return lambda: sum(len(p.read_bytes()) for p in files)


def lidcseg_in_memory(series_dir):
    def run():
        volume, _ = read_series(series_dir, DEFAULTS.convert)
        return _resampled(volume)

    return run


def lidcseg_with_writes(series_dir, out_dir):
    def run():
        volume, _ = read_series(series_dir, DEFAULTS.convert)
        save_nifti(volume, out_dir / "hu.nii.gz")
        save_nifti(_resampled(volume), out_dir / "image.nii.gz")

    return run


def naive(patient_id, root):
    set_dicom_root(root)
    scan = scan_for_patient(patient_id)

    def run():
        volume = scan.to_volume(verbose=False)  # (row, col, slice) HU
        factors = np.array(scan.spacings) / np.array(SPACING)
        return ndimage.zoom(volume, factors)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patient", default="LIDC-IDRI-0002")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-repeats", type=int, default=1, help="the naive baseline is slow")
    parser.add_argument(
        "--workdir", type=Path, help="keep the synthetic series here (default: a temp dir)"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lidcseg-bench-"))
    series_dir = (
        next((workdir / args.patient).glob("*/*"), None)
        if (workdir / args.patient).exists()
        else None
    )
    if series_dir is None:
        start = time.perf_counter()
        series_dir, _ = synthesize_patient(
            args.patient, workdir, 0, DEFAULTS.synthesize.noise_hu, DEFAULTS.synthesize.storage
        )
        print(f"synthesized {args.patient} in {time.perf_counter() - start:.1f} s")
    files = sorted(series_dir.glob("*.dcm"))
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    volume, info = read_series(series_dir, DEFAULTS.convert)
    print(
        f"series: {args.patient} (synthetic), {volume.array.shape[0]} x {volume.array.shape[1]} x "
        f"{info.n_slices} slices, {volume.spacing[0]:.3f} mm pixels, "
        f"{volume.spacing[2]} mm slices, "
        f"{size_mb:.0f} MB in {len(files)} files; {os.cpu_count()} CPUs"
    )

    out_dir = workdir / "out"
    out_dir.mkdir(exist_ok=True)
    cases = [
        ("bare read of the bytes", bare_read(files), args.repeats),
        ("lidcseg convert + resample (in memory)", lidcseg_in_memory(series_dir), args.repeats),
        (
            "lidcseg convert + resample + write both NIfTI",
            lidcseg_with_writes(series_dir, out_dir),
            args.repeats,
        ),
        (
            "naive: pylidc to_volume + ndimage.zoom",
            naive(args.patient, workdir),
            args.naive_repeats,
        ),
    ]
    results = {}
    print(f"\n{'seconds per scan (median)':48s} {'warm cache':>11s} {'cold cache':>11s}")
    for name, run, repeats in cases:
        warm = timed(run, files, repeats, cold=False)
        cold = timed(run, files, repeats, cold=True)
        results[name] = (warm, cold)
        print(f"{name:48s} {warm:10.3f}s {cold:10.3f}s", flush=True)

    bare, ours, naive_time = (results[c[0]] for c in (cases[0], cases[1], cases[3]))
    if bare[1] < 2 * bare[0]:
        print(
            "\nnote: the cold bare read was not slower than the warm one: this file system "
            "ignored the cache drop, so 'cold' figures are warm ones"
        )
    print("\nratios (targets: naive / lidcseg >= 3; lidcseg / bare read <= 3)")
    for label, i in (("warm", 0), ("cold", 1)):
        print(
            f"  {label}: naive / lidcseg = {naive_time[i] / ours[i]:.1f}x; "
            f"lidcseg / bare read = {ours[i] / bare[i]:.1f}x"
        )


if __name__ == "__main__":
    main()
