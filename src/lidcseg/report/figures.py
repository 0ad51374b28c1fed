"""Figure 3 of the paper (docs/paper.md, "Figure 3": CT, ground truth and each Table 1
model's prediction on a few test slices), DSC by nodule size, and the training curves.

Which slices Figure 3 shows is a rule, not a hand pick (:func:`pick_slices`): for each size
group of ``evaluate.size_bins_mm`` that has test nodules, the group's median-diameter nodule
(lower median; ties by patient, then nodule number), on the test slice where its consensus
area is largest (ties: the lower slice). Panels are 64 x 64 mm crops centred on that nodule.
Colours are Okabe-Ito (colour-blind safe): ground truth blue outline, prediction orange.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window (cluster nodes have no display)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from lidcseg.core.sizes import size_label, size_labels  # noqa: E402
from lidcseg.data.dataset.packed import PackedSplit  # noqa: E402
from lidcseg.io import read_rows  # noqa: E402

TRUTH_COLOUR, PREDICTION_COLOUR = "#0072B2", "#E69F00"  # Okabe-Ito blue, orange
CROP_MM = 64.0
SCALE_BAR_MM = 10.0
plt.rcParams.update(
    {"font.size": 9, "axes.titlesize": 9, "savefig.bbox": "tight", "savefig.dpi": 200}
)


def pick_slices(test: PackedSplit, nodule_rows: list[dict], edges: tuple[float, ...]) -> list[dict]:
    """One {patient_id, nodule, diameter_mm, size, index (into the split), slice} per size group."""
    picks = []
    for label in size_labels(edges):
        group = sorted(
            (float(r["diameter_mm"]), r["patient_id"], int(r["nodule"]))
            for r in nodule_rows
            if size_label(float(r["diameter_mm"]), edges) == label
        )
        if not group:
            continue
        diameter, patient, nodule = group[(len(group) - 1) // 2]
        areas = [
            (int((test.masks[i] == nodule).sum()), -int(row["slice"]), i)
            for i, row in enumerate(test.rows)
            if row["patient_id"] == patient
        ]
        area, negative_slice, index = max(areas)
        if area:
            picks.append(
                {
                    "patient_id": patient,
                    "nodule": nodule,
                    "diameter_mm": diameter,
                    "size": label,
                    "index": index,
                    "slice": -negative_slice,
                }
            )
    return picks


def figure3(
    test: PackedSplit,
    picks: list[dict],
    predictions: dict[str, np.ndarray],
    threshold: float,
    pixel_mm: float,
    out_stem: Path,
) -> list[Path]:
    """Rows = picked slices; columns = CT, ground truth, then each model (``predictions``:
    label -> uint8 probability x 255 of the whole test split). Writes PNG and PDF."""
    columns = ["CT (lung window)", "Ground truth", *predictions]
    fig, axes = plt.subplots(
        len(picks),
        len(columns),
        figsize=(1.5 * len(columns), 1.55 * len(picks) + 0.4),
        squeeze=False,
        gridspec_kw={"wspace": 0.04, "hspace": 0.06},
    )
    for r, pick in enumerate(picks):
        image, truth = test.images[pick["index"]].astype(np.float32), test.masks[pick["index"]] > 0
        window = _crop_window(
            test.masks[pick["index"]] == pick["nodule"], CROP_MM / pixel_mm, image.shape
        )
        for c, title in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(image[window], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if c == 1:
                _fill(ax, truth[window], TRUTH_COLOUR)
            elif c > 1:
                predicted = predictions[title][pick["index"]] >= round(threshold * 255)
                _prediction_panel(ax, predicted, truth, window)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(title.replace(" (", "\n("))
            if c == 0:
                ax.set_ylabel(
                    f"{pick['patient_id'].removeprefix('LIDC-IDRI-')} z{pick['slice']}\n"
                    f"{pick['diameter_mm']:.1f} mm",
                    fontsize=8,
                )
                _scale_bar(ax, SCALE_BAR_MM / pixel_mm)
    fig.text(
        0.125,
        0.06,
        f"Blue: ground truth (readers' consensus); orange: prediction (p >= {threshold:g}). "
        f"Crops {CROP_MM:g} x {CROP_MM:g} mm, pixel {pixel_mm:.2f} mm; bar {SCALE_BAR_MM:g} mm.",
        fontsize=7,
        ha="left",
        va="top",
    )
    return _save(fig, out_stem)


def _prediction_panel(ax, predicted: np.ndarray, truth: np.ndarray, window) -> None:
    """A model's prediction filled, the truth outlined, and the slice's DSC in the corner."""
    _fill(ax, predicted[window], PREDICTION_COLOUR)
    ax.contour(truth[window], levels=[0.5], colors=TRUTH_COLOUR, linewidths=0.8)
    label = f"DSC {_dsc(predicted, truth):.2f}"
    box = {"facecolor": "black", "alpha": 0.6, "pad": 1.5, "linewidth": 0}
    ax.text(
        0.97,
        0.03,
        label,
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        color="white",
        fontsize=7,
        bbox=box,
    )


def _crop_window(nodule: np.ndarray, size_px: float, shape) -> tuple[slice, slice]:
    rows, cols = np.nonzero(nodule)
    centre = (rows.mean(), cols.mean()) if len(rows) else (shape[0] / 2, shape[1] / 2)
    half = int(round(size_px / 2))
    starts = [int(min(max(round(c) - half, 0), n - 2 * half)) for c, n in zip(centre, shape)]
    return tuple(slice(max(s, 0), max(s, 0) + 2 * half) for s in starts)


def _fill(ax, mask: np.ndarray, colour: str) -> None:
    ax.imshow(
        np.ma.masked_where(~mask, mask),
        cmap=ListedColormap([colour]),
        alpha=0.55,
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )


def _dsc(prediction: np.ndarray, truth: np.ndarray) -> float:
    total = prediction.sum() + truth.sum()
    return 1.0 if total == 0 else 2 * float((prediction & truth).sum()) / total


def _scale_bar(ax, length_px: float) -> None:
    ax.plot(
        [4, 4 + length_px],
        [ax.get_ylim()[0] - 5] * 2,
        color="white",
        linewidth=2,
        path_effects=[patheffects.withStroke(linewidth=3.5, foreground="black")],
    )  # visible on bone too


def size_plot(by_size: dict[str, list[dict]], out_stem: Path) -> list[Path]:
    """Pooled DSC per nodule-size group, one marker per variant, with the bootstrap interval."""
    variants = list(by_size)
    labels = [row["size"] for row in next(iter(by_size.values()))]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / max(len(variants), 1)
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(variants), 2)))
    for k, variant in enumerate(variants):
        x = np.arange(len(labels)) - 0.4 + (k + 0.5) * width
        dsc = [row["dsc"] if row["nodules"] else math.nan for row in by_size[variant]]
        low = [row.get("dsc_ci", [math.nan] * 2)[0] for row in by_size[variant]]
        high = [row.get("dsc_ci", [math.nan] * 2)[1] for row in by_size[variant]]
        err = np.abs(np.array([np.subtract(dsc, low), np.subtract(high, dsc)]))
        ax.errorbar(x, dsc, yerr=err, fmt="o", ms=3, lw=0.8, color=colours[k], label=variant)
    counts = [next(iter(by_size.values()))[i]["nodules"] for i in range(len(labels))]
    ax.set_xticks(
        range(len(labels)), [f"{lab} mm\n({n} nodules)" for lab, n in zip(labels, counts)]
    )
    ax.set_ylabel("pooled test DSC"), ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    ax.set_title("DSC by nodule diameter (95 % patient bootstrap)")
    return _save(fig, out_stem)


def curves(logs: dict[str, Path], out_stem: Path) -> list[Path]:
    """Training loss and validation DSC per epoch, one line per variant (and seed)."""
    fig, (loss_ax, dsc_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(logs), 2)))
    for colour, (name, path) in zip(colours, logs.items()):
        rows = read_rows(path)
        epochs = [int(r["epoch"]) for r in rows]
        loss_ax.plot(epochs, [float(r["train_loss"]) for r in rows], color=colour, lw=1, label=name)
        validated = [
            (int(r["epoch"]), float(r["val_dsc"])) for r in rows if r["val_dsc"] not in ("", "nan")
        ]
        if validated:
            dsc_ax.plot(*zip(*validated), "o-", ms=2.5, color=colour, lw=1, label=name)
    loss_ax.set(xlabel="epoch", ylabel="training loss (Dice + BCE)")
    dsc_ax.set(xlabel="epoch", ylabel="validation DSC (pooled)", ylim=(0, 1))
    dsc_ax.legend(fontsize=7, ncol=1, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    return _save(fig, out_stem)


def _save(fig, out_stem: Path) -> list[Path]:
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_stem.with_suffix(s) for s in (".png", ".pdf")]
    for path in paths:
        fig.savefig(path)
    plt.close(fig)
    return paths
