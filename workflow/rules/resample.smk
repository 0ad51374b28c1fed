# HU volume and its nodule mask -> the paper's grid (0.68 x 0.68 x 2.0 mm, 512 x 512), both
# through one transform, written beside them; along z by the slices' real positions, read from
# the JSON convert wrote beside the volume.


rule resample:
    input:
        volume="results/hu/{patient}.nii.gz",
        mask="results/masks/{patient}.nii.gz",
        info="results/hu/{patient}.json",
    output:
        image="results/resampled/{patient}.image.nii.gz",
        mask="results/resampled/{patient}.mask.nii.gz",
        grid="results/resampled/{patient}.grid.json",
    log:
        "logs/resample/{patient}.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
        execution=EXECUTION,
    params:
        settings=settings("resample"),
    shell:
        "lidcseg resample {input.volume:q} {output.image:q} --mask {input.mask:q} {output.mask:q}"
        " --transform {output.grid:q} --settings {params.settings:q}"
        " --execution {resources.execution:q} > {log:q} 2>&1"
