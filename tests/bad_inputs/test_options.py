"""Numeric command-line options out of range or not finite: argparse names the option and exits
2 before anything runs; a z range that holds no slice of the scan is named with the scan's."""

from __future__ import annotations

import numpy as np
import pytest

from lidcseg.cli import main
from lidcseg.io import Volume, save_nifti
from lidcseg.training.train import run_training
from tests.support.packed import make_job, write_packed
from tests.support.paths import REPO

CONFIG = str(REPO / "config.yaml")


def _argv(name: str, tmp_path) -> list[str]:
    """A command with valid paths, ready for one option more."""
    out = str(tmp_path / "out")
    return {
        "train": ["train", str(tmp_path), out, "--variant", "unet"],
        "predict": ["predict", str(tmp_path / "scan.nii.gz"), out, "--model", "m.pt"],
        "export-nnunet": ["export-nnunet", str(tmp_path), out],
    }[name]


@pytest.mark.parametrize(
    "command, option, values",
    [
        ("train", "--seed", ["-1"]),
        ("train", "--seed", ["4294967296"]),
        ("train", "--seed", ["18446744073709551616"]),
        ("train", "--seed", ["1.5"]),
        ("train", "--seed", ["nan"]),
        ("predict", "--threshold", ["nan"]),
        ("predict", "--threshold", ["0"]),
        ("predict", "--threshold", ["1"]),
        ("predict", "--threshold", ["inf"]),
        ("predict", "--min-size-mm3", ["nan"]),
        ("predict", "--min-size-mm3", ["-1"]),
        ("predict", "--min-size-mm3", ["inf"]),
        ("predict", "--z-range", ["nan", "nan"]),
        ("predict", "--z-range", ["-inf", "0"]),
        ("predict", "--z-range", ["0", "1e999"]),
        ("export-nnunet", "--dataset-id", ["0"]),
        ("export-nnunet", "--dataset-id", ["1000"]),
        ("export-nnunet", "--dataset-id", ["5e2"]),
        ("export-nnunet", "--name", ["../elsewhere"]),
        ("export-nnunet", "--name", ["a/b"]),
    ],
)
def test_an_option_out_of_range_is_named_by_argparse(command, option, values, tmp_path, capsys):
    argv = [*_argv(command, tmp_path), option, *values]
    if command == "train":
        argv += [] if option == "--seed" else ["--seed", "1"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument {option}:" in err, err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny unet trained for one epoch on 64 x 64 slices of 5.44 mm."""
    root = tmp_path_factory.mktemp("model")
    run_training(make_job(write_packed(root), root / "unet", epochs=1))
    return root / "unet" / "model.pt"


@pytest.fixture
def scan(tmp_path):
    """A 64 x 64 x 6 NIfTI in HU, slices 2 mm apart from z = -10 mm (to 0 mm)."""
    affine = np.diag([5.44, 5.44, 2.0, 1.0])
    affine[:3, 3] = (0.0, 0.0, -10.0)
    path = tmp_path / "scan.nii.gz"
    save_nifti(Volume(np.full((64, 64, 6), -800, np.int16), affine), path)
    return path


@pytest.mark.parametrize("z_range", [("100", "200"), ("-200", "-100"), ("-5.5", "-5.2")])
def test_a_z_range_with_no_slice_of_the_scan_is_named(model, scan, tmp_path, capsys, z_range):
    out = tmp_path / "out"
    argv = ["predict", str(scan), str(out), "--model", str(model), "--z-range", *z_range]
    assert main([*argv, "--settings", CONFIG]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("lidcseg predict: error: --z-range "), err
    assert "whose slices lie from z -10.0 to 0.0 mm" in err[0], err
    assert not out.exists()


def test_a_z_range_over_the_scan_still_predicts(model, scan, tmp_path):
    out = tmp_path / "out"
    argv = ["predict", str(scan), str(out), "--model", str(model), "--z-range", "-4", "0"]
    assert main([*argv, "--settings", CONFIG]) == 0
    assert (out / "scan.prob.nii.gz").is_file()
