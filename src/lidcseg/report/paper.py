"""The paper's published numbers (docs/paper.md, "Results") and which of our variants
each row is. Rows are matched by slots, not by name, so a renamed variant still lands in
its row."""

from __future__ import annotations

from dataclasses import dataclass

from lidcseg.models.registry import Slots


@dataclass(frozen=True)
class PaperRow:
    label: str
    slots: Slots
    dsc: float | None = None
    recall: float | None = None
    precision: float | None = None
    ours_only: bool = False


# Table 1: pretrained U-Net with each attention module (test set).
TABLE1 = (
    PaperRow("SE", Slots(attention="se"), 0.5716, 0.6064, 0.5405),
    PaperRow("Attention U-Net", Slots(attention="gate"), 0.5667, 0.5917, 0.5437),
    PaperRow("BAM", Slots(attention="bam"), 0.5729, 0.5569, 0.5898),
    PaperRow("CBAM", Slots(attention="cbam"), 0.5519, 0.5348, 0.5714),
    PaperRow(
        "RB-CBAM (ASPP+R+B)",
        Slots(aspp=True, attention="cbam", reverse=True, boundary=True),
        0.6627,
        0.6642,
        0.6870,
    ),
    PaperRow("U-Net, no attention (ours)", Slots(), ours_only=True),
)

# Table 2: ablation on CBAM, DSC only, in the paper's row order (docs/paper.md, "Table 2").
TABLE2 = (
    PaperRow("CBAM", Slots(aspp=False, attention="cbam", reverse=False, boundary=False), 0.3728),
    PaperRow("CBAM + R", Slots(aspp=False, attention="cbam", reverse=True, boundary=False), 0.6201),
    PaperRow("CBAM + B", Slots(aspp=False, attention="cbam", reverse=False, boundary=True), 0.6187),
    PaperRow(
        "CBAM + R + B", Slots(aspp=False, attention="cbam", reverse=True, boundary=True), 0.6259
    ),
    PaperRow(
        "ASPP + CBAM", Slots(aspp=True, attention="cbam", reverse=False, boundary=False), 0.5425
    ),
    PaperRow(
        "ASPP + CBAM + R", Slots(aspp=True, attention="cbam", reverse=True, boundary=False), 0.5691
    ),
    PaperRow(
        "ASPP + CBAM + B", Slots(aspp=True, attention="cbam", reverse=False, boundary=True), 0.6108
    ),
    PaperRow(
        "ASPP + CBAM + R + B",
        Slots(aspp=True, attention="cbam", reverse=True, boundary=True),
        0.6627,
    ),
)

# The all-off row read the other way: the paper's 0.3728 is far below its CBAM of Table 1
# (0.5519), so Table 2 shows it beside our plain U-Net too
# (docs/paper.md, "Table 2's all-off row").
ALL_OFF_AS_UNET = PaperRow(
    "All off, read as U-Net without attention (ours)", Slots(), 0.3728, ours_only=True
)

READERS_LABEL = "Radiologists, leave-one-reader-out (ours)"
