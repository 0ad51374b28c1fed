# lidcseg: LIDC-IDRI to the paper's tables. `snakemake --cores all` runs the embedded
# synthetic cohort; `--configfile workflow/configs/<name>.yaml` overrides keys.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# A patient is any LIDC id (which ones run is decided by the rules' inputs): listing all 1,010
# ids of `patients: all` here would make every path pattern carry a 15 kB regex (DAG build 2x).
wildcard_constraints:
    patient="LIDC-IDRI-[0-9]{4}",
    variant="|".join(VARIANTS),
    seed="|".join(str(seed) for seed in SEEDS),
    name="[A-Za-z0-9][A-Za-z0-9._-]*",


include: "workflow/rules/source.smk"
include: "workflow/rules/convert.smk"
include: "workflow/rules/annotate.smk"
include: "workflow/rules/resample.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/predict.smk"


rule all:
    default_target: True
    input:
        final_outputs,
