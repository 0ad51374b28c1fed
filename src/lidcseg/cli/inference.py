"""`predict`: segment a new CT scan with trained models."""

from __future__ import annotations

from pathlib import Path

from lidcseg.cli.base import (
    at_least_zero,
    command,
    execution_settings,
    finite,
    log,
    probability,
    sections,
)

COMMANDS = ("predict",)


def add_commands(stages) -> None:
    p = command(
        stages,
        "predict",
        run_predict,
        "segment a new CT scan with one or more trained models",
        "Bring INPUT (a DICOM series folder, read with convert's checks, or a NIfTI volume in HU) "
        "to the grid the model was trained on, segment every axial slice (several --model files: "
        "their probabilities averaged) and write to OUT_DIR, on the scan's own geometry: "
        "<patient>.prob.nii.gz, <patient>.mask.nii.gz (nodules numbered by volume), "
        "<patient>.nodules.csv (centroid in DICOM patient mm, volume, longest axial diameter, "
        "maximum probability, slice range) and <patient>.overview.png.",
        settings=("convert", "resample", "train", "evaluate"),
        execution=True,
    )
    p.add_argument("input", type=Path, help="a DICOM series folder or a .nii/.nii.gz volume in HU")
    p.add_argument("out_dir", type=Path)
    p.add_argument(
        "--model",
        type=Path,
        nargs="+",
        required=True,
        help="model.pt of lidcseg train; several are averaged (seeds or variants)",
    )
    p.add_argument(
        "--threshold",
        type=probability,
        help="probability cut (default: the settings' evaluate.threshold)",
    )
    p.add_argument(
        "--min-size-mm3",
        type=at_least_zero,
        help="drop found nodules smaller than this (default: the settings' predict.min_size_mm3)",
    )
    p.add_argument(
        "--z-range",
        type=finite,
        nargs=2,
        metavar=("Z0", "Z1"),
        help="segment only slices between these z positions (mm; the NIfTI's z axis)",
    )


def run_predict(args) -> None:
    from lidcseg.config import TrainRun
    from lidcseg.inference.predict import predict_to_files

    # the predict section only when the option leaves its value to it: the workflow's rule
    # hands the value alone, so that adding an input to predict.inputs reruns no prediction
    convert, resample, train, evaluate, *predict = sections(
        args, *(("predict",) if args.min_size_mm3 is None else ())
    )
    train = TrainRun.of(train, execution_settings(args).train)
    threshold = evaluate.threshold if args.threshold is None else args.threshold
    min_size_mm3 = predict[0].min_size_mm3 if predict else args.min_size_mm3
    result = predict_to_files(
        args.input,
        args.out_dir,
        args.model,
        convert,
        resample,
        train,
        threshold,
        min_size_mm3,
        tuple(args.z_range) if args.z_range else None,
    )
    log.info(
        "predict %s: %d nodule(s) -> %s", result["patient_id"], len(result["nodules"]), args.out_dir
    )
