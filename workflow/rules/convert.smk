# DICOM -> HU. `inspect` checks each scan and records a verdict (never fails on bad data;
# a patient pylidc does not know is rejected without fetching anything);
# the `screen` checkpoint gathers them, and only accepted scans go on to `convert`.


rule inspect:
    input:
        manifest=raw_manifest,
    output:
        record="results/qc/{patient}.json",
    log:
        "logs/inspect/{patient}.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
        execution=EXECUTION,
    params:
        patient_dir=lambda wildcards: os.path.join(RAW, wildcards.patient),
        absent=absent_reason,
        settings=settings("convert"),
    shell:
        "lidcseg inspect {params.patient_dir:q} {output.record:q} --patient {wildcards.patient:q}"
        " --absent={params.absent:q} --settings {params.settings:q}"
        " --execution {resources.execution:q} > {log:q} 2>&1"


checkpoint screen:
    input:
        records=expand("results/qc/{patient}.json", patient=PATIENTS),
    output:
        table="results/qc/scans.tsv",
    log:
        "logs/screen.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "lidcseg screen {input.records:q} --out {output.table:q} > {log:q} 2>&1"


rule convert:
    input:
        manifest=f"{RAW}/{{patient}}/series.json",
        record="results/qc/{patient}.json",
    output:
        volume="results/hu/{patient}.nii.gz",
        info="results/hu/{patient}.json",
    log:
        "logs/convert/{patient}.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
        execution=EXECUTION,
    params:
        patient_dir=patient_dir,
        settings=settings("convert"),
    shell:
        "lidcseg convert {params.patient_dir:q} {output.volume:q} --info {output.info:q}"
        " --settings {params.settings:q}"
        " --execution {resources.execution:q} > {log:q} 2>&1"
