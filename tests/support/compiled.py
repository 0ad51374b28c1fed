"""The torch.compile training check, started in the background at the start of a test run.

Compiling the tiny U-Net's training step with inductor on the CPU takes ~110 s on 2 cores,
nearly all of it gcc. The suite starts it as a subprocess once the compile test is collected
(tests/conftest.py), so the compiling overlaps the other tests instead of adding to them;
tests/training/test_train.py::test_compiled_training_matches_eager then waits for it.

    python -m tests.support.compiled OUT_DIR    # trains the tiny job for one epoch, compiled
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.paths import REPO

COMPILERS = ("c++", "g++", "clang++")
# The compiled job's settings, and its eager reference's (tests/training/test_train.py): SGD,
# whose steps keep rounding differences at rounding size (Adam's do not).
COMPILED_CHECK = {"epochs": 1, "optimizer": "sgd"}


def compiler() -> str | None:
    """A C++ compiler on PATH (what inductor needs on the CPU), if any."""
    return next((cc for cc in COMPILERS if shutil.which(cc)), None)


def start() -> tuple[subprocess.Popen, Path]:
    """Start the compiled tiny training; returns the process and the folder it writes."""
    out = Path(tempfile.mkdtemp(prefix="lidcseg-compiled-"))
    log = open(out / "stderr.txt", "w")  # noqa: SIM115 (closed when the process is reaped)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.compiled", str(out)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return process, out


def main(out: Path) -> None:
    from lidcseg.training.train import run_training
    from tests.support.packed import make_job, write_packed

    run_training(make_job(write_packed(out / "data"), out / "run", compile=True, **COMPILED_CHECK))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
