# Shared helpers of the workflow: config validation, the patient list, the scan gate.
import os

from lidcseg import config as lidcseg_config
from lidcseg.data.qc import accepted_patients

# Fail before any job runs, naming the key (workflow/schemas/config.schema.yaml).
lidcseg_config.validate(config, workflow.source_path("../schemas/config.schema.yaml"))

PATIENTS = config["dataset"]["patients"]
RAW = config["dataset"]["root"]


def usable_patients():
    """Patients whose scan passed `lidcseg inspect` (known once the screen checkpoint ran)."""
    return accepted_patients(checkpoints.screen.get().output.table)


def final_outputs(wildcards):
    return ["results/qc/scans.tsv"] + expand(
        "results/resampled/{patient}.image.nii.gz", patient=usable_patients()
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
