"""config.yaml against the schema: the default is valid; every bad value names its key."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lidcseg import config
from lidcseg.cli import main
from lidcseg.data.lidc.database import patient_ids
from lidcseg.errors import ConfigError
from tests.support.paths import REPO

DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def test_embedded_default_is_valid_and_typed():
    cfg = config.load(REPO / "config.yaml")
    assert cfg.resample.spacing_mm == (0.68, 0.68, 2.0)
    assert cfg.resample.image_size == (512, 512)
    assert cfg.dataset.source == "synthetic" and len(cfg.dataset.patients) >= 4


@pytest.mark.parametrize(
    "path, value, key, words",
    [
        (("resample", "spacing_mm"), [0.68, 0.68, -2.0], "resample.spacing_mm.2", "minimum"),
        (("resample", "image_size"), [512], "resample.image_size", "too short"),
        (
            ("resample", "image_interpolation"),
            "bspline",
            "resample.image_interpolation",
            "is not one of",
        ),
        (("convert", "max_gap_factor"), "big", "convert.max_gap_factor", "not of type 'number'"),
        (("convert", "max_spacing_deviation"), 0.9, "convert.max_spacing_deviation", "maximum"),
        (("synthesize", "seed"), -1, "synthesize.seed", "minimum"),
        (("dataset", "patients"), ["LIDC-IDRI-1"], "dataset.patients.0", "does not match"),
        (("dataset", "patients"), [], "dataset.patients", "should be non-empty"),
        (("dataset", "source"), "nbia", "dataset.source", "is not one of"),
        (
            ("dataset", "patients"),
            "everyone",
            "dataset.patients",
            "is not valid under any of the given schemas",
        ),
        (("execution", "download", "retries"), -1, "execution.download.retries", "minimum"),
        (("execution", "download", "max_wait_s"), -1, "execution.download.max_wait_s", "minimum"),
        (
            ("execution", "download", "proxy"),
            "socks5://proxy:1080",
            "execution.download.proxy",
            "does not match",
        ),
        (
            ("execution", "download", "proxy"),
            "http://proxy:3128/$(touch x)",
            "execution.download.proxy",
            "does not match",
        ),
        (("execution", "download", "proxy"), "env", "execution.download.proxy", "does not match"),
        (
            ("execution", "download", "ca_bundle"),
            "",
            "execution.download.ca_bundle",
            "should be non-empty",
        ),
        (
            ("download", "tcia"),
            {**DEFAULT["download"]["tcia"], "api_version": "1"},
            "download.tcia.api_version",
            "does not match",
        ),
        (
            ("download", "idc"),
            {**DEFAULT["download"]["idc"], "endpoint": "s3://idc-open-data"},
            "download.idc.endpoint",
            "does not match",
        ),
        (("train", "patch_size"), [96, 100], "train.patch_size.1", "multiple of 32"),
        (("train", "optimizer"), "lion", "train.optimizer", "is not one of"),
        (("train", "seeds"), [1, 1], "train.seeds", "non-unique"),
        (("train", "image_scale"), 2, "train.image_scale", "maximum"),
        (("evaluate", "threshold"), 1.0, "evaluate.threshold", "maximum"),
        (("models", "output_prior"), 0, "models.output_prior", "minimum"),
        (
            ("models", "run"),
            ["unet", "unet_plus"],
            "models.run.1",
            "not defined in models.variants",
        ),
    ],
)
def test_bad_value_names_its_key(path, value, key, words):
    data = copy.deepcopy(DEFAULT)
    section = data
    for name in path[:-1]:
        section = section[name]
    section[path[-1]] = value
    with pytest.raises(ConfigError) as info:
        config.validate(data)
    assert info.value.key == key
    assert words in str(info.value)


@pytest.mark.parametrize(
    "where, key", [((), "epochs"), (("resample",), "spacing"), (("dataset",), "patient")]
)
def test_unknown_key_is_refused_by_name(where, key):
    data = copy.deepcopy(DEFAULT)
    target = data
    for part in where:
        target = target[part]
    target[key] = 1
    with pytest.raises(ConfigError, match=f"config key '{'.'.join(where + (key,))}': unknown key"):
        config.validate(data)


def test_patients_all_is_every_patient_of_the_database():
    assert len(patient_ids({"patients": "all"})) == 1010
    assert patient_ids({"patients": ["LIDC-IDRI-0002", "LIDC-IDRI-0001"]}) == [
        "LIDC-IDRI-0002",
        "LIDC-IDRI-0001",
    ]


def test_missing_section_is_named():
    data = copy.deepcopy(DEFAULT)
    del data["resample"]
    with pytest.raises(ConfigError, match="'resample' is a required property"):
        config.validate(data)


def test_overrides_change_only_the_keys_they_set(tmp_path):
    override = tmp_path / "override.yaml"
    override.write_text("resample:\n  image_size: [256, 256]\n")
    cfg = config.load(REPO / "config.yaml", override)
    assert cfg.resample.image_size == (256, 256)
    assert cfg.resample.spacing_mm == (0.68, 0.68, 2.0)


def test_check_config_command(tmp_path, capsys):
    assert main(["check-config", str(REPO / "config.yaml")]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("resample:\n  pad_hu: 100\n")
    assert main(["check-config", str(REPO / "config.yaml"), str(bad)]) == 2
    assert "config key 'resample.pad_hu'" in capsys.readouterr().err


def test_the_packaged_defaults_are_the_checkouts_config_yaml():
    """One source of truth: the package's defaults (what --settings falls back to outside a
    checkout) are a link to config.yaml, which a wheel build copies in (setuptools follows it)."""
    assert config.DEFAULTS_PATH.is_symlink()
    assert config.DEFAULTS_PATH.resolve() == (REPO / "config.yaml").resolve()


def test_commands_run_outside_the_checkout_read_the_packaged_defaults(tmp_path):
    """No config.yaml in the current folder: check-config and a command's --settings fall
    back to the defaults shipped with the package."""
    lidcseg = str(Path(sys.executable).parent / "lidcseg")
    checked = subprocess.run(
        [lidcseg, "check-config"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr
    assert str(config.DEFAULTS_PATH) in checked.stdout
    synthesized = subprocess.run(
        [lidcseg, "synthesize", "LIDC-IDRI-0001", "lidc"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert synthesized.returncode == 0, synthesized.stderr
    assert (tmp_path / "lidc/LIDC-IDRI-0001/series.json").is_file()


def test_a_dotted_name_reads_one_key_of_a_section():
    """What the split rule hands: its own section and the evaluation's size groups alone."""
    inline = json.dumps({"split": DEFAULT["split"], "evaluate": {"size_bins_mm": [6, 10, 20]}})
    split, edges = config.settings(inline, "split", "evaluate.size_bins_mm")
    assert split.seed == DEFAULT["split"]["seed"] and edges == (6, 10, 20)
    falling = json.dumps({"evaluate": {"size_bins_mm": [10, 6]}})
    with pytest.raises(ConfigError) as info:
        config.settings(falling, "evaluate.size_bins_mm")
    assert info.value.key == "evaluate.size_bins_mm"
    with pytest.raises(ConfigError, match="missing from the --settings JSON") as info:
        config.settings(json.dumps({"evaluate": {}}), "evaluate.size_bins_mm")
    assert info.value.key == "evaluate.size_bins_mm"
