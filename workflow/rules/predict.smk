# New scans through trained models (config.yaml `predict:`): one job per input, writing
# results/predictions/<name>/ (lidcseg predict). Nothing runs while predict.inputs is empty.

PREDICT = config["predict"]
PREDICT_INPUTS = (
    lidcseg_config.prediction_names(PREDICT, VARIANTS, SEEDS) if PREDICT["inputs"] else {}
)


rule predict:
    input:
        scan=lambda wildcards: PREDICT_INPUTS[wildcards.name],
        models=expand(
            "results/models/{variant}/seed{seed}/model.pt",
            variant=PREDICT["variant"],
            seed=PREDICT["seeds"],
        ),
    output:
        directory("results/predictions/{name}"),
    log:
        "logs/predict/{name}.log",
    conda:
        "../../envs/torch.yaml"
    threads: config["execution"]["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=training_memory_mb() + 4000,  # plus the scan, its probabilities and the mapped-back volume
        runtime=60,
        execution=EXECUTION,
    params:
        min_size=PREDICT["min_size_mm3"],
        settings=settings("convert", "resample", "train", "evaluate"),
    shell:
        "lidcseg predict {input.scan:q} {output:q} --model {input.models:q} --min-size-mm3 {params.min_size:q}"
        " --settings {params.settings:q} --execution {resources.execution:q} > {log:q} 2>&1"
