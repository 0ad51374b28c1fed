"""Test-set evaluation of one trained model (docs/paper.md, "Evaluation", eqs. 17-19).

Headline: pooled DSC, recall and precision (TP, FP, FN summed over every test slice; how the
paper's numbers relate), with 95 % bootstrap intervals that resample patients. Beside it:
the per-image means, per-nodule figures and a table by nodule diameter (the paper's claim is
about small nodules).

Per nodule: a nodule's TP and FN are its own consensus pixels, predicted or missed, on every
test slice it appears on; its FP are the predicted pixels outside every nodule that belong
to a predicted region (8-connected, per slice) overlapping it most. Predicted regions that
touch no nodule count in the pooled figures only. A nodule is detected when any of its
pixels is predicted.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from lidcseg.config import EvaluateConfig, TrainConfig
from lidcseg.core.logits import predict_logits
from lidcseg.core.metrics import bootstrap_pooled, confusion, per_image_mean, pooled, scores
from lidcseg.core.metrics_file import Evaluation, MetricsFile, MetricsFileError
from lidcseg.core.records import NODULE_TABLE, check_rows
from lidcseg.core.runtime import execution_record, memory_format, pick_device, seed_everything
from lidcseg.core.sizes import size_label, size_labels
from lidcseg.data.dataset.packed import PackedSplit
from lidcseg.io import read_rows
from lidcseg.models.loading import load_model

EIGHT_CONNECTED = np.ones((3, 3), bool)


def nodule_counts(prediction: np.ndarray, ids: np.ndarray) -> dict[int, np.ndarray]:
    """(TP, FP, FN) of each nodule id on one slice (see the module docstring)."""
    regions, _ = ndimage.label(prediction, structure=EIGHT_CONNECTED)
    counts = {}
    for nodule in np.unique(ids[ids > 0]):
        inside = ids == nodule
        counts[int(nodule)] = np.array(
            [(prediction & inside).sum(), 0, (~prediction & inside).sum()], np.int64
        )
    hit = (regions > 0) & (ids > 0)
    for region in np.unique(regions[hit]):
        overlap = np.bincount(ids[hit & (regions == region)], minlength=256)
        owner = int(np.argmax(overlap))
        counts[owner][1] += int(((regions == region) & (ids == 0)).sum())
    return counts


def evaluate_model(
    model_path: Path,
    packed_dir: Path,
    nodule_tables: list[Path],
    out_json: Path,
    train: TrainConfig,
    settings: EvaluateConfig,
    batch_size: int,
) -> MetricsFile:
    """Predict the test split (``batch_size`` slices at a time: execution.evaluate), score it,
    write ``<out>.json``, ``.images.csv``, ``.nodules.csv`` and ``.predictions.npz``
    (probabilities x 255 as uint8, for the figure)."""
    seed_everything(0, train.deterministic, train.threads)
    device = pick_device(train.device)
    model, saved = load_model(model_path, device)
    model = model.to(memory_format=memory_format(train.channels_last))
    test = PackedSplit(packed_dir, "test")
    cut = math.log(settings.threshold / (1 - settings.threshold))

    def predictions():
        for which, logits in predict_logits(
            model,
            test,
            saved.image_scale,
            batch_size,
            device,
            train.amp,
            train.channels_last,
        ):
            logits = logits.cpu()
            yield which, torch.sigmoid(logits).numpy(), logits.numpy() >= cut

    identity = dict(variant=saved.variant, slots=saved.slots, seed=saved.seed, epoch=saved.epoch)
    execution = execution_record(
        device,
        threads=train.threads,
        batch_size=batch_size,
        deterministic=train.deterministic,
        channels_last=train.channels_last,
        amp=train.amp,
    )
    return _score(
        predictions(), identity, execution, model_path, test, nodule_tables, out_json, settings
    )


def evaluate_predictions(
    predictions_dir: Path,
    packed_dir: Path,
    nodule_tables: list[Path],
    out_json: Path,
    settings: EvaluateConfig,
    name: str | None = None,
) -> MetricsFile:
    """Score a folder of predicted label images made elsewhere (nnU-Net's ``<case>.png``, one
    per test slice; see data/dataset/nnunet.py) exactly as a model of ours is scored."""
    from lidcseg.data.dataset.nnunet import case_id, read_prediction

    test = PackedSplit(packed_dir, "test")
    shape = test.images.shape[1:]

    def predictions():
        for index, row in enumerate(test.rows):
            predicted = read_prediction(Path(predictions_dir) / f"{case_id(row)}.png", shape)[None]
            yield slice(index, index + 1), predicted.astype(np.float32), predicted

    identity = dict(variant=name or Path(predictions_dir).name, slots={}, seed=0, epoch=None)
    # no model runs here: the job only counts, on the CPU
    execution = execution_record("cpu", threads=torch.get_num_threads())
    return _score(
        predictions(), identity, execution, predictions_dir, test, nodule_tables, out_json, settings
    )


def _score(
    predictions,
    identity: dict,
    execution: dict,
    source: Path,
    test: PackedSplit,
    nodule_tables: list[Path],
    out_json: Path,
    settings: EvaluateConfig,
) -> MetricsFile:
    """Count every (which slices, probability, predicted) batch; write and return the result.
    ``identity``: variant, slots, seed and epoch of the metrics file."""
    diameters = _diameters(nodule_tables)
    probability = np.zeros(test.images.shape, np.uint8)
    image_counts, per_nodule = [], {}
    for which, probabilities, predicted in predictions:
        probability[which] = np.rint(probabilities * 255).astype(np.uint8)
        ids = np.asarray(test.masks[which])
        image_counts.append(confusion(predicted, ids > 0))
        for row, p, i in zip(test.rows[which], predicted, ids):
            for nodule, c in nodule_counts(p, i).items():
                entry = per_nodule.setdefault(
                    (row["patient_id"], nodule), {"counts": np.zeros(3, np.int64), "slices": 0}
                )
                entry["counts"] += c
                entry["slices"] += 1
    counts = np.concatenate(image_counts) if image_counts else np.zeros((0, 3), np.int64)
    nodules = _nodule_rows(per_nodule, diameters, settings.size_bins_mm, source)
    result = _summary(identity, execution, source, test, counts, nodules, settings)
    _write(out_json, result, test, counts, nodules, probability)
    return result


def _diameters(tables: list[Path]) -> dict[tuple[str, int], float]:
    diameters = {}
    for table in tables:
        for row in check_rows(read_rows(table), table, NODULE_TABLE):
            diameters[(row["patient_id"], int(row["nodule"]))] = float(row["diameter_mm"])
    return diameters


def _nodule_rows(per_nodule: dict, diameters: dict, edges, model_path) -> list[dict]:
    rows = []
    for (patient, nodule), entry in sorted(per_nodule.items()):
        if (patient, nodule) not in diameters:
            raise MetricsFileError(
                f"test nodule {nodule} of {patient} is in none of the nodule tables given"
            )
        tp, fp, fn = (int(v) for v in entry["counts"])
        d = diameters[(patient, nodule)]
        rows.append(
            {
                "patient_id": patient,
                "nodule": nodule,
                "diameter_mm": d,
                "size": size_label(d, edges),
                "slices": entry["slices"],
                "tp": tp,
                "fp": fp,
                "fn": fn,
                **{k: float(v) for k, v in scores(entry["counts"]).items()},
                "detected": int(tp > 0),
            }
        )
    return rows


def _summary(
    identity: dict,
    execution: dict,
    model_path: Path,
    test: PackedSplit,
    counts: np.ndarray,
    nodules: list[dict],
    settings: EvaluateConfig,
) -> MetricsFile:
    patients = [r["patient_id"] for r in test.rows]
    boot = dict(
        n_resamples=settings.bootstrap_resamples, level=settings.confidence, seed=identity["seed"]
    )
    totals = counts.sum(0) if len(counts) else np.zeros(3, np.int64)
    return MetricsFile(
        **identity,
        model=str(model_path),
        threshold=settings.threshold,
        test={"slices": len(test), "patients": len(set(patients)), "nodules": len(nodules)},
        pooled={
            **pooled(counts),
            "tp": int(totals[0]),
            "fp": int(totals[1]),
            "fn": int(totals[2]),
        },
        pooled_ci=bootstrap_pooled(counts, patients, **boot) if len(counts) else {},
        per_image_mean=per_image_mean(counts),
        slices_without_prediction=int(((counts[:, 0] + counts[:, 1]) == 0).sum())
        if len(counts)
        else 0,
        per_nodule={
            "nodules": len(nodules),
            "detected": sum(r["detected"] for r in nodules),
            "mean_dsc": float(np.mean([r["dsc"] for r in nodules])) if nodules else float("nan"),
        },
        by_size=_by_size(nodules, settings, boot),
        bootstrap={
            "resamples": settings.bootstrap_resamples,
            "confidence": settings.confidence,
            "unit": "patient",
        },
        execution=execution,
    )


def _by_size(nodules: list[dict], settings: EvaluateConfig, boot: dict) -> list[dict]:
    table = []
    for label in size_labels(settings.size_bins_mm):
        group = [r for r in nodules if r["size"] == label]
        counts = np.array([[r["tp"], r["fp"], r["fn"]] for r in group], np.int64).reshape(-1, 3)
        row = {
            "size": label,
            "nodules": len(group),
            "detected": sum(r["detected"] for r in group),
            **pooled(counts),
        }
        if group:
            row["dsc_ci"] = bootstrap_pooled(counts, [r["patient_id"] for r in group], **boot)[
                "dsc"
            ]
        table.append(row)
    return table


def _write(
    out_json: Path,
    result: MetricsFile,
    test: PackedSplit,
    counts: np.ndarray,
    nodules: list[dict],
    probability: np.ndarray,
) -> None:
    per_image = scores(counts)
    images = [
        {
            **{k: row[k] for k in ("patient_id", "slice", "nodules", "diameter_mm")},
            "tp": int(c[0]),
            "fp": int(c[1]),
            "fn": int(c[2]),
            **{k: float(v[i]) for k, v in per_image.items()},
        }
        for i, (row, c) in enumerate(zip(test.rows, counts))
    ]
    Evaluation(
        result,
        images,
        nodules,
        probability,
        patient_id=np.array([r["patient_id"] for r in test.rows]),
        slice=np.array([int(r["slice"]) for r in test.rows]),
    ).save(out_json)
