"""How long Snakemake takes to build the job graph of the full paper run (all 1,018 scans).

    python benchmarks/dag.py [--repeat 3] [--config workflow/configs/lidc-paper.yaml]

Runs `snakemake -n` on a copy of the workflow (so nothing is written into the checkout)
`--repeat` times and prints each wall time, the median, and the job count per rule of the
last run. Target: under 10 s. Prints figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.workflow import copy_workflow  # noqa: E402  (what the workflow tests copy)

SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def dry_run(workdir: Path, config: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [str(SNAKEMAKE), "-n", "--configfile", config],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, result.stdout


def job_counts(stdout: str) -> list[str]:
    """Snakemake's "Job stats" table, down to its total."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("total"))
    return lines[start + 1 : end + 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--config", default="workflow/configs/lidc-paper.yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = copy_workflow(Path(tmp))
        times = []
        for _ in range(args.repeat):
            seconds, stdout = dry_run(workdir, args.config)
            times.append(seconds)
    print(
        f"snakemake -n --configfile {args.config}: "
        + ", ".join(f"{t:.2f}" for t in times)
        + f" s; median {statistics.median(times):.2f} s (target < 10 s)"
    )
    print("\n".join(job_counts(stdout)))


if __name__ == "__main__":
    main()
