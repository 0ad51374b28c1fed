# Where the DICOM comes from (dataset.source). Every source writes <root>/<PatientID>/series.json
# last, naming the series' files: synthesize and download below it in the TCIA layout
# <root>/<PatientID>/<StudyUID>/<SeriesUID>/*.dcm, local where they are in the user's copy.
# So every later rule runs the same code on the synthetic demo and on the real archive.

if SOURCE == "synthetic":

    rule synthesize:
        output:
            manifest=f"{RAW}/{{patient}}/series.json",
        log:
            "logs/synthesize/{patient}.log",
        conda:
            "../../envs/data.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=10,
        params:
            root=lambda wildcards, output: os.path.dirname(os.path.dirname(output.manifest)),
            settings=settings("synthesize"),
        shell:
            "lidcseg synthesize {wildcards.patient:q} {params.root:q} --settings {params.settings:q} > {log:q} 2>&1"

elif SOURCE == "local":

    # One job reads the headers of the whole copy (dataset.local_root, any layout, never
    # written to); a checkpoint, since which patients it holds is known only then (one it
    # lacks is a rejected scan: inspect's `absent`). Snakemake does not watch the copy: after
    # adding to it, `snakemake -R index_local` (only new or changed files are read again).
    checkpoint index_local:
        output:
            index=LOCAL_INDEX,
        log:
            "logs/index_local.log",
        conda:
            "../../envs/data.yaml"
        threads: config["execution"]["local"]["workers"]
        resources:
            mem_mb=4000,
            runtime=60,
            execution=EXECUTION,
        params:
            cache=LOCAL_CACHE,
            settings=settings("dataset"),
        shell:
            "lidcseg index-local {output.index:q} --cache {params.cache:q}"
            " --settings {params.settings:q} --execution {resources.execution:q} > {log:q} 2>&1"

    rule local_series:
        input:
            index=LOCAL_INDEX,
        output:
            manifest=f"{RAW}/{{patient}}/series.json",
        log:
            "logs/local_series/{patient}.log",
        conda:
            "../../envs/data.yaml"
        threads: 1
        resources:
            mem_mb=500,
            runtime=5,
        params:
            root=lambda wildcards, output: os.path.dirname(os.path.dirname(output.manifest)),
        shell:
            "lidcseg local-series {wildcards.patient:q} {input.index:q} {params.root:q} > {log:q} 2>&1"

else:

    # One job per patient: after an interruption `snakemake` fetches only the patients without
    # series.json, and a rerun job skips the series already verified in place. `downloads=1`
    # lets `--resources downloads=N` cap the connections to the archive across jobs.
    rule download:
        output:
            manifest=f"{RAW}/{{patient}}/series.json",
        log:
            "logs/download/{patient}.log",
        conda:
            "../../envs/data.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=30,  # a series is ~130 MB; SLURM adds up the runtimes of a group's jobs
            downloads=1,
            execution=EXECUTION,
        params:
            root=lambda wildcards, output: os.path.dirname(os.path.dirname(output.manifest)),
            source=SOURCE,
            settings=settings("download"),
        shell:
            "lidcseg download --source {params.source:q} --patients {wildcards.patient:q} --out {params.root:q}"
            " --settings {params.settings:q} --execution {resources.execution:q} > {log:q} 2>&1"
