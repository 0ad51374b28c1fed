"""Seconds per scan of `lidcseg predict` (target on a 2-core machine: <= 60 s for the
133-slice LIDC-IDRI-0001 with the demo's unet).

    python benchmarks/predict.py [--model results/models/unet/seed2022/model.pt]
                                 [--series ../shared/lidc-full/LIDC-IDRI-0001/<study>/<series>]

Runs the command as a user would (a fresh process: imports, reading the DICOM, resampling,
the model, mapping back, writing the four files) and prints its wall time, beside the time
the command itself logs. Needs a trained model (the workflow's `train` rule, or
`snakemake results/models/unet/seed2022/model.pt`).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FULL = REPO.parent / "shared" / "lidc-full" / "LIDC-IDRI-0001"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=REPO / "results" / "models" / "unet" / "seed2022" / "model.pt"
    )
    parser.add_argument(
        "--series", type=Path, default=None, help="default: the complete real series in ../shared"
    )
    parser.add_argument("--settings", default=str(REPO / "config.yaml"))
    args = parser.parse_args()
    series = args.series or next((p for p in FULL.glob("*/*") if p.is_dir()), None)
    if series is None or not args.model.exists():
        sys.exit(
            f"needs {args.model} (train it: snakemake {args.model.relative_to(REPO)}) and a series "
            f"({FULL} or --series)"
        )
    slices = len(list(series.glob("*.dcm")))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "lidcseg.cli",
                "predict",
                str(series),
                out,
                "--model",
                str(args.model),
                "--settings",
                args.settings,
            ],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
    if result.returncode:
        sys.exit(result.stderr[-2000:])
    logged = re.search(r"predict done in ([0-9.]+) s", result.stderr)
    print(
        f"predict: {series.name[-24:]} ({slices} slices), model {args.model.parent.parent.name}/"
        f"{args.model.parent.name}: {wall:.1f} s per scan (wall, new process), "
        f"{logged.group(1) if logged else '?'} s inside the command"
    )


if __name__ == "__main__":
    main()
