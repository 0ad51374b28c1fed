"""Config values that pass a loose reading but are wrong: each refused naming its key (or the
file), exit 2 on the command line, before anything is written."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from lidcseg import config
from lidcseg.cli import main
from lidcseg.errors import ConfigError
from tests.support.paths import REPO

DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.mark.parametrize(
    "section, key, value, words",
    [
        ("train", "seeds", [1.0], "is not of type 'integer'"),
        ("train", "epochs", 2.0, "is not of type 'integer'"),
        ("split", "seed", 2022.0, "is not of type 'integer'"),
        ("resample", "image_size", [512.0, 512], "is not of type 'integer'"),
        ("evaluate", "size_bins_mm", [20, 6, 10], "must rise strictly"),
        ("evaluate", "size_bins_mm", [6, 6, 20], "must rise strictly"),
    ],
)
def test_a_wrong_value_that_looks_right_is_named(section, key, value, words):
    data = copy.deepcopy(DEFAULT)
    data[section][key] = value
    with pytest.raises(ConfigError, match=words) as info:
        config.validate(data)
    assert info.value.key.startswith(f"{section}.{key}")
    with pytest.raises(ConfigError, match=words):  # the same through --settings
        config.load_sections(json.dumps({section: data[section]}), (section,))


def test_a_settings_file_that_is_not_yaml_is_named(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("split: {seed: 1\n")
    assert (
        main(
            [
                "split",
                str(tmp_path),
                str(tmp_path / "out"),
                "--patients",
                "LIDC-IDRI-0001",
                "--settings",
                str(broken),
            ]
        )
        == 2
    )
    assert f"config key '{broken}': not valid YAML/JSON" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_missing_settings_file_is_named(tmp_path, capsys):
    absent = tmp_path / "absent.yaml"
    assert (
        main(
            [
                "split",
                str(tmp_path),
                str(tmp_path / "out"),
                "--patients",
                "LIDC-IDRI-0001",
                "--settings",
                str(absent),
            ]
        )
        == 2
    )
    assert f"config key '{absent}': cannot read the config file" in capsys.readouterr().err


def test_broken_inline_settings_are_named(tmp_path, capsys):
    assert (
        main(
            [
                "split",
                str(tmp_path),
                str(tmp_path / "out"),
                "--patients",
                "LIDC-IDRI-0001",
                "--settings",
                '{"split": {"seed": 1,',
            ]
        )
        == 2
    )
    assert "the --settings JSON': not valid YAML/JSON" in capsys.readouterr().err


@pytest.mark.parametrize("count", ["0", "-1", "two"])
def test_download_count_below_one_is_refused_naming_the_option(count, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["download", "--source", "tcia", "--count", count, "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "argument --count" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cuda_asked_for_without_a_gpu_names_the_key():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    from lidcseg.core.runtime import pick_device

    with pytest.raises(
        ConfigError,
        match="config key 'execution.train.device': cuda, but torch sees no CUDA device",
    ):
        pick_device("cuda")


@pytest.mark.parametrize(
    "section, key, new",
    [
        ("train", "workers", "execution.train.workers"),
        ("train", "deterministic", "execution.train.deterministic"),
        ("evaluate", "batch_size", "execution.evaluate.batch_size"),
        ("download", "proxy", "execution.download.proxy"),
    ],
)
def test_a_moved_key_is_refused_naming_its_new_place(section, key, new, tmp_path):
    """An old config (an overlay still setting train.workers) is refused before any job,
    never read as something else or silently ignored; the same through --settings."""
    data = copy.deepcopy(DEFAULT)
    data[section][key] = 1
    message = f"config key '{section}.{key}': moved to {new}"
    with pytest.raises(ConfigError, match=message) as info:
        config.validate(data)
    assert info.value.key == f"{section}.{key}" and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=message):
        config.load_sections(json.dumps({section: data[section]}), (section,))
    (tmp_path / "old.yaml").write_text(yaml.safe_dump({section: {key: 1}}))
    with pytest.raises(ConfigError, match=message):
        config.load(REPO / "config.yaml", tmp_path / "old.yaml")
