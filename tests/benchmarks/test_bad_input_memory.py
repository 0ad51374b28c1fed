"""benchmarks/bad_input_memory.py runs, so its figures cannot rot: its NIfTI-header cases, each
refused by the real command; the script exits 1 when a case ends otherwise than expected (the
memory figures themselves are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import REPO


def test_the_memory_benchmark_runs_its_cases_and_reports_each_refusal():
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bad_input_memory.py"), "--only", "header"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if ": NIfTI header" in line]
    assert len(rows) == 3, result.stdout  # resample (two sizes) and predict
    assert all("over the memory limit of 2 GB" in row for row in rows), result.stdout
    assert "largest peak among the refused cases" in result.stdout
