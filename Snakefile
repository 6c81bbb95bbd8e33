# The DDLSTM pipeline (Perrett & Damen, CVPR 2019): videos -> frames -> per-split frame classifier
# -> logits -> boundary LSTM -> LSTM / BNLSTM / DDLSTM under every protocol -> tables and figures.
# Run: snakemake --cores all   (config/config.yaml: the embedded synthetic datasets)
#      snakemake --cores all --configfile config/paper.yaml   (the paper's datasets and settings)
from snakemake.utils import min_version

min_version("8.0")


# The default experiment unless --configfile names another (which then replaces it, not merges).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/recurrent.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/demo.smk"


rule all:
    input:
        get_final_output(),
