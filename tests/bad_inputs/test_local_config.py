"""source local with a bad dataset.local_root: one line naming the key, exit 2, nothing written."""

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


def test_source_local_without_local_root_is_refused_naming_the_key():
    data = copy.deepcopy(DEFAULT)
    data["dataset"]["source"] = "local"
    with pytest.raises(ConfigError, match="source local needs the folder") as info:
        config.validate(data)
    assert info.value.key == "dataset.local_root"


@pytest.mark.parametrize("kind", ["missing", "file", "null"])
def test_index_local_on_a_bad_local_root_exits_2_naming_the_key(tmp_path, capsys, kind):
    target = {"missing": tmp_path / "nowhere", "file": tmp_path / "a-file", "null": None}[kind]
    if kind == "file":
        target.write_text("not a folder")
    dataset = {**DEFAULT["dataset"], "source": "local"}
    dataset["local_root"] = None if target is None else str(target)
    out = tmp_path / "lidc" / "local-index.json"
    code = main(
        ["index-local", str(out), "--cache", str(tmp_path / "cache.json")]
        + ["--settings", json.dumps({"dataset": dataset})]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("lidcseg index-local: error: config key 'dataset.local_root'")
    assert not out.exists()
