# Evaluation outputs -> the paper's Tables 1-2 and Figure 3 (and what goes past them), all
# registered for `snakemake --report results/report/report.html`.


rule readers:
    input:
        meta=f"{PACKED}/dataset.json",
        test=f"{PACKED}/test.csv",
        manifests=lambda wildcards: per_usable_patient(f"{RAW}/{{patient}}/series.json"),
        hu=lambda wildcards: per_usable_patient("results/hu/{patient}.nii.gz"),
        grids=lambda wildcards: per_usable_patient("results/resampled/{patient}.grid.json"),
    output:
        metrics="results/metrics/readers.json",
        rows="results/metrics/readers.csv",
    log:
        "logs/readers.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        packed_dir=lambda wildcards, input: os.path.dirname(input.meta),
        lidc_root=RAW,
        hu_dir=lambda wildcards, input: os.path.dirname(input.hu[0]),
        resampled_dir=lambda wildcards, input: os.path.dirname(input.grids[0]),
        settings=settings("annotate", "resample", "evaluate"),
    shell:
        "lidcseg readers {params.packed_dir:q} {output.metrics:q} --lidc-root {params.lidc_root:q}"
        " --hu-dir {params.hu_dir:q} --resampled-dir {params.resampled_dir:q} --settings {params.settings:q}"
        " > {log:q} 2>&1"


rule report:
    input:
        metrics=expand("results/metrics/{variant}/seed{seed}.json", variant=VARIANTS, seed=SEEDS),
        predictions=expand(
            "results/metrics/{variant}/seed{seed}.predictions.npz", variant=VARIANTS, seed=SEEDS
        ),
        images=expand(
            "results/metrics/{variant}/seed{seed}.images.csv", variant=VARIANTS, seed=SEEDS
        ),
        logs=expand("results/models/{variant}/seed{seed}/log.csv", variant=VARIANTS, seed=SEEDS),
        runs=expand("results/models/{variant}/seed{seed}/train.json", variant=VARIANTS, seed=SEEDS),
        readers="results/metrics/readers.json",
        meta=f"{PACKED}/dataset.json",
        test=expand(f"{PACKED}/test.{{part}}", part=["images.npy", "masks.npy", "csv"]),
    output:
        table1=report_figure("table1.html", "table1.rst", "1. Tables"),
        table2=report_figure("table2.html", "table2.rst", "1. Tables"),
        formats=expand(
            f"{REPORT}/{{table}}.{{fmt}}", table=["table1", "table2"], fmt=["md", "csv", "tex"]
        ),
        figure3=report_figure("figure3.png", "figure3.rst", "2. Figure 3"),
        figure3_pdf=f"{REPORT}/figure3.pdf",
        picks=f"{REPORT}/figure3_slices.csv",
        size_plot=report_figure(
            "dsc_by_size.png", "dsc_by_size.rst", "3. Beyond the paper", "DSC by size"
        ),
        size_table=report_figure(
            "dsc_by_size.html", "dsc_by_size.rst", "3. Beyond the paper", "DSC by size"
        ),
        size_rest=[f"{REPORT}/dsc_by_size.{suffix}" for suffix in ("md", "csv", "pdf")],
        curves=report_figure("training_curves.png", "curves.rst", "3. Beyond the paper", "Training"),
        curves_pdf=f"{REPORT}/training_curves.pdf",
        methods=report_figure("methods.html", "methods.rst", "4. Methods"),
        methods_md=f"{REPORT}/methods.md",
    log:
        "logs/report.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.table1),
        packed_dir=lambda wildcards, input: os.path.dirname(input.meta),
        settings=settings("evaluate"),
    shell:
        "lidcseg report {params.out_dir:q} --metrics {input.metrics:q} --logs {input.logs:q}"
        " --packed-dir {params.packed_dir:q} --readers {input.readers:q} --settings {params.settings:q}"
        " > {log:q} 2>&1"
