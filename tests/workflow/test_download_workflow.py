"""The whole data path with dataset.source tcia, from an NBIA server on loopback."""

from __future__ import annotations

import pytest

from lidcseg.data.synthetic.synthesize import synthesize_patient
from lidcseg.io import read_json, read_rows
from tests.support.archive_servers import Archive, nbia_server, series_from_folder
from tests.support.defaults import DEFAULTS
from tests.support.workflow import copy_workflow, snakemake

pytestmark = pytest.mark.workflow

PATIENTS = ["LIDC-IDRI-0078", "LIDC-IDRI-0098", "LIDC-IDRI-0104"]  # 87-105 slices of 3 mm


@pytest.fixture(scope="module")
def archive_server(tmp_path_factory):
    """The three patients' synthetic series, served as TCIA serves LIDC-IDRI."""
    staging = tmp_path_factory.mktemp("staging")
    archive = Archive()
    for patient in PATIENTS:
        folder, _ = synthesize_patient(
            patient,
            staging,
            seed=3,
            noise_hu=DEFAULTS.synthesize.noise_hu,
            storage=DEFAULTS.synthesize.storage,
        )
        manifest = read_json(staging / patient / "series.json")
        served = series_from_folder(
            folder, patient, manifest["study_instance_uid"], manifest["series_instance_uid"]
        )
        archive.add(served)
    with nbia_server(archive) as server:
        yield server


def test_snakemake_runs_the_data_path_from_the_archive(archive_server, tmp_path):
    workdir = copy_workflow(tmp_path)
    first_uid = next(iter(archive_server.archive.series))
    archive_server.archive.faults[first_uid] = ["drop"]
    (workdir / "tcia.yaml").write_text(f"""\
dataset:
  source: tcia
  patients: {PATIENTS}
download:
  tcia:
    base_url: {archive_server.url}/nbia-api/services
    api_version: v4
    collection: LIDC-IDRI
    md5: true
execution:
  download:
    parallel: 2
    retries: 2
    backoff_s: 0.1
    timeout_s: 30
    proxy: null
split:
  seed: 2022
  test_fraction: 0.25
  val_fraction: 0.2
  stratify: none
""")
    result = snakemake(
        workdir,
        "results/dataset/packed/dataset.json",
        "--cores",
        "all",
        "--configfile",
        "tcia.yaml",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for patient in PATIENTS:
        manifest = read_json(workdir / "resources/lidc" / patient / "series.json")
        assert manifest["source"] == "tcia" and manifest["md5_verified"]
        assert "verified" in (workdir / "logs/download" / f"{patient}.log").read_text()
    assert {row["status"] for row in read_rows(workdir / "results/qc/scans.tsv")} == {"accepted"}
    assert sorted(row["split"] for row in read_rows(workdir / "results/dataset/split.csv")) == [
        "test",
        "train",
        "val",
    ]
    requests = archive_server.archive.requests
    assert {host for host, _ in requests} == {f"127.0.0.1:{archive_server.port}"}
    fetched = [
        archive_server.archive.fetches(uid, "getImage") for uid in archive_server.archive.series
    ]
    assert fetched == [2, 1, 1]  # the dropped transfer was fetched again, nothing else was
    assert not (workdir / "resources/lidc/.partial").exists()
    # A new proxy, CA bundle, retry or parallel setting: the archive is not fetched again.
    connection = (
        "    proxy: http://proxy.example.org:3128\n    ca_bundle: /etc/ssl/corporate.pem\n"
        "    max_wait_s: 5\n"
    )
    overlay = (workdir / "tcia.yaml").read_text()
    overlay = overlay.replace("    proxy: null\n", connection)
    overlay = overlay.replace("    parallel: 2\n", "    parallel: 8\n").replace(
        "    retries: 2\n", "    retries: 9\n"
    )
    assert connection in overlay and "parallel: 8" in overlay
    (workdir / "proxied.yaml").write_text(overlay)
    dry = snakemake(
        workdir, "results/dataset/packed/dataset.json", "-n", "--configfile", "proxied.yaml"
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]
