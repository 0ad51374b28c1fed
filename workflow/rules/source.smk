# Where the DICOM comes from (dataset.source). Every source writes the TCIA layout
# <root>/<PatientID>/<StudyUID>/<SeriesUID>/*.dcm and, last, <root>/<PatientID>/series.json,
# so every later rule runs the same code on the synthetic demo and on the real archive.

if SOURCE == "synthetic":

    rule synthesize:
        output:
            manifest=f"{RAW}/{{patient}}/series.json",
        params:
            root=lambda wildcards, output: os.path.dirname(os.path.dirname(output.manifest)),
            settings=settings("synthesize"),
        log:
            "logs/synthesize/{patient}.log",
        threads: 1
        resources:
            mem_mb=4000,
            runtime=10,
        conda:
            "../../envs/data.yaml"
        shell:
            "lidcseg synthesize {wildcards.patient:q} {params.root:q} --settings {params.settings:q} > {log:q} 2>&1"

else:

    # One job per patient: after an interruption `snakemake` fetches only the patients without
    # series.json, and a rerun job skips the series already verified in place. `downloads=1`
    # lets `--resources downloads=N` cap the connections to the archive across jobs.
    rule download:
        output:
            manifest=f"{RAW}/{{patient}}/series.json",
        params:
            root=lambda wildcards, output: os.path.dirname(os.path.dirname(output.manifest)),
            source=SOURCE,
            settings=settings("download"),
        log:
            "logs/download/{patient}.log",
        threads: 1
        resources:
            mem_mb=1000,
            runtime=30,  # a series is ~130 MB; SLURM adds up the runtimes of a group's jobs
            downloads=1,
            execution=EXECUTION,
        conda:
            "../../envs/data.yaml"
        shell:
            "lidcseg download --source {params.source:q} --patients {wildcards.patient:q} --out {params.root:q}"
            " --settings {params.settings:q} --execution {resources.execution:q} > {log:q} 2>&1"
