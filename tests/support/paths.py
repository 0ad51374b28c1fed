"""Where the repository and the real LIDC samples are."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIDC_SAMPLES = Path(os.environ.get("LIDC_SAMPLES", REPO.parent / "shared" / "lidc-samples"))
LIDC_FULL = Path(
    os.environ.get("LIDC_FULL", REPO.parent / "shared" / "lidc-full")
)  # one complete real series
