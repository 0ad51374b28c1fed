"""Every stage, three faults: its input missing, its input corrupt, its output unwritable.

Each gets exit 2 and one line naming the file, and nothing is left under the output that
looks finished. The valid inputs come from one small chain (the synthetic patient through
convert, annotate, resample and extract; a tiny packed set, model and metrics file), built
once for the module; each case then breaks one thing.

"Unwritable" is an output folder whose parent is a file: permission bits do not stop root,
which is what CI and most containers run as.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from lidcseg.cli import main
from lidcseg.training.train import run_training
from tests.support.packed import make_job, write_packed
from tests.support.paths import REPO

CONFIG = str(REPO / "config.yaml")
PATIENT = "LIDC-IDRI-0078"


@pytest.fixture(scope="module")
def chain(synthetic_patient, tmp_path_factory):
    """Valid inputs for every stage, made by the stages themselves."""
    root, series_dir, _ = synthetic_patient
    d = tmp_path_factory.mktemp("chain")
    steps = [
        ["convert", str(series_dir), str(d / "hu.nii.gz"), "--info", str(d / "hu.json")],
        ["annotate", str(series_dir), str(d / "mask.nii.gz")],
        [
            "resample",
            str(d / "hu.nii.gz"),
            str(d / "image.nii.gz"),
            "--mask",
            str(d / "mask.nii.gz"),
            str(d / "resampled_mask.nii.gz"),
            "--transform",
            str(d / "grid.json"),
        ],
        [
            "extract",
            str(d / "image.nii.gz"),
            str(d / "resampled_mask.nii.gz"),
            str(d / "mask.nodules.csv"),
            str(d / "slices" / f"{PATIENT}.npz"),
            "--patient",
            PATIENT,
        ],
        ["inspect", str(series_dir), str(d / "qc" / f"{PATIENT}.json")],
    ]
    for argv in steps:
        assert main([*argv, "--settings", CONFIG]) == 0, argv
    packed = write_packed(d / "packed_root")
    run_training(make_job(packed, d / "model", epochs=1))
    evaluate = [
        "evaluate",
        str(d / "model" / "model.pt"),
        str(packed),
        str(d / "metrics" / "unet" / "seed7.json"),
        "--nodules",
        str(packed.parent / "nodules.csv"),
        "--settings",
        CONFIG,
    ]
    assert main(evaluate) == 0
    return SimpleNamespace(root=root, series=series_dir, d=d, packed=packed)


@dataclass
class Stage:
    name: str
    argv: Callable  # (chain, out folder) -> argv with valid inputs
    input: Callable  # (chain) -> the input the missing and corrupt cases break
    corrupt: bytes | None = b"\x00garbage, not what this stage reads\xff" * 4
    checks_only: bool = False  # writes no file (check-config, models)


STAGES = [
    Stage(
        "check-config",
        lambda c, out: ["check-config", str(c.d / "config.yaml")],
        lambda c: c.d / "config.yaml",
        corrupt=b"train: [unclosed\n",
        checks_only=True,
    ),
    Stage(
        "synthesize",
        lambda c, out: ["synthesize", PATIENT, str(out), "--settings", str(c.d / "config.yaml")],
        lambda c: c.d / "config.yaml",
        corrupt=b"synthesize: {seed: [\n",
    ),
    Stage(
        "inspect",
        lambda c, out: ["inspect", str(c.series), str(out / "record.json"), "--settings", CONFIG],
        lambda c: c.series,
        corrupt=None,
    ),
    Stage(
        "screen",
        lambda c, out: [
            "screen",
            str(c.d / "qc" / f"{PATIENT}.json"),
            "--out",
            str(out / "scans.tsv"),
        ],
        lambda c: c.d / "qc" / f"{PATIENT}.json",
    ),
    Stage(
        "convert",
        lambda c, out: [
            "convert",
            str(c.series),
            str(out / "hu.nii.gz"),
            "--info",
            str(out / "hu.json"),
            "--settings",
            CONFIG,
        ],
        lambda c: c.series,
        corrupt=None,
    ),
    Stage(
        "annotate",
        lambda c, out: ["annotate", str(c.series), str(out / "mask.nii.gz"), "--settings", CONFIG],
        lambda c: c.series,
        corrupt=None,
    ),
    Stage(
        "resample",
        lambda c, out: [
            "resample",
            str(c.d / "hu.nii.gz"),
            str(out / "image.nii.gz"),
            "--mask",
            str(c.d / "mask.nii.gz"),
            str(out / "mask.nii.gz"),
            "--transform",
            str(out / "grid.json"),
            "--settings",
            CONFIG,
        ],
        lambda c: c.d / "mask.nii.gz",
    ),
    Stage(
        "extract",
        lambda c, out: [
            "extract",
            str(c.d / "image.nii.gz"),
            str(c.d / "resampled_mask.nii.gz"),
            str(c.d / "mask.nodules.csv"),
            str(out / f"{PATIENT}.npz"),
            "--patient",
            PATIENT,
            "--settings",
            CONFIG,
        ],
        lambda c: c.d / "mask.nodules.csv",
    ),
    Stage(
        "split",
        lambda c, out: [
            "split",
            str(c.d / "slices"),
            str(out / "dataset"),
            "--patients",
            PATIENT,
            "--settings",
            CONFIG,
        ],
        lambda c: c.d / "slices" / f"{PATIENT}.npz",
    ),
    Stage(
        "train",
        lambda c, out: [
            "train",
            str(c.packed),
            str(out / "model"),
            "--variant",
            "unet",
            "--seed",
            "1",
            "--settings",
            CONFIG,
        ],
        lambda c: c.packed / "train.images.npy",
    ),
    Stage(
        "evaluate",
        lambda c, out: [
            "evaluate",
            str(c.d / "model" / "model.pt"),
            str(c.packed),
            str(out / "seed7.json"),
            "--nodules",
            str(c.packed.parent / "nodules.csv"),
            "--settings",
            CONFIG,
        ],
        lambda c: c.d / "model" / "model.pt",
    ),
    Stage(
        "summarize",
        lambda c, out: [
            "summarize",
            str(out / "summary.csv"),
            str(c.d / "metrics" / "unet" / "seed7.json"),
        ],
        lambda c: c.d / "metrics" / "unet" / "seed7.json",
    ),
    Stage(
        "report",
        lambda c, out: [
            "report",
            str(out / "report"),
            "--metrics",
            str(c.d / "metrics" / "unet" / "seed7.json"),
            "--logs",
            str(c.d / "model" / "log.csv"),
            "--packed-dir",
            str(c.packed),
            "--settings",
            CONFIG,
        ],
        lambda c: c.d / "model" / "log.csv",
    ),
]


def _copy(chain, tmp_path, with_series: bool):
    """A copy of the chain's files (and of the patient's DICOM, when the case damages the
    series) that a case may damage; the module's chain stays intact."""
    copy = SimpleNamespace(**{**vars(chain), "d": tmp_path / "chain", "root": tmp_path / "lidc"})
    shutil.copytree(chain.d, copy.d)
    shutil.copy(CONFIG, copy.d / "config.yaml")
    copy.packed = copy.d / "packed_root" / "packed"
    if with_series:
        shutil.copytree(chain.root / PATIENT, copy.root / PATIENT)
        copy.series = copy.root / chain.series.relative_to(chain.root)
    return copy


