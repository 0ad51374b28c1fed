# Resampled scans -> nodule slices -> cohort flow -> patient split, packed for training.


rule extract:
    input:
        image="results/resampled/{patient}.image.nii.gz",
        mask="results/resampled/{patient}.mask.nii.gz",
        nodules="results/masks/{patient}.nodules.csv",
    output:
        slices="results/slices/{patient}.npz",
        rows="results/slices/{patient}.csv",
    log:
        "logs/extract/{patient}.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
        execution=EXECUTION,
    params:
        settings=settings("extract"),
    shell:
        "lidcseg extract {input.image:q} {input.mask:q} {input.nodules:q} {output.slices:q}"
        " --patient {wildcards.patient:q} --settings {params.settings:q}"
        " --execution {resources.execution:q} > {log:q} 2>&1"


rule archive_flow:
    output:
        counts="results/dataset/archive_flow.json",
    log:
        "logs/archive_flow.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=settings("annotate", "extract", "resample", "convert"),
    shell:
        "lidcseg archive-flow {output.counts:q} --settings {params.settings:q} > {log:q} 2>&1"


rule cohort:
    input:
        archive="results/dataset/archive_flow.json",
        scans="results/qc/scans.tsv",
        summaries=lambda wildcards: per_usable_patient("results/masks/{patient}.json"),
        nodules=lambda wildcards: per_usable_patient("results/masks/{patient}.nodules.csv"),
        slices=lambda wildcards: per_usable_patient("results/slices/{patient}.csv"),
        # the copy's counts and choices become a section of flow.md (source: local only)
        local_index=[LOCAL_INDEX] if SOURCE == "local" else [],
    output:
        flow_md="results/dataset/flow.md",
        flow_csv=report(
            "results/dataset/flow.csv", caption="../report/flow.rst", category="0. Cohort"
        ),
        slices="results/dataset/slices.csv",
    log:
        "logs/cohort.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.flow_md),
        patients=PATIENTS,
    shell:
        "lidcseg cohort {params.out_dir:q} --archive {input.archive:q} --scan-table {input.scans:q}"
        " --patients {params.patients:q} --summaries {input.summaries:q} --nodules {input.nodules:q}"
        " --slices {input.slices:q} --local-index {input.local_index:q} > {log:q} 2>&1"


rule split:
    input:
        slices=lambda wildcards: per_usable_patient("results/slices/{patient}.npz"),
        rows=lambda wildcards: per_usable_patient("results/slices/{patient}.csv"),
    output:
        table="results/dataset/split.csv",
        meta="results/dataset/packed/dataset.json",
        packed=expand(
            "results/dataset/packed/{split}.{part}",
            split=["train", "val", "test"],
            part=["images.npy", "masks.npy", "csv"],
        ),
    log:
        "logs/split.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        slices_dir=lambda wildcards, input: os.path.dirname(input.rows[0]),
        out_dir=lambda wildcards, output: os.path.dirname(output.table),
        patients=lambda wildcards: usable_patients(),
        settings=settings("split", "evaluate.size_bins_mm"),  # the size strata: evaluation's groups
    shell:
        "lidcseg split {params.slices_dir:q} {params.out_dir:q} --patients {params.patients:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"
