# Packed splits -> one training job per variant and seed -> test metrics -> one summary table.
# Training and evaluation ask for a GPU (resources: gpu=1; unlimited when run locally without
# --resources); they run on the CPU when none is there.


rule train:
    input:
        meta=f"{PACKED}/dataset.json",
        arrays=expand(
            f"{PACKED}/{{split}}.{{part}}",
            split=["train", "val"],
            part=["images.npy", "masks.npy", "csv"],
        ),
    output:
        model="results/models/{variant}/seed{seed}/model.pt",
        epochs="results/models/{variant}/seed{seed}/log.csv",
        summary="results/models/{variant}/seed{seed}/train.json",
    log:
        "logs/train/{variant}/seed{seed}.log",
    conda:
        "../../envs/torch.yaml"
    # The step's threads plus one core per loader process: what the job really uses, and what
    # SLURM reserves (--cpus-per-task).
    threads: config["execution"]["train"]["threads"] + config["execution"]["train"]["workers"]
    resources:
        gpu=1,
        mem_mb=training_memory_mb(),
        runtime=24 * 60,
        execution=EXECUTION,
    params:
        packed_dir=lambda wildcards, input: os.path.dirname(input.meta),
        out_dir=lambda wildcards, output: os.path.dirname(output.model),
        settings=lambda wildcards: job_settings(wildcards, "models", "train"),
    shell:
        "lidcseg train {params.packed_dir:q} {params.out_dir:q} --variant {wildcards.variant:q} --seed {wildcards.seed:q}"
        " --settings {params.settings:q} --execution {resources.execution:q} > {log:q} 2>&1"


rule evaluate:
    input:
        model="results/models/{variant}/seed{seed}/model.pt",
        meta=f"{PACKED}/dataset.json",
        arrays=expand(f"{PACKED}/test.{{part}}", part=["images.npy", "masks.npy", "csv"]),
        nodules=lambda wildcards: per_usable_patient("results/masks/{patient}.nodules.csv"),
    output:
        metrics="results/metrics/{variant}/seed{seed}.json",
        images="results/metrics/{variant}/seed{seed}.images.csv",
        nodules="results/metrics/{variant}/seed{seed}.nodules.csv",
        predictions="results/metrics/{variant}/seed{seed}.predictions.npz",
    log:
        "logs/evaluate/{variant}/seed{seed}.log",
    conda:
        "../../envs/torch.yaml"
    threads: config["execution"]["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=training_memory_mb(),
        runtime=60,
        execution=EXECUTION,
    params:
        packed_dir=lambda wildcards, input: os.path.dirname(input.meta),
        settings=lambda wildcards: job_settings(wildcards, "train", "evaluate"),
    shell:
        "lidcseg evaluate {input.model:q} {params.packed_dir:q} {output.metrics:q} --nodules {input.nodules:q}"
        " --settings {params.settings:q} --execution {resources.execution:q} > {log:q} 2>&1"


rule summarize:
    input:
        expand("results/metrics/{variant}/seed{seed}.json", variant=VARIANTS, seed=SEEDS),
    output:
        table="results/metrics/summary.csv",
        json="results/metrics/summary.json",
    log:
        "logs/summarize.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "lidcseg summarize {output.table:q} {input:q} > {log:q} 2>&1"
