# Shared by every rule file: config validation, the patient list, and the scan gate.
from lidcseg import config as lidcseg_config
from lidcseg.data.qc import accepted_patients

# Fail before any job runs, naming the key (workflow/schemas/config.schema.yaml).
lidcseg_config.validate(config, workflow.source_path("../schemas/config.schema.yaml"))

PATIENTS = config["dataset"]["patients"]
RAW = config["dataset"]["root"]


wildcard_constraints:
    patient="|".join(PATIENTS),


def usable_patients():
    """Patients whose scan passed `lidcseg inspect` (known once the screen checkpoint ran)."""
    return accepted_patients(checkpoints.screen.get().output.table)


def final_outputs(wildcards):
    return ["results/qc/scans.tsv"] + expand(
        "results/resampled/{patient}.image.nii.gz", patient=usable_patients()
    )


def series_check_args():
    c = config["convert"]
    return (
        f"--max-gap-factor {c['max_gap_factor']} "
        f"--max-spacing-deviation {c['max_spacing_deviation']} "
        f"--missing-rescale {c['missing_rescale']}"
    )
