"""A config value is data, never shell text: values with spaces, `$(...)`, `;` and quotes reach
the commands literally (every rule hands its sections as one quoted JSON argument, and quotes
its paths), and nothing runs from them."""

from __future__ import annotations

import pytest
import yaml

from lidcseg.io import read_rows
from tests.support.workflow import copy_workflow, snakemake

pytestmark = pytest.mark.workflow
HOSTILE = "LIDC-IDRI$(touch INJECTED-1); touch INJECTED-2 \"x\" 'y' `touch INJECTED-3`"


def _write(workdir, name: str, override: dict) -> str:
    (workdir / name).write_text(yaml.safe_dump(override))
    return name


def test_a_root_with_a_space_is_taken_literally(tmp_path):
    workdir = copy_workflow(tmp_path)
    override = _write(
        workdir,
        "spaced.yaml",
        {"dataset": {"root": "res ources/li dc", "patients": ["LIDC-IDRI-0078"]}},
    )
    result = snakemake(workdir, "results/qc/scans.tsv", "--cores", "2", "--configfile", override)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (workdir / "res ources/li dc/LIDC-IDRI-0078/series.json").is_file()
    assert [r["status"] for r in read_rows(workdir / "results/qc/scans.tsv")] == ["accepted"]


def test_a_hostile_download_setting_runs_nothing(tmp_path):
    """The download fails (nothing listens on the port), and no file was made by the value."""
    workdir = copy_workflow(tmp_path)
    override = _write(
        workdir,
        "hostile.yaml",
        {
            "dataset": {"source": "tcia", "patients": ["LIDC-IDRI-0078"]},
            "download": {
                "tcia": {"base_url": "http://127.0.0.1:9/nbia-api/services", "collection": HOSTILE},
                "idc": {"collection": HOSTILE},
            },
            "execution": {"download": {"retries": 0, "timeout_s": 2}},
        },
    )
    printed = snakemake(workdir, "-n", "-p", "--configfile", override)
    assert printed.returncode == 0, printed.stderr[-3000:]
    result = snakemake(
        workdir,
        "resources/lidc/LIDC-IDRI-0078/series.json",
        "--cores",
        "1",
        "--configfile",
        override,
    )
    assert result.returncode != 0
    log = (workdir / "logs/download/LIDC-IDRI-0078.log").read_text()
    assert (
        "lidcseg download: error: listing the CT series of LIDC-IDRI-0078" in log
        and "Traceback" not in log
    )
    assert (
        "touch+INJECTED-3" in log
    )  # the value went to the archive as a query parameter, literally
    assert not list(workdir.rglob("INJECTED*")) and not list(tmp_path.parent.glob("INJECTED*"))


@pytest.mark.parametrize(
    "predict, key",
    [
        ({"inputs": ["scans/$(touch x).nii.gz"]}, "predict.inputs.0"),
        (
            {"inputs": ["a/ct.nii.gz", "b/ct.nii.gz"]},
            "predict.inputs.1",
        ),  # two inputs, one results folder
        ({"inputs": ["ct.nii.gz"], "variant": "unet_plus"}, "predict.variant"),
        ({"inputs": ["ct.nii.gz"], "seeds": [7]}, "predict.seeds.0"),
    ],
)
def test_a_prediction_input_names_a_folder_only_when_it_is_a_plain_name(predict, key):
    from lidcseg import config as lidcseg_config

    chosen = {"variant": "unet", "seeds": [2022], "min_size_mm3": 0, **predict}
    with pytest.raises(lidcseg_config.ConfigError, match=key.replace(".", r"\.")):
        lidcseg_config.prediction_names(chosen, ["unet"], [2022])
