# HU volume and its nodule mask -> the paper's grid (0.68 x 0.68 x 2.0 mm, 512 x 512), both
# through one transform, written beside them.


rule resample:
    input:
        volume="results/hu/{patient}.nii.gz",
        mask="results/masks/{patient}.nii.gz",
    output:
        image="results/resampled/{patient}.image.nii.gz",
        mask="results/resampled/{patient}.mask.nii.gz",
        grid="results/resampled/{patient}.grid.json",
    params:
        spacing=" ".join(str(s) for s in config["resample"]["spacing_mm"]),
        size=" ".join(str(s) for s in config["resample"]["image_size"]),
        interpolation=config["resample"]["image_interpolation"],
        pad=config["resample"]["pad_hu"],
        mask_interpolation=config["resample"]["mask_interpolation"],
    log:
        "logs/resample/{patient}.log",
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    conda:
        "../../envs/data.yaml"
    shell:
        "lidcseg resample {input.volume} {output.image} --spacing {params.spacing}"
        " --size {params.size} --interpolation {params.interpolation} --pad-hu {params.pad}"
        " --mask {input.mask} {output.mask} --mask-interpolation {params.mask_interpolation}"
        " --transform {output.grid} > {log} 2>&1"
