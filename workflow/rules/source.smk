# Where the DICOM comes from. Every source writes the TCIA layout
# <root>/<PatientID>/<StudyUID>/<SeriesUID>/*.dcm and, last, <root>/<PatientID>/series.json.


rule synthesize:
    output:
        manifest=f"{RAW}/{{patient}}/series.json",
    params:
        root=lambda wildcards, output: os.path.dirname(os.path.dirname(output.manifest)),
        seed=config["synthesize"]["seed"],
        noise=config["synthesize"]["noise_hu"],
        storage=config["synthesize"]["storage"],
    log:
        "logs/synthesize/{patient}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../../envs/data.yaml"
    shell:
        "lidcseg synthesize {wildcards.patient} {params.root} --seed {params.seed}"
        " --noise-hu {params.noise} --storage {params.storage} > {log} 2>&1"