@pytest.fixture
def broken(chain, tmp_path, request):
    stage = request.node.callspec.params["stage"]
    return _copy(chain, tmp_path, with_series=stage.input(chain) == chain.series)


def _run(stage: Stage, chain, out: Path, capsys) -> tuple[int, str]:
    code = main(stage.argv(chain, out))
    return code, capsys.readouterr().err


def _assert_one_line_naming(err: str, stage: Stage, named: Path) -> None:
    assert err.count("\n") == 1, err
    assert f"lidcseg {stage.name}: error:" in err and named.name in err, err


def _nothing_finished(out: Path) -> bool:
    return not out.exists() or not any(
        p.is_file() and not p.name.startswith(".") for p in out.rglob("*")
    )


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_a_missing_input_is_named(stage, broken, tmp_path, capsys):
    target = stage.input(broken)
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    out = tmp_path / "out"
    code, err = _run(stage, broken, out, capsys)
    assert code == 2
    _assert_one_line_naming(err, stage, target)
    assert _nothing_finished(out)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_a_corrupt_input_is_named(stage, broken, tmp_path, capsys):
    target = stage.input(broken)
    if target.is_dir():  # a series: one slice replaced by garbage
        target = sorted(target.glob("*.dcm"))[len(list(target.glob("*.dcm"))) // 2]
    target.write_bytes(stage.corrupt or b"\x00garbage\xff" * 40)
    out = tmp_path / "out"
    code, err = _run(stage, broken, out, capsys)
    if stage.name == "inspect":  # inspect's job is to record a bad scan as rejected, and go on
        assert code == 0 and '"rejected"' in (out / "record.json").read_text()
        assert target.name in (out / "record.json").read_text()
        return
    assert code == 2
    _assert_one_line_naming(err, stage, target)
    assert _nothing_finished(out)


@pytest.mark.parametrize("stage", [s for s in STAGES if not s.checks_only], ids=lambda s: s.name)
def test_an_unwritable_output_is_named(stage, chain, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should be")
    code, err = _run(stage, _copy(chain, tmp_path, with_series=False), blocker / "out", capsys)
    assert code == 2
    _assert_one_line_naming(err, stage, blocker)
    assert blocker.read_text() == "a file where the output folder should be"
