"""Config files a YAML reader takes but no config means: a number that is not finite, an
integer no seed can be, a key given twice, an alias (a "billion laughs" file). Each is refused
in one line naming the key or the file, by check-config, by a stage's --settings and by the
workflow before it plans a job."""

from __future__ import annotations

import time

import pytest

from lidcseg.cli import main
from tests.support.hostile import YAML_ALIAS_BOMB as BOMB
from tests.support.paths import REPO
from tests.support.workflow import copy_workflow, snakemake

CONFIG = str(REPO / "config.yaml")


def _check(tmp_path, capsys, text: str) -> tuple[int, list[str], str]:
    override = tmp_path / "override.yaml"
    override.write_text(text)
    code = main(["check-config", CONFIG, str(override)])
    return code, capsys.readouterr().err.splitlines(), str(override)


@pytest.mark.parametrize(
    "text, key, words",
    [
        ("train: {learning_rate: .nan}", "train.learning_rate", "nan is not a finite number"),
        ("train: {learning_rate: .inf}", "train.learning_rate", "inf is not a finite number"),
        ("evaluate: {threshold: .nan}", "evaluate.threshold", "not a finite number"),
        ("predict: {min_size_mm3: .inf}", "predict.min_size_mm3", "not a finite number"),
        ("train: {gradient_clip: .inf}", "train.gradient_clip", "not a finite number"),
        ("train: {deep_supervision: [1, 1, 1, 1, .nan]}", "train.deep_supervision.4", "finite"),
        ("resample: {spacing_mm: [0.68, .nan, 2.0]}", "resample.spacing_mm.1", "finite"),
        ("evaluate: {size_bins_mm: [6, 10, .inf]}", "evaluate.size_bins_mm.2", "finite"),
        ("execution: {download: {timeout_s: .nan}}", "execution.download.timeout_s", "finite"),
        ("train: {seeds: [9223372036854775808]}", "train.seeds.0", "out of range (64-bit"),
        ("train: {seeds: [4294967296]}", "train.seeds.0", "greater than the maximum"),
        ("split: {seed: 4294967296}", "split.seed", "greater than the maximum"),
        ("synthesize: {seed: 18446744073709551616}", "synthesize.seed", "out of range"),
        ("predict: {seeds: [-1]}", "predict.seeds.0", "less than the minimum"),
        ("train: {validate_every: 1000000000000}", "train.validate_every", "greater than"),
        ("train: {warmup_epochs: 1.0e+300}", "train.warmup_epochs", "greater than"),
    ],
)
def test_a_number_no_key_means_is_named(tmp_path, capsys, text, key, words):
    code, err, _ = _check(tmp_path, capsys, text + "\n")
    assert code == 2 and len(err) == 1, err
    assert f"config key '{key}'" in err[0] and words in err[0], err


def test_a_non_finite_setting_stops_a_stage_before_it_writes(tmp_path, capsys):
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        "split: {seed: 1, test_fraction: .nan, val_fraction: 0.2, stratify: none}\n"
    )
    out = tmp_path / "out"
    argv = ["split", str(tmp_path), str(out), "--patients", "LIDC-IDRI-0001"]
    assert main([*argv, "--settings", str(settings)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "config key 'split.test_fraction': nan is not a finite" in err[0]
    assert not out.exists()


@pytest.mark.parametrize(
    "text, key, lines",
    [
        (
            "train:\n  learning_rate: 0.001\n  learning_rate: 0.01\n",
            "train.learning_rate",
            "2 and 3",
        ),
        ("split: {seed: 1}\nsplit: {seed: 2}\n", "split", "1 and 2"),
        ("train:\n  augment: {flip: true, flip: false}\n", "train.augment.flip", "2 and 2"),
    ],
)
def test_a_key_given_twice_is_named_with_its_file(tmp_path, capsys, text, key, lines):
    code, err, path = _check(tmp_path, capsys, text)
    assert code == 2 and len(err) == 1, err
    assert f"config key '{key}': given twice in {path} (lines {lines})" in err[0]


def test_a_key_given_twice_in_inline_settings_is_named(tmp_path, capsys):
    out = tmp_path / "out"
    inline = '{"split": {"seed": 1, "seed": 2, "test_fraction": 0.25}}'
    argv = ["split", str(tmp_path), str(out), "--patients", "LIDC-IDRI-0001", "--settings", inline]
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "'split.seed': given twice in the --settings JSON" in err[0]
    assert not out.exists()


@pytest.mark.parametrize(
    "text",
    [
        BOMB,
        "train:\n  learning_rate: &lr 0.001\n  weight_decay: *lr\n",
        "a: &x {b: 1}\nc: {<<: *x}\n",
    ],
    ids=["billion-laughs", "alias", "merge-key"],
)
def test_an_alias_is_refused_at_once_naming_the_file(tmp_path, capsys, text):
    started = time.perf_counter()
    code, err, path = _check(tmp_path, capsys, text)
    assert time.perf_counter() - started < 5
    assert code == 2 and len(err) == 1, err
    assert f"config key '{path}': line " in err[0] and "YAML alias" in err[0], err


def test_a_bomb_as_the_settings_of_a_stage_is_refused(tmp_path, capsys):
    settings = tmp_path / "bomb.yaml"
    settings.write_text(BOMB)
    out = tmp_path / "out"
    argv = ["split", str(tmp_path), str(out), "--patients", "LIDC-IDRI-0001"]
    assert main([*argv, "--settings", str(settings)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and f"'{settings}': line 2: YAML alias '*a' refused" in err[0]
    assert not out.exists()


@pytest.mark.workflow
@pytest.mark.parametrize(
    "text, words",
    [
        (BOMB, "bad.yaml': line 2: YAML alias '*a' refused"),
        (
            "train:\n  epochs: 1\n  epochs: 2\n",
            "bad.yaml (lines 2 and 3)",
        ),
        ("train: {learning_rate: .nan}\n", "config key 'train.learning_rate': nan is not a finite"),
        ("train: {seeds: [4294967296]}\n", "config key 'train.seeds.0'"),
    ],
    ids=["billion-laughs", "duplicate", "nan", "seed"],
)
def test_the_workflow_refuses_it_before_planning(tmp_path, text, words):
    workdir = copy_workflow(tmp_path)
    (workdir / "bad.yaml").write_text(text)
    result = snakemake(workdir, "-n", "--configfile", "bad.yaml")
    assert result.returncode != 0 and words in result.stdout + result.stderr
    assert not (workdir / "resources").exists() and not (workdir / "results").exists()


@pytest.mark.workflow
def test_the_workflow_refuses_a_key_given_twice_in_config_yaml(tmp_path):
    workdir = copy_workflow(tmp_path)
    text = (workdir / "config.yaml").read_text()
    (workdir / "config.yaml").write_text(text + "\ntrain:\n  epochs: 3\n")
    result = snakemake(workdir, "-n")
    assert result.returncode != 0
    assert "config key 'train': given twice in config.yaml" in result.stdout + result.stderr
